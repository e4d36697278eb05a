// PVE App Store web UI: the entry module, with the theme, the hash router and the boot code.
// The views live in views/, the DOM helpers in dom.js, the formatting helpers in format.js.
// Catalog data reaches the DOM only through text nodes and attributes, never as HTML.
import { whenLoginNeeded, api } from './api.js';
import { $, icon, notFound } from './dom.js';
import { booted, lastListHash, setBooted, setFocusSearchOnMount } from './nav.js';
import { session, setSession, updateSessionUi } from './session.js';
import { listView } from './views/apps.js';
import { detailView } from './views/app-detail.js';
import { installView } from './views/install.js';
import { jobView } from './views/job.js';
import { installedView, installDetailView } from './views/installed.js';
import { reconfigureView } from './views/reconfigure.js';
import { gpusView } from './views/gpus.js';
import { systemView } from './views/system.js';
import { loginView } from './views/login.js';

// -- theme
const THEME_KEY = 'pve-appstore.theme';
const darkQuery = matchMedia('(prefers-color-scheme: dark)');
function storedTheme() {
  try { return ['dark', 'light'].find((t) => t === localStorage.getItem(THEME_KEY)) || null; } catch { return null; }
}
const theme = () => storedTheme() || (darkQuery.matches ? 'dark' : 'light');
function applyTheme() {
  const t = storedTheme();
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  const next = theme() === 'dark' ? 'light' : 'dark';
  const btn = $('#theme-toggle');
  btn.replaceChildren(icon(next === 'dark' ? 'moon' : 'sun'));
  btn.title = `Switch to ${next} theme`;
  btn.setAttribute('aria-label', btn.title);
}

// -- router
let current = null; // { name, ctx, update?, focusSearch?, cleanup? }

function parseHash() {
  const raw = location.hash.slice(1);
  const qi = raw.indexOf('?');
  const path = (qi < 0 ? raw : raw.slice(0, qi)).replace(/\/+$/, '') || '/apps';
  return { path, params: new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1)) };
}

function mount(name, view, arg) {
  if (current) { current.ctx.alive = false; current.cleanup?.(); }
  const main = $('#main');
  main.replaceChildren();
  const ctx = { alive: true };
  document.title = 'PVE App Store';
  if (booted) scrollTo(0, 0);
  current = { name, ctx, ...view(main, arg, ctx) };
  // Move focus to the new page (for keyboard and screen reader users) unless the view placed it.
  if (booted && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

function route() {
  if (session.auth === 'password' && !session.logged_in) { mount('login', loginView, route); setBooted(true); return; }
  const { path, params } = parseHash();
  const m = /^\/apps\/([^/]+)$/.exec(path);
  const inst = /^\/install\/([^/]+)$/.exec(path);
  const job = /^\/jobs\/(\d+)$/.exec(path);
  const installed = /^\/installed\/(\d+)(\/reconfigure)?$/.exec(path);
  const section = path === '/system' ? 'system' : path === '/gpus' ? 'gpus' : path === '/installed' || installed ? 'installed'
    : path === '/apps' || m || inst ? 'apps' : '';
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const decoded = (s) => { try { return decodeURIComponent(s); } catch { return s; } };
  if (inst) { mount('install', installView, decoded(inst[1])); setBooted(true); return; }
  if (job) { mount('job', jobView, job[1]); setBooted(true); return; }
  if (installed) { mount('installed-app', installed[2] ? reconfigureView : installDetailView, installed[1]); setBooted(true); return; }
  if (path === '/gpus') { mount('gpus', gpusView); setBooted(true); return; }
  if (path === '/apps') {
    if (current?.name === 'list') current.update(params);
    else mount('list', listView, params);
  } else if (m) {
    mount('detail', detailView, decoded(m[1]));
  } else if (section === 'installed') mount('installed', installedView);
  else if (section) mount('system', systemView);
  else mount('missing', notFoundView, path);
  setBooted(true);
}

const notFoundView = (main, path) => void main.append(notFound('Page not found', `There is no page at ${path}.`));

// -- boot
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
  e.preventDefault();
  if (current?.name === 'list') current.focusSearch();
  else { setFocusSearchOnMount(true); location.hash = lastListHash; }
});

applyTheme();
$('#theme-toggle').onclick = () => {
  try { localStorage.setItem(THEME_KEY, theme() === 'dark' ? 'light' : 'dark'); } catch { /* not remembered */ }
  applyTheme();
};
darkQuery.addEventListener('change', applyTheme);
addEventListener('hashchange', route);
whenLoginNeeded(() => {
  if (session.logged_in && session.auth === 'password') { setSession({ ...session, logged_in: false }); updateSessionUi(); route(); }
});
const logoutBtn = $('#logout');
if (logoutBtn) logoutBtn.onclick = async () => {
  await api.logout().catch(() => {});
  setSession({ auth: 'password', logged_in: false });
  updateSessionUi();
  route();
};
api.session().then((s) => { setSession(s); }, () => {}).finally(() => { updateSessionUi(); route(); });
api.health().then((r) => { $('#store-version').textContent = r?.version ? 'v' + r.version : ''; }, () => {
  const v = $('#store-version');
  v.textContent = 'controller unreachable';
  v.classList.add('offline');
});
