// PVE App Store web UI: hash router and views.
// Catalog data reaches the DOM only through text nodes and attributes, never as HTML.
import { whenLoginNeeded, api } from './api.js';
import { renderMarkdown, safeUrl } from './markdown.js';

// h(tag, className or {attr: value, tid: data-testid, onclick: fn}, ...children)
function h(tag, a, ...kids) {
  const n = document.createElement(tag);
  if (typeof a === 'string') n.className = a;
  else for (const [k, v] of Object.entries(a || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'tid') n.dataset.testid = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat(9)) if (c != null && c !== false) n.append(c);
  return n;
}
const $ = (s, r = document) => r.querySelector(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const arr = (x) => (Array.isArray(x) ? x : []);
const plural = (n, w) => `${n} ${w}${n === 1 ? '' : 's'}`;
const muted = (t) => h('span', 'muted', t);
const dash = () => muted('—');
const code = (t, c) => h('code', c, String(t));

const ICONS = {
  search: 'M11 4a7 7 0 1 0 0 14 7 7 0 1 0 0-14zM16.5 16.5 21 21',
  sun: 'M12 8a4 4 0 1 0 0 8 4 4 0 1 0 0-8zM12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4',
  moon: 'M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z',
  chip: 'M7 7h10v10H7zM10.5 10.5h3v3h-3zM10 3v4M14 3v4M10 17v4M14 17v4M3 10h4M3 14h4M17 10h4M17 14h4',
  back: 'M19 12H5M11 6l-6 6 6 6',
  refresh: 'M20 12a8 8 0 1 1-2.34-5.66M20 4v5h-5',
  ext: 'M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5',
  star: 'M12 3.5l2.6 5.3 5.9.9-4.3 4.1 1 5.8-5.2-2.7-5.2 2.7 1-5.8-4.3-4.1 5.9-.9z',
  alert: 'M12 3.5 2.5 20h19zM12 10v4.5M12 17.2v.3',
  check: 'M5 12.5l4.5 4.5L19 7.5',
};
function icon(name, cls = '') {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  const p = document.createElementNS(svg.namespaceURI, 'path');
  p.setAttribute('d', ICONS[name]);
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'i ' + cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.append(p);
  return svg;
}

// -- formatting
const VENDORS = { intel: 'Intel', amd: 'AMD', nvidia: 'NVIDIA' };
const vendor = (v) => (Object.hasOwn(VENDORS, v) ? VENDORS[v] : String(v));
function humanize(s) {
  const t = String(s).replace(/[-_]+/g, ' ').trim();
  return /^[a-z]{1,2}$/.test(t) ? t.toUpperCase() : t.charAt(0).toUpperCase() + t.slice(1);
}
const memory = (mb) => (typeof mb !== 'number' ? dash() : mb >= 1024 && mb % 256 === 0 ? `${mb / 1024} GB` : `${mb} MB`);
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
function relTime(sec) {
  const d = sec - Date.now() / 1000;
  const [div, unit] = [[1, 'second'], [60, 'minute'], [3600, 'hour'], [86400, 'day'], [2592000, 'month'], [31536000, 'year']].findLast(([x]) => Math.abs(d) >= x * 0.99) || [1, 'second'];
  return rtf.format(Math.round(d / div), unit);
}
function timeEl(sec) {
  if (typeof sec !== 'number' || !isFinite(sec)) return muted('Never');
  const d = new Date(sec * 1000);
  return h('time', { datetime: d.toISOString() }, dtf.format(d), ' ', muted(`(${relTime(sec)})`));
}

function appIcon(app, size = 'md') {
  const fallback = () => {
    let hue = 0;
    for (const ch of String(app.id || app.name)) hue = (hue * 31 + ch.codePointAt(0)) % 360;
    const n = h('span', { class: `app-icon app-icon-${size} placeholder`, 'aria-hidden': 'true' },
      ([...String(app.name || app.id || '?').trim()][0] || '?').toUpperCase());
    n.style.setProperty('--hue', hue); // CSSOM, so a strict style-src CSP allows it
    return n;
  };
  const url = app.icon_url;
  // Same-origin paths only: the UI loads nothing from other hosts.
  if (typeof url !== 'string' || !/^\/(?!\/)/.test(url)) return fallback();
  const img = h('img', { class: `app-icon app-icon-${size}`, src: url, alt: '', loading: 'lazy' });
  img.onerror = () => img.replaceWith(fallback());
  return img;
}

function gpuBadge(gpu) {
  const vs = arr(gpu?.supported);
  if (!vs.length) return null;
  const text = `GPU ${gpu.required ? 'required' : 'optional'}: ${vs.map(vendor).join(', ')}`;
  return h('span', { class: 'badge badge-gpu ' + (gpu.required ? 't-warn required' : 't-ok'), title: text, 'aria-label': text, tid: 'gpu-badge' },
    icon('chip'), 'GPU', gpu.required && ' required');
}

function errorBox(err, retry) {
  return h('div', { class: 'alert alert-error', role: 'alert', tid: 'error' }, icon('alert', 'alert-icon'),
    h('div', 'alert-body', h('strong', null, 'Something went wrong'), h('p', null, err?.message || String(err)),
      retry && h('button', { type: 'button', class: 'btn', onclick: retry }, 'Try again')));
}
const loading = () => h('div', { class: 'loading', role: 'status' }, h('span', 'spinner'), 'Loading…');

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
let booted = false;
let lastListHash = '#/apps';
let focusSearchOnMount = false;

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
  if (session.auth === 'password' && !session.logged_in) { mount('login', loginView); booted = true; return; }
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
  if (inst) { mount('install', installView, decoded(inst[1])); booted = true; return; }
  if (job) { mount('job', jobView, job[1]); booted = true; return; }
  if (installed) { mount('installed-app', installed[2] ? reconfigureView : installDetailView, installed[1]); booted = true; return; }
  if (path === '/gpus') { mount('gpus', gpusView); booted = true; return; }
  if (path === '/apps') {
    if (current?.name === 'list') current.update(params);
    else mount('list', listView, params);
  } else if (m) {
    mount('detail', detailView, decoded(m[1]));
  } else if (section === 'installed') mount('installed', installedView);
  else if (section) mount('system', systemView);
  else mount('missing', notFoundView, path);
  booted = true;
}

// -- view: app list
const SORTS = { featured: 'Featured', popular: 'Popular', updated: 'Recently updated', name: 'Name' };
const PAGE = 48;
const cache = { key: null, text: null, data: null, y: 0, opened: null };

function readParams(p) {
  const sort = p.get('sort');
  return { q: p.get('q') || '', category: p.get('category') || '', tag: p.get('tag') || '', sort: Object.hasOwn(SORTS, sort || '') ? sort : 'featured' };
}
function listHash(s) {
  const qs = new URLSearchParams();
  for (const k of ['q', 'category', 'tag']) if (s[k]) qs.set(k, s[k]);
  if (s.sort && s.sort !== 'featured') qs.set('sort', s.sort);
  return '#/apps' + (qs.size ? '?' + qs : '');
}

function appCard(app) {
  return h('a', { class: 'card', href: '#/apps/' + encodeURIComponent(app.id), tid: 'app-card', 'data-app-id': app.id },
    h('div', 'card-head', appIcon(app),
      h('div', 'card-title', h('h2', 'card-name', app.name || app.id), h('span', 'card-version', app.version ? 'v' + app.version : '')),
      app.featured && h('span', { class: 'featured', title: 'Featured', 'aria-label': 'Featured' }, icon('star'))),
    h('p', 'card-desc', app.description || ''),
    h('div', 'card-foot', h('span', 'chip-row', arr(app.categories).map((c) => h('span', 'chip chip-sm', humanize(c)))), gpuBadge(app.gpu)));
}

function listView(main, params, ctx) {
  let state = readParams(params);
  let ctrl, timer, catKey, tagKey;
  let seq = 0;
  document.title = 'Apps · PVE App Store';
  const filtered = () => !!(state.q || state.category || state.tag);
  const clear = () => go({ q: '', category: '', tag: '' });

  const search = h('input', { type: 'search', id: 'search', class: 'search-input', tid: 'search', placeholder: 'Search apps', autocomplete: 'off', spellcheck: 'false', 'aria-keyshortcuts': '/' });
  const tagSel = h('select', { id: 'tag-filter', tid: 'tag-filter' }, h('option', { value: '' }, 'All tags'));
  const sortSel = h('select', { id: 'sort', tid: 'sort' }, Object.entries(SORTS).map(([v, l]) => h('option', { value: v }, l)));
  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Categories' });
  const count = h('p', { class: 'result-count', role: 'status', tid: 'result-count' });
  const grid = h('div', { class: 'grid', tid: 'app-grid' });
  const more = h('button', { type: 'button', class: 'btn more', tid: 'load-more', hidden: true, onclick: () => loadMore() }, 'Show more');

  main.append(h('section', 'list-view', h('h1', 'sr-only', 'Apps'),
    h('div', 'toolbar',
      h('div', 'search', h('label', { for: 'search', class: 'sr-only' }, 'Search apps'), icon('search', 'search-icon'), search, h('kbd', { class: 'search-kbd', 'aria-hidden': 'true' }, '/')),
      h('div', 'selects', h('label', 'select', h('span', null, 'Tag'), tagSel), h('label', 'select', h('span', null, 'Sort'), sortSel))),
    chips, count, grid, h('div', 'more-row', more)));

  function sync() {
    if (search.value.trim() !== state.q) search.value = state.q;
    sortSel.value = state.sort;
    if (state.tag && ![...tagSel.options].some((o) => o.value === state.tag)) tagSel.append(h('option', { value: state.tag }, state.tag));
    tagSel.value = state.tag;
    for (const c of chips.children) c.setAttribute('aria-pressed', c.dataset.category === state.category);
  }

  function render(data) {
    // Filters: the categories and tags maps cover the whole catalog, so they rarely change.
    const cats = Object.entries(data.categories || {}).sort((a, b) => a[0].localeCompare(b[0]));
    if (state.category && !cats.some(([c]) => c === state.category)) cats.push([state.category, 0]);
    if (JSON.stringify(cats) !== catKey) {
      catKey = JSON.stringify(cats);
      const had = chips.contains(document.activeElement) && document.activeElement.dataset.category;
      const chip = (v, label, n) => h('button', { type: 'button', class: 'chip chip-filter', tid: 'category-chip', 'data-category': v, onclick: () => go({ category: v }) },
        label, n != null && h('span', 'chip-count', String(n)));
      chips.replaceChildren(chip('', 'All'), ...cats.map(([c, n]) => chip(c, humanize(c), n)));
      if (had !== false) [...chips.children].find((c) => c.dataset.category === had)?.focus();
    }
    const tags = Object.entries(data.tags || {}).sort((a, b) => a[0].localeCompare(b[0]));
    if (JSON.stringify(tags) !== tagKey) {
      tagKey = JSON.stringify(tags);
      tagSel.replaceChildren(h('option', { value: '' }, 'All tags'), ...tags.map(([t, n]) => h('option', { value: t }, `${t} (${n})`)));
    }
    sync();
    const apps = arr(data.apps);
    const total = typeof data.total === 'number' ? data.total : apps.length;
    count.textContent = plural(total, 'app') + (state.q ? ` matching “${state.q}”` : '') + (apps.length < total ? ` · showing ${apps.length}` : '');
    more.hidden = apps.length >= total;
    more.disabled = false;
    grid.removeAttribute('aria-busy');
    grid.classList.remove('is-loading');
    grid.replaceChildren(...(apps.length ? apps.map(appCard) : [h('div', { class: 'empty', tid: 'empty' }, icon('search', 'empty-icon'), h('h2', null, 'No apps match'),
      h('p', 'muted', filtered() ? 'Try another search or clear the filters.' : 'The catalog has no apps yet. See System.'),
      filtered() && h('button', { type: 'button', class: 'btn', onclick: clear }, 'Clear filters'))]));
  }

  async function load(quiet) {
    const key = (lastListHash = listHash(state));
    ctrl?.abort();
    ctrl = new AbortController();
    const my = ++seq;
    if (!quiet) {
      grid.setAttribute('aria-busy', 'true');
      if ($('.card', grid)) grid.classList.add('is-loading');
      else grid.replaceChildren(loading());
    }
    let data;
    // A quiet revalidation asks for as many apps as are on screen (at most one full page of 200).
    const limit = quiet && cache.key === key ? Math.min(200, Math.max(PAGE, arr(cache.data?.apps).length)) : PAGE;
    try {
      data = await api.listApps({ ...state, limit }, { signal: ctrl.signal });
    } catch (err) {
      if (err.name === 'AbortError' || my !== seq || !ctx.alive) return;
      count.textContent = '';
      grid.className = 'grid';
      grid.removeAttribute('aria-busy');
      grid.replaceChildren(errorBox(err, () => load()));
      return;
    }
    const text = JSON.stringify(data);
    if (my !== seq || !ctx.alive || (quiet && text === cache.text)) return;
    const focused = document.activeElement?.closest?.('.card')?.dataset.appId;
    Object.assign(cache, { key, text, data });
    render(data);
    if (focused) focusCard(focused);
  }
  async function loadMore() {
    const shown = arr(cache.data?.apps);
    const my = seq;
    more.disabled = true;
    let next;
    try {
      next = await api.listApps({ ...state, offset: shown.length, limit: PAGE });
    } catch (err) {
      more.disabled = false;
      count.textContent = 'Could not load more apps: ' + (err.message || String(err));
      return;
    }
    if (my !== seq || !ctx.alive) return;
    const first = grid.children.length;
    const data = { ...next, apps: shown.concat(arr(next.apps)) };
    Object.assign(cache, { text: JSON.stringify(data), data });
    render(data);
    grid.children[first]?.focus({ preventScroll: true });
  }
  const focusCard = (id) => [...grid.children].find((c) => c.dataset.appId === id)?.focus({ preventScroll: true });

  function go(change, replace) {
    state = { ...state, ...change };
    const hash = listHash(state);
    if (hash !== location.hash) history[replace ? 'replaceState' : 'pushState'](null, '', hash);
    sync();
    load();
  }

  search.oninput = () => {
    clearTimeout(timer);
    timer = setTimeout(() => go({ q: search.value.trim() }, true), 120);
  };
  search.onkeydown = (e) => {
    if (e.key === 'Enter' || (e.key === 'Escape' && search.value)) {
      e.preventDefault();
      if (e.key === 'Escape') search.value = '';
      clearTimeout(timer);
      go({ q: search.value.trim() }, true);
    } else if (e.key === 'Escape') search.blur();
  };
  tagSel.onchange = () => go({ tag: tagSel.value });
  sortSel.onchange = () => go({ sort: sortSel.value });
  grid.onclick = (e) => { cache.opened = e.target.closest('.card')?.dataset.appId; };

  sync();
  if (cache.data && cache.key === listHash(state)) {
    // Back from an app page: show the list at once, where it was, then revalidate quietly.
    lastListHash = cache.key;
    render(cache.data);
    if (booted) { scrollTo(0, cache.y); if (cache.opened) focusCard(cache.opened); }
    load(true);
  } else load();
  if (focusSearchOnMount) { focusSearchOnMount = false; search.focus(); }

  return {
    update(p) {
      const next = readParams(p);
      if (listHash(next) !== listHash(state)) { state = next; sync(); load(); }
    },
    focusSearch() { search.focus(); search.select(); },
    cleanup() { clearTimeout(timer); ctrl?.abort(); cache.y = scrollY; },
  };
}

// -- view: app detail
const panel = (title, tid, ...body) => h('section', { class: 'panel', tid }, h('h2', 'panel-title', title), ...body);
const dl = (rows) => h('dl', 'kv', rows.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? dash())]));
const extLink = (url, cls) => h('a', { href: url, rel: 'noopener noreferrer', target: '_blank', class: cls }, url, icon('ext', 'i-sm'));
const table = (cls, heads, ...bodies) => h('div', 'table-wrap', h('table', 'table ' + cls,
  h('thead', null, h('tr', null, heads.map((t) => h('th', { scope: 'col' }, t)))), ...bodies));
const yes = (b) => (b ? h('span', 'req', 'Yes') : muted('No'));
const nameCell = (label, key, desc) => h('td', null, h('span', 'cell-title', label || key), code(key, 'cell-sub'), desc && h('p', 'cell-desc', desc));

function gpuBanner(gpu) {
  const vs = arr(gpu?.supported);
  const kind = !vs.length ? 'none' : gpu.required ? 'required' : 'optional';
  const [title, lead] = {
    required: ['GPU required', 'This app needs a GPU passed through to its container.'],
    optional: ['GPU optional', 'This app runs without a GPU and can use one for hardware acceleration.'],
    none: ['No GPU support', 'This app runs on the CPU only.'],
  }[kind];
  const profiles = arr(gpu?.profiles);
  return h('section', { class: `gpu-banner gpu-${kind}`, tid: 'gpu-banner', 'data-gpu': kind },
    h('span', 'gpu-banner-icon', icon('chip')),
    h('div', null, h('h2', null, title), h('p', null, lead),
      vs.length > 0 && h('p', 'gpu-meta',
        h('span', { tid: 'gpu-vendors' }, muted('Vendors'), vs.map((v) => h('span', 'chip chip-sm', vendor(v)))),
        profiles.length > 0 && h('span', { tid: 'gpu-profiles' }, muted('Profiles'), profiles.map((p) => code(p)))),
      gpu?.notes && h('p', 'gpu-notes', gpu.notes)));
}

function inputDefault(inp) {
  const d = inp.default;
  const empty = d == null || d === '';
  if (inp.type === 'secret') return inp.generate ? h('span', 'badge t-info', 'generated') : empty ? dash() : muted('hidden');
  if (empty) return dash();
  if (typeof d === 'boolean') return d ? 'On' : 'Off';
  return code(typeof d === 'string' ? d : JSON.stringify(d));
}

function inputHelp(inp, byKey) {
  const v = inp.validation || {};
  const meta = [];
  const num = (x) => typeof x === 'number';
  if (arr(v.enum).length) meta.push(['Choices', v.enum.map((x) => [code(x), ' '])]);
  if (num(v.min) || num(v.max)) {
    meta.push([inp.type === 'number' ? 'Range' : 'Length', num(v.min) && num(v.max) ? `${v.min} – ${v.max}` : num(v.min) ? `at least ${v.min}` : `at most ${v.max}`]);
  }
  if (v.regex) meta.push(['Pattern', code(v.regex, 'regex')]);
  const sw = inp.show_when;
  if (sw?.input) meta.push(['Shown when', `${byKey.get(sw.input)?.label || sw.input} is `, arr(sw.values).map((x, i) => [i ? ' or ' : '', code(x)])]);
  return [
    (inp.help || inp.placeholder) && h('p', inp.help ? null : 'muted', inp.help || inp.placeholder),
    meta.length > 0 && h('ul', 'meta', meta.map(([k, ...rest]) => h('li', null, muted(k + ': '), rest))),
    inp.reconfigurable && h('span', { class: 'badge badge-soft', title: 'Can be changed after the install' }, 'reconfigurable'),
  ];
}

function inputsTable(inputs) {
  if (!inputs.length) return h('p', 'muted', 'This app has no install options.');
  const byKey = new Map(inputs.map((i) => [i.key, i]));
  const groups = new Map();
  for (const i of inputs) groups.set(i.group || '', [...(groups.get(i.group || '') || []), i]);
  const named = groups.size > 1 || !groups.has('');
  return table('inputs', ['Option', 'Type', 'Default', 'Required', 'Help'], [...groups].map(([g, rows]) => h('tbody', null,
    named && h('tr', 'group-row', h('th', { colspan: 5, scope: 'colgroup' }, g || 'General')),
    rows.map((i) => h('tr', null, nameCell(i.label, i.key),
      h('td', null, h('span', 'type', i.type || '')), h('td', null, inputDefault(i)),
      h('td', null, yes(i.required)), h('td', 'help', inputHelp(i, byKey)))))));
}

function volumeSource(v) {
  const s = v.source || {};
  if (s.host_path) return [muted('Host path '), code(s.host_path.path || '')];
  if (s.managed) return `Managed volume, ${s.managed.size_gb} GB`;
  return dash();
}

function detailView(main, id, ctx) {
  document.title = `${id} · PVE App Store`;
  const load = () => {
    main.replaceChildren(loading());
    api.getApp(id).then((data) => ctx.alive && renderDetail(main, data), (err) => {
      if (!ctx.alive) return;
      const gone = err.status === 404;
      if (gone) document.title = 'App not found · PVE App Store';
      main.replaceChildren(h('div', { class: 'detail', tid: 'app-detail' }, backLink(), gone
        ? notFound('App not found', err.message) : errorBox(err, load)));
    });
  };
  load();
}
const backLink = () => h('a', { class: 'back', href: lastListHash, tid: 'back' }, icon('back'), 'All apps');

function renderDetail(main, data) {
  const app = data.app || {};
  const m = data.manifest || {};
  const name = m.name || app.name || app.id;
  const version = m.version || app.version;
  const lxc = m.lxc || {};
  const files = arr(data.files);
  const outputs = arr(m.outputs);
  const maint = arr(m.maintainers);
  const req = m.requires || {};
  const home = safeUrl(m.homepage);
  document.title = `${name} · PVE App Store`;

  let readme = null;
  if (typeof data.readme === 'string' && data.readme.trim()) {
    readme = renderMarkdown(data.readme, { headingOffset: 1 });
    // Drop a leading "# <App name>": the page already shows it.
    const first = readme.firstElementChild;
    if (first?.tagName === 'H2' && first.textContent.trim().toLowerCase() === String(name).toLowerCase()) first.remove();
  }

  main.replaceChildren(h('article', { class: 'detail', tid: 'app-detail', 'data-app-id': app.id || m.id }, backLink(),
    h('header', 'detail-head', appIcon({ ...app, name }, 'lg'),
      h('div', 'detail-title',
        h('h1', null, h('span', null, name), version && h('span', 'version', 'v' + version)),
        h('p', 'detail-desc', m.description || app.description || ''),
        h('div', 'chip-row',
          arr(m.categories || app.categories).map((c) => h('a', { class: 'chip', href: listHash({ category: c }) }, humanize(c))),
          arr(m.tags || app.tags).map((t) => h('a', { class: 'chip chip-tag', href: listHash({ tag: t }) }, '#' + t)))),
      h('div', 'detail-actions',
        h('a', { class: 'btn btn-primary detail-action', href: '#/install/' + encodeURIComponent(app.id || m.id), tid: 'install' }, 'Install'),
        home && h('a', { class: 'btn detail-action', href: home, rel: 'noopener noreferrer', target: '_blank', tid: 'homepage' }, 'Homepage', icon('ext', 'i-sm')))),
    gpuBanner(m.gpu || app.gpu),
    h('div', 'detail-grid',
      h('div', null,
        panel('Install options', 'inputs', inputsTable(arr(m.inputs))),
        panel('Volumes', 'volumes', arr(m.volumes).length
          ? table('volumes', ['Volume', 'Mount path', 'Source', 'Required'], h('tbody', null, m.volumes.map((v) => h('tr', null,
            nameCell(v.label, v.name, v.description), h('td', null, code(v.mount_path || '')), h('td', null, volumeSource(v)), h('td', null, yes(v.required !== false))))))
          : h('p', 'muted', 'This app keeps all its data on its root disk.')),
        panel('README', 'readme', readme || h('p', 'muted', 'This app has no README.'))),
      h('aside', 'detail-side',
        panel('About', 'about', dl([
          ['Homepage', home ? extLink(home, 'ext') : m.homepage],
          ['License', m.license],
          ['Maintainers', maint.length ? h('ul', 'plain', maint.map((x) => h('li', null, x))) : null],
          req.store && ['Store version', code(req.store)],
          req.pve && ['Proxmox VE', code(req.pve)],
          typeof app.updated === 'number' && ['Updated', timeEl(app.updated)],
          files.length > 0 && ['Files', plural(files.length, 'file')],
          data.manifest_sha256 && ['Manifest', h('code', { class: 'hash', title: data.manifest_sha256 }, String(data.manifest_sha256).slice(0, 12))],
        ])),
        panel('Resources', 'resources', dl([
          ['OS template', lxc.ostemplate && code(lxc.ostemplate)],
          ['CPU cores', lxc.cores],
          ['Memory', memory(lxc.memory_mb)],
          ['Disk', typeof lxc.disk_gb === 'number' ? `${lxc.disk_gb} GB` : null],
          ['Container', lxc.unprivileged === false ? h('span', 'warn', 'Privileged') : 'Unprivileged'],
          ['Features', arr(lxc.features).length ? lxc.features.map((f) => code(f)) : muted('None')],
          ['Start on boot', lxc.onboot ? 'Yes' : 'No'],
          lxc.bridge && ['Bridge', code(lxc.bridge)],
          lxc.storage && ['Storage', code(lxc.storage)],
        ])),
        panel('Outputs', 'outputs', outputs.length
          ? h('ul', 'outputs', outputs.map((o) => h('li', null, o.label || o.key, o.secret && h('span', 'badge badge-soft', 'secret'))))
          : muted('None'))))));
}

// -- view: system
function systemView(main, _, ctx) {
  document.title = 'System · PVE App Store';
  let polling = false;
  let notice = '';
  let failure = null;
  let last;
  let disc = null;

  async function loadDiscovery(refresh) {
    try { disc = await api.discovery(refresh); } catch (err) { disc = { error: err }; }
  }

  async function load() {
    main.replaceChildren(loading());
    try {
      const [st] = await Promise.all([api.catalog(), loadDiscovery(false)]);
      if (ctx.alive) render(st);
    } catch (err) {
      if (ctx.alive) main.replaceChildren(h('section', 'system', h('h1', 'page-title', 'System'), errorBox(err, load)));
    }
  }

  function render(st) {
    last = st;
    const src = st.source;
    const broken = arr(st.broken);
    const busy = !!st.refreshing || polling;
    const commit = String(src?.commit || '');
    const pill = (cls, ...kids) => h('span', { class: 'pill t-' + cls, tid: 'catalog-status' }, ...kids);
    main.replaceChildren(h('section', { class: 'system', tid: 'system' },
      h('div', 'page-head', h('h1', 'page-title', 'System'),
        h('button', { type: 'button', class: 'btn btn-primary', tid: 'refresh-catalog', disabled: busy, onclick: refresh },
          icon('refresh', busy ? 'spin' : ''), busy ? 'Refreshing…' : 'Refresh catalog')),
      h('p', { class: 'notice', role: 'status', tid: 'refresh-notice' }, notice),
      failure && errorBox(failure),
      st.last_error && h('div', { class: 'alert alert-error', role: 'alert', tid: 'last-error' }, icon('alert', 'alert-icon'),
        h('div', 'alert-body', h('strong', null, 'The last catalog refresh failed'), h('pre', 'alert-pre', st.last_error))),
      h('section', { class: 'panel', tid: 'catalog' },
        h('div', 'panel-head', h('h2', 'panel-title', 'Catalog'),
          busy ? pill('info', 'Refreshing') : st.last_error ? pill('err', 'Error')
            : broken.length ? pill('warn', plural(broken.length, 'broken app')) : pill('ok', icon('check', 'i-sm'), 'Healthy')),
        !src && h('p', 'muted', 'No catalog has been loaded yet.'),
        dl([
          src && ['Source', !src.url ? null : safeUrl(src.url) ? extLink(src.url, 'ext') : code(src.url, 'break')],
          src && ['Branch', src.branch && code(src.branch)],
          src && ['Commit', commit && h('code', { class: 'hash', title: commit, tid: 'commit' }, commit.slice(0, 12))],
          src && ['Commit time', timeEl(src.commit_time)],
          ['Apps', h('span', { tid: 'app-count' }, String(st.apps ?? 0))],
          ['Last refresh', timeEl(st.last_refresh)],
        ])),
      h('section', { class: 'panel', tid: 'broken-apps' },
        h('h2', 'panel-title', `Broken apps (${broken.length})`),
        broken.length
          ? [h('p', 'muted', 'These apps failed validation and are not offered until fixed in the catalog repository.'),
            broken.map((b) => h('div', { class: 'broken', tid: 'broken-app', 'data-dir': b.dir }, h('h3', null, code(b.dir)),
              h('ul', 'diags', arr(b.diagnostics).map((d) => h('li', { tid: 'diagnostic' },
                code(d.path || '(app)', 'diag-path'), ': ', d.message || '', d.hint && h('span', 'diag-hint', ` (${d.hint})`))))))]
          : h('p', 'ok-line', icon('check', 'i-sm'), 'Every app in the catalog passed validation.')),
      discoveryPanel(),
      h('section', { class: 'panel', tid: 'debug' }, h('h2', 'panel-title', 'Support'),
        h('p', 'muted', 'The debug bundle holds the last jobs with their transitions, the configuration with credentials removed, the last 200 service log lines and the last 200 lines of the newest failed job. Secrets are never in it.'),
        h('a', { class: 'btn', href: '/api/debug/bundle', download: 'pve-appstore-debug.json', tid: 'debug-bundle' }, 'Download debug bundle'))));
    if (st.refreshing && !polling) poll();
  }

  function discoveryPanel() {
    const again = h('button', { type: 'button', class: 'btn btn-sm', tid: 'refresh-discovery', onclick: async () => {
      again.disabled = true;
      await loadDiscovery(true);
      if (ctx.alive) render(last);
      $('[data-testid="refresh-discovery"]', main)?.focus();
    } }, icon('refresh'), 'Ask PVE again');
    const head = h('div', 'panel-head', h('h2', 'panel-title', 'Proxmox node'), again);
    if (!disc || disc.error) return h('section', { class: 'panel', tid: 'discovery' }, head, errorBox(disc?.error || 'Discovery is unavailable'));
    const p = disc.pve || {};
    const ok = (b, yes, no) => h('span', { class: 'pill t-' + (b ? 'ok' : 'warn') }, b ? yes : no);
    return h('section', { class: 'panel', tid: 'discovery' }, head,
      arr(p.errors).length > 0 && h('div', { class: 'alert alert-error', role: 'alert' }, icon('alert', 'alert-icon'),
        h('div', 'alert-body', h('strong', null, 'Some of the node could not be read'), h('ul', null, arr(p.errors).map((e) => h('li', null, e))))),
      dl([
        ['Node', code(p.node || '?')],
        ['PVE version', p.version ? code(p.version) : muted('unknown')],
        ['Pool', h('span', null, code(p.pool || '?'), ' ', ok(p.pool_ok, 'exists', 'missing or unreadable'))],
        ['Storages', arr(p.storages).length ? h('span', { tid: 'storages' }, arr(p.storages).map((x) => h('span', 'chip chip-sm', x.storage, x.storage === p.default_storage ? ' (default)' : '',
          typeof x.avail === 'number' ? ` · ${fmtBytes(x.avail)} free` : ''))) : muted('none that can hold containers')],
        ['Bridges', arr(p.bridges).length ? h('span', { tid: 'bridges' }, arr(p.bridges).map((b) => h('span', 'chip chip-sm', b.iface, b.iface === p.default_bridge ? ' (default)' : ''))) : muted('none')],
        ['Templates', arr(p.templates).length ? h('ul', 'plain', arr(p.templates).map((t) => h('li', null, code(t.volid, 'break')))) : muted('none downloaded yet (installs download what they need)')],
        ['GPUs', h('a', { href: '#/gpus' }, plural(arr(disc.gpus?.inventory?.gpus).length, 'GPU'))],
        disc.host && ['Host', `${plural(disc.host.cores, 'CPU core')}, ${fmtBytes(disc.host.memory_mb * 1048576)} memory`],
        ['Read', timeEl(p.fetched_at)],
      ]));
  }

  async function refresh() {
    polling = true;
    notice = '';
    failure = null;
    render(last);
    try {
      await api.refreshCatalog();
    } catch (err) {
      // 409: a refresh is already running; wait for it like for ours.
      if (err.status !== 409) {
        polling = false;
        failure = err;
        return ctx.alive && render(last);
      }
    }
    poll();
  }

  async function poll() {
    polling = true;
    for (let failures = 0; ctx.alive;) {
      await sleep(1000);
      if (!ctx.alive) return;
      let st;
      try {
        st = await api.catalog();
      } catch (err) {
        if (++failures < 5) continue;
        polling = false;
        failure = err;
        return ctx.alive && render(last);
      }
      if (!st.refreshing) {
        polling = false;
        notice = st.last_error ? 'The refresh finished with an error.' : `Catalog refreshed: ${plural(st.apps ?? 0, 'app')}.`;
        render(st);
        return $('[data-testid="refresh-catalog"]', main).focus();
      }
    }
  }

  load();
}

const notFound = (title, text) => h('div', { class: 'empty', tid: 'not-found' }, icon('search', 'empty-icon'), h('h1', null, title), h('p', 'muted', text),
  h('a', { class: 'btn', href: '#/apps' }, 'Browse apps'));
const notFoundView = (main, path) => void main.append(notFound('Page not found', `There is no page at ${path}.`));

// -- view: login (web.auth.mode: password)
let session = { auth: 'none', logged_in: true };

function loginView(main) {
  document.title = 'Log in · PVE App Store';
  const pw = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const err = h('p', { class: 'field-error', role: 'alert', 'data-testid': 'login-error' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-submit' }, 'Log in');
  const form = h('form', { class: 'login card', 'data-testid': 'login-form' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'This PVE App Store asks for its admin password (set on the node with pve-appstore passwd).'),
    h('label', { for: 'login-password' }, 'Password'), pw, err, btn);
  form.onsubmit = async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.textContent = '';
    try {
      await api.login(pw.value);
      session = await api.session();
      updateSessionUi();
      route();
    } catch (x) {
      err.textContent = x.fields?.password ? 'Wrong password.' : x.message;
      pw.select();
    } finally { btn.disabled = false; }
  };
  main.append(form);
  pw.focus();
}

function updateSessionUi() {
  const out = $('#logout');
  if (!out) return;
  out.hidden = !(session.auth === 'password' && session.logged_in);
}

// -- boot
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
  e.preventDefault();
  if (current?.name === 'list') current.focusSearch();
  else { focusSearchOnMount = true; location.hash = lastListHash; }
});

applyTheme();
$('#theme-toggle').onclick = () => {
  try { localStorage.setItem(THEME_KEY, theme() === 'dark' ? 'light' : 'dark'); } catch { /* not remembered */ }
  applyTheme();
};
darkQuery.addEventListener('change', applyTheme);
addEventListener('hashchange', route);
whenLoginNeeded(() => {
  if (session.logged_in && session.auth === 'password') { session = { ...session, logged_in: false }; updateSessionUi(); route(); }
});
const logoutBtn = $('#logout');
if (logoutBtn) logoutBtn.onclick = async () => {
  await api.logout().catch(() => {});
  session = { auth: 'password', logged_in: false };
  updateSessionUi();
  route();
};
api.session().then((s) => { session = s; }, () => {}).finally(() => { updateSessionUi(); route(); });
api.health().then((r) => { $('#store-version').textContent = r?.version ? 'v' + r.version : ''; }, () => {
  const v = $('#store-version');
  v.textContent = 'controller unreachable';
  v.classList.add('offline');
});

// -- view: install wizard (placement, resources, GPU, options, review)
const WIZARD_STEPS = ['Placement', 'Resources', 'GPU', 'Options', 'Review'];

function installView(main, id, ctx) {
  document.title = `Install ${id} · PVE App Store`;
  main.replaceChildren(loading());
  Promise.all([api.getApp(id), api.discovery().catch(() => null), api.gpuOptions(id).catch(() => null)]).then(
    ([data, disc, gpus]) => ctx.alive && wizard(main, data, disc, gpus),
    (err) => ctx.alive && main.replaceChildren(errorBox(err, () => installView(main, id, ctx))));
}

function shown(inp, values, byKey) {
  const sw = inp.show_when;
  if (!sw?.input) return true;
  const other = byKey.get(sw.input);
  return other && shown(other, values, byKey) && arr(sw.values).some((v) => String(v) === String(values[sw.input]));
}

function checkInput(inp, value) {
  const v = inp.validation || {};
  const empty = value === '' || value == null;
  if (empty) return inp.required && !inp.generate && inp.default == null ? 'A value is required.' : null;
  if (inp.type === 'number') {
    const n = Number(value);
    if (!Number.isFinite(n)) return 'Enter a number.';
    if (typeof v.min === 'number' && n < v.min) return `Must be at least ${v.min}.`;
    if (typeof v.max === 'number' && n > v.max) return `Must be at most ${v.max}.`;
  } else if (inp.type === 'string' || inp.type === 'secret') {
    const len = String(value).length;
    if (typeof v.min === 'number' && len < v.min) return `At least ${v.min} characters.`;
    if (typeof v.max === 'number' && len > v.max) return `At most ${v.max} characters.`;
    if (v.regex) { try { if (!new RegExp(v.regex).test(String(value))) return `Must match ${v.regex}.`; } catch { /* the server checks */ } }
  }
  return null;
}

// Form controls shared by the install wizard and the reconfigure form. `st` holds `values`,
// `errors` and `reveal`; `rerender` redraws the form (conditional fields, reveal).
function formKit(st, rerender) {
  const fieldRow = (key, label, control, help) => h('div', { class: 'field' + (st.errors[key] ? ' invalid' : ''), 'data-field': key },
    h('label', { for: 'f-' + key }, label), control,
    help && h('p', 'muted help', help),
    h('p', { class: 'field-error', tid: 'field-error', 'data-field': key }, st.errors[key] || ''));
  const text = (key, value, set, attrs = {}) => {
    const el = h('input', { id: 'f-' + key, value: value ?? '', tid: 'f-' + key, ...attrs });
    el.oninput = () => set(el.type === 'checkbox' ? el.checked : el.value);
    return el;
  };
  const select = (key, value, options, set) => {
    const el = h('select', { id: 'f-' + key, tid: 'f-' + key }, options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(value) }, l)));
    el.onchange = () => set(el.value);
    return el;
  };
  // One manifest input as a field; `all` are the form's inputs (conditional fields redraw on change).
  const inputField = (inp, all, extraHelp) => {
    const key = inp.key;
    const set = (v) => { st.values[key] = v; if (all.some((o) => o.show_when?.input === key)) rerender(); };
    let control;
    if (inp.type === 'boolean') control = text(key, '', set, { type: 'checkbox', checked: !!st.values[key] });
    else if (inp.type === 'select') control = select(key, st.values[key], arr(inp.validation?.enum).map((v) => [v, v]), set);
    else if (inp.type === 'secret') {
      const el = text(key, st.values[key], set, { type: st.reveal[key] ? 'text' : 'password', placeholder: inp.placeholder || '', autocomplete: 'new-password' });
      control = h('div', 'secret-row', el, h('button', { type: 'button', class: 'btn btn-sm', tid: 'reveal-' + key, 'aria-pressed': String(!!st.reveal[key]),
        onclick: () => { st.reveal[key] = !st.reveal[key]; rerender(); $('#f-' + key)?.focus(); } }, st.reveal[key] ? 'Hide' : 'Show'));
    } else control = text(key, st.values[key], set, { type: inp.type === 'number' ? 'number' : 'text', placeholder: inp.placeholder || '' });
    return fieldRow(key, inp.label || key, control, [inp.help, extraHelp].filter(Boolean).join(' ') || null);
  };
  return { fieldRow, text, select, inputField };
}

function wizard(main, data, disc, gpuOpts) {
  const m = data.manifest || {};
  const lxc = m.lxc || {};
  const inputs = arr(m.inputs);
  const byKey = new Map(inputs.map((i) => [i.key, i]));
  const pve = disc?.pve || {};
  const storages = arr(pve.storages).map((s) => s.storage);
  const bridges = arr(pve.bridges).map((b) => b.iface);
  const st = {
    step: 0, hostname: m.id, storage: pve.default_storage || storages[0] || '', bridge: pve.default_bridge || bridges[0] || '',
    net: 'dhcp', ip: '', gw: '', ip6: '', vlan: '', cores: lxc.cores, memory_mb: lxc.memory_mb, disk_gb: lxc.disk_gb,
    values: {}, errors: {}, reveal: {},
    gpuMode: m.gpu?.required ? 'auto' : 'none', gpuPick: [],
  };
  const gpuList = arr(gpuOpts?.gpus);
  const gpuLabel = (g) => `${g.name || vendor(g.vendor || 'unknown')} (${g.pci_address})`;
  for (const i of inputs) st.values[i.key] = i.default ?? (i.type === 'boolean' ? false : '');
  const stepsNav = h('ol', { class: 'wizard-steps', tid: 'wizard-steps' });
  const body = h('div', { class: 'wizard-body panel', tid: 'wizard-body' });
  const alert = h('div', { class: 'wizard-alert', role: 'alert', tid: 'wizard-error' });
  const back = h('button', { type: 'button', class: 'btn', tid: 'wizard-back' }, 'Back');
  const next = h('button', { type: 'button', class: 'btn btn-primary', tid: 'wizard-next' }, 'Next');
  main.replaceChildren(h('section', { class: 'wizard', tid: 'wizard', 'data-app-id': m.id },
    h('a', { class: 'back', href: '#/apps/' + encodeURIComponent(m.id) }, icon('back'), m.name || m.id),
    h('h1', null, 'Install ', m.name || m.id, h('span', 'version', 'v' + m.version)), stepsNav, alert, body,
    h('div', 'wizard-foot', back, next)));

  const { fieldRow, text, select, inputField } = formKit(st, () => render());

  function stepBody(i) {
    if (i === 0) {
      return [
        fieldRow('pool', 'Pool', h('input', { id: 'f-pool', value: pve.pool || 'the store\'s pool', disabled: true }), 'Every app goes into the store\'s own pool.'),
        fieldRow('hostname', 'Hostname', text('hostname', st.hostname, (v) => { st.hostname = v; })),
        fieldRow('storage', 'Storage', select('storage', st.storage, storages.map((x) => [x, x]), (v) => { st.storage = v; })),
        fieldRow('bridge', 'Network bridge', select('bridge', st.bridge, bridges.map((x) => [x, x]), (v) => { st.bridge = v; })),
        fieldRow('net', 'IPv4', select('net', st.net, [['dhcp', 'DHCP'], ['static', 'Static']], (v) => { st.net = v; render(); })),
        st.net === 'static' && fieldRow('ip', 'Address (CIDR)', text('ip', st.ip, (v) => { st.ip = v; }, { placeholder: '192.168.1.50/24' })),
        st.net === 'static' && fieldRow('gw', 'Gateway', text('gw', st.gw, (v) => { st.gw = v; }, { placeholder: '192.168.1.1' })),
        h('details', { class: 'advanced' }, h('summary', null, 'Advanced'),
          fieldRow('ip6', 'IPv6', text('ip6', st.ip6, (v) => { st.ip6 = v; }, { placeholder: 'auto, dhcp or an address/prefix' })),
          fieldRow('vlan', 'VLAN tag', text('vlan', st.vlan, (v) => { st.vlan = v; }, { type: 'number', min: 1, max: 4094 }))),
      ];
    }
    if (i === 1) {
      return [
        fieldRow('cores', 'CPU cores', text('cores', st.cores, (v) => { st.cores = v; }, { type: 'number', min: 1 })),
        fieldRow('memory_mb', 'Memory (MiB)', text('memory_mb', st.memory_mb, (v) => { st.memory_mb = v; }, { type: 'number', min: 16 })),
        fieldRow('disk_gb', 'Disk (GiB)', text('disk_gb', st.disk_gb, (v) => { st.disk_gb = v; }, { type: 'number', min: 1 })),
      ];
    }
    if (i === 2) {
      const g = m.gpu || {};
      if (!arr(g.supported).length) return [h('p', { tid: 'gpu-step' }, `${m.name} does not use a GPU.`)];
      const usable = gpuList.filter((x) => x.usable);
      const best = gpuList.find((x) => x.pci_address === gpuOpts?.best);
      const radio = (value, label, disabled, help) => h('label', { class: 'radio-row' + (disabled ? ' disabled' : '') },
        h('input', { type: 'radio', name: 'gpu-mode', value, tid: 'gpu-mode-' + value, checked: st.gpuMode === value, disabled,
          onchange: () => { st.gpuMode = value; render(); } }),
        h('span', null, label, help && h('span', 'muted help', ' ' + help)));
      return [
        h('div', { tid: 'gpu-step' },
          h('p', null, `${m.name} ${g.required ? 'needs' : 'can use'} a GPU: ${arr(g.supported).map(vendor).join(', ')}.`),
          g.notes && h('p', 'muted help', g.notes),
          !g.required && radio('none', 'No GPU', false, 'the app runs on the CPU'),
          radio('auto', 'Pick the best GPU for me', !best, best ? `(${gpuLabel(best)})` : '(none fits)'),
          radio('devices', 'Choose the GPU', !usable.length),
          st.gpuMode === 'devices' && h('ul', { class: 'plain gpu-pick', tid: 'gpu-pick' }, gpuList.map((x) => h('li', null,
            h('label', { class: 'check-row' + (x.usable ? '' : ' disabled') },
              h('input', { type: 'checkbox', tid: 'gpu-' + x.pci_address, 'data-pci': x.pci_address, disabled: !x.usable, checked: st.gpuPick.includes(x.pci_address),
                onchange: (e) => { st.gpuPick = e.target.checked ? [...st.gpuPick, x.pci_address] : st.gpuPick.filter((p) => p !== x.pci_address); } }),
              h('span', null, h('strong', null, x.vendor ? vendor(x.vendor) : 'Unknown vendor'), ' ', x.name || '', ' ', code(x.pci_address),
                x.profile && muted(` profile ${x.profile}`), x.users ? muted(` · used by ${plural(x.users, 'container')}`) : null,
                x.reason && h('span', 'muted help', ` — ${x.reason}`)))))),
          h('p', { class: 'field-error', tid: 'field-error', 'data-field': 'gpu' }, st.errors.gpu || ''),
          gpuList.length === 0 && h('p', 'muted', 'No GPU was found on this host.'),
          gpuOpts?.nvidia_driver_version && h('p', 'muted help', `Host NVIDIA driver ${gpuOpts.nvidia_driver_version}: an NVIDIA app installs the matching userland.`)),
      ];
    }
    if (i === 3) {
      if (!inputs.length) return [h('p', 'muted', 'This app has no install options.')];
      return inputs.filter((inp) => shown(inp, st.values, byKey)).map((inp) => inputField(inp, inputs));
    }
    const rows = [
      ['App', `${m.name} ${m.version}`], ['Hostname', st.hostname], ['Pool', pve.pool || ''], ['Storage', st.storage], ['Bridge', st.bridge],
      ['IPv4', st.net === 'dhcp' ? 'DHCP' : `${st.ip} via ${st.gw || '-'}`], st.ip6 && ['IPv6', st.ip6], st.vlan && ['VLAN', st.vlan],
      ['Resources', `${st.cores} cores, ${st.memory_mb} MiB, ${st.disk_gb} GiB disk`],
      ['Volumes', arr(m.volumes).map((v) => v.name).join(', ') || 'none'],
      arr(m.gpu?.supported).length > 0 && ['GPU', st.gpuMode === 'none' ? 'none' : st.gpuMode === 'auto'
        ? `the best one${gpuOpts?.best ? ` (${gpuLabel(gpuList.find((x) => x.pci_address === gpuOpts.best) || { pci_address: gpuOpts.best })})` : ''}`
        : st.gpuPick.map((p) => gpuLabel(gpuList.find((x) => x.pci_address === p) || { pci_address: p })).join(', ')],
      ...inputs.filter((inp) => shown(inp, st.values, byKey)).map((inp) => [inp.label || inp.key,
        inp.type === 'secret' ? (st.values[inp.key] ? '(set)' : inp.generate ? '(generated)' : '') : String(st.values[inp.key] ?? '')]),
    ];
    return [h('p', null, 'This is exactly what will be created:'), h('div', { tid: 'review' }, dl(rows.filter(Boolean)))];
  }

  function validate() {
    const e = {};
    if (st.step === 0) {
      if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(st.hostname || '')) e.hostname = 'Letters, digits and -, at most 63.';
      if (st.net === 'static' && !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(st.ip)) e.ip = 'An IPv4 address with prefix, e.g. 192.168.1.50/24.';
    } else if (st.step === 1) {
      for (const k of ['cores', 'memory_mb', 'disk_gb']) if (!(Number(st[k]) >= 1)) e[k] = 'A whole number, at least 1.';
    } else if (st.step === 2) {
      if (st.gpuMode === 'devices' && !st.gpuPick.length) e.gpu = 'Choose at least one GPU, or another option.';
    } else if (st.step === 3) {
      for (const inp of inputs) {
        if (!shown(inp, st.values, byKey)) continue;
        const msg = checkInput(inp, st.values[inp.key]);
        if (msg) e[inp.key] = msg;
      }
    }
    return e;
  }

  function render() {
    stepsNav.replaceChildren(...WIZARD_STEPS.map((label, i) => h('li', { class: i === st.step ? 'current' : i < st.step ? 'done' : '', 'aria-current': i === st.step ? 'step' : null }, `${i + 1}. ${label}`)));
    body.replaceChildren(h('h2', null, WIZARD_STEPS[st.step]), ...stepBody(st.step).filter(Boolean));
    back.disabled = st.step === 0;
    next.textContent = st.step === WIZARD_STEPS.length - 1 ? 'Install' : 'Next';
    next.dataset.testid = st.step === WIZARD_STEPS.length - 1 ? 'wizard-install' : 'wizard-next';
  }

  async function submit() {
    const req = { app_id: m.id, hostname: st.hostname, storage: st.storage, bridge: st.bridge, cores: Number(st.cores), memory_mb: Number(st.memory_mb), disk_gb: Number(st.disk_gb), inputs: {}, network: {} };
    for (const inp of inputs) {
      if (!shown(inp, st.values, byKey)) continue;
      const v = st.values[inp.key];
      if (v === '' || v == null) continue;
      req.inputs[inp.key] = inp.type === 'number' ? Number(v) : v;
    }
    if (st.net === 'static') { req.network.ip = st.ip; if (st.gw) req.network.gw = st.gw; }
    if (st.ip6) req.network.ip6 = st.ip6;
    if (st.vlan) req.network.vlan = Number(st.vlan);
    if (st.gpuMode === 'auto') req.gpu = { mode: 'auto' };
    else if (st.gpuMode === 'devices') req.gpu = { mode: 'devices', pci_addresses: st.gpuPick };
    next.disabled = true;
    try {
      const r = await api.install(req);
      location.hash = '#/jobs/' + r.job_id;
    } catch (err) {
      // Server-side field errors land on their fields, on the step that has them.
      const fields = err.fields || {};
      const e = {};
      for (const [k, v] of Object.entries(fields)) e[k.replace(/^inputs\./, '')] = v;
      st.errors = e;
      if (Object.keys(fields).some((k) => k.startsWith('inputs.'))) st.step = 3;
      else if (fields.gpu) st.step = 2;
      alert.replaceChildren(errorBox(err));
      render();
    } finally { next.disabled = false; }
  }

  back.onclick = () => { if (st.step > 0) { st.step--; st.errors = {}; render(); } };
  next.onclick = () => {
    st.errors = validate();
    if (Object.keys(st.errors).length) { render(); body.querySelector('.invalid input, .invalid select')?.focus(); return; }
    alert.replaceChildren();
    if (st.step < WIZARD_STEPS.length - 1) { st.step++; render(); } else submit();
  };
  render();
}

// -- view: job (timeline, live log, outputs)
function jobView(main, id, ctx) {
  document.title = `Job ${id} · PVE App Store`;
  const state = h('span', { class: 'pill', tid: 'job-state' }, '…');
  const timeline = h('ol', { class: 'timeline', tid: 'job-timeline' });
  const log = h('pre', { class: 'log', tid: 'job-log', tabindex: 0 });
  const outputs = h('div', { tid: 'job-outputs' });
  const actions = h('div', 'job-actions');
  const title = h('h1', null, `Job ${id}`);
  main.replaceChildren(h('section', { class: 'job', tid: 'job', 'data-job-id': id }, title, h('p', null, 'State: ', state), actions,
    h('div', 'detail-grid', h('div', null, panel('Log', 'log', log)), h('aside', 'detail-side', panel('Timeline', 'timeline', timeline), panel('Outputs', 'outputs', outputs)))));
  let follow = true;
  log.onscroll = () => { follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8; };
  const fmt = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

  async function refresh() {
    const j = await api.job(id);
    if (!ctx.alive) return;
    const job = j.job || {};
    title.textContent = job.user_action || `Job ${id}`;
    state.textContent = job.state;
    state.className = 'pill t-' + (job.state === 'completed' ? 'ok' : job.state === 'failed' ? 'warn' : 'info');
    const tr = arr(j.transitions);
    timeline.replaceChildren(...tr.map((t, i) => h('li', { 'data-state': t.to_state }, h('span', null, t.to_state),
      i + 1 < tr.length ? muted(' ' + fmt(tr[i + 1].at_ms - t.at_ms)) : null, t.reason && h('p', 'field-error', t.reason))));
    actions.replaceChildren();
    const terminal = ['completed', 'failed', 'canceled'].includes(job.state);
    if (!terminal) actions.append(h('button', { type: 'button', class: 'btn', tid: 'job-cancel', onclick: () => api.cancelJob(id).catch(() => {}) }, 'Stop job'));
    if (terminal && job.kind === 'install' && job.state !== 'completed' && job.ctid) {
      actions.append(h('button', { type: 'button', class: 'btn', tid: 'job-destroy', onclick: async () => {
        const typed = prompt(`Destroy container ${job.ctid}? Type its id to confirm.`);
        if (typed === String(job.ctid)) { const r = await api.destroyFailed(id); location.hash = '#/jobs/' + r.job_id; }
      } }, 'Destroy failed container'));
    }
    if (job.state === 'completed' && job.install_id) {
      const list = await api.installs();
      const inst = arr(list.installs).find((x) => x.id === job.install_id);
      outputs.replaceChildren(h('ul', 'outputs', arr(inst?.outputs).map((o) => {
        const url = typeof o.value === 'string' && /^https?:\/\//.test(o.value) ? safeUrl(o.value) : null;
        return h('li', { tid: 'job-output', 'data-key': o.key }, h('span', null, o.label || o.key, ': '),
          o.secret ? muted('(secret: reveal it on the installed app\'s page)') : code(o.value ?? ''),
          !o.secret && h('button', { type: 'button', class: 'btn btn-sm', onclick: () => navigator.clipboard?.writeText(String(o.value)) }, 'Copy'),
          url && h('a', { class: 'btn btn-sm', href: url, target: '_blank', rel: 'noopener noreferrer', tid: 'open-app' }, 'Open app'));
      })));
    }
    return terminal;
  }

  const es = new EventSource(`/api/jobs/${encodeURIComponent(id)}/stream`);
  es.addEventListener('log', (e) => {
    const l = JSON.parse(e.data);
    log.append(h('span', { class: 'log-line ' + l.stream, 'data-seq': l.seq }, l.line + '\n'));
    if (follow) log.scrollTop = log.scrollHeight;
  });
  es.addEventListener('state', async (e) => {
    const s = JSON.parse(e.data);
    const terminal = await refresh().catch(() => false);
    if (terminal || ['completed', 'failed', 'canceled'].includes(s.state)) es.close();
  });
  es.onerror = () => { if (!ctx.alive) es.close(); };
  refresh().catch((err) => ctx.alive && main.prepend(errorBox(err)));
  return { cleanup: () => es.close() };
}

// -- view: installed apps
function installedView(main, _, ctx) {
  document.title = 'Installed · PVE App Store';
  const load = async () => {
    main.replaceChildren(loading());
    let list;
    try { list = await api.installs(); } catch (err) { if (ctx.alive) main.replaceChildren(errorBox(err, load)); return; }
    if (!ctx.alive) return;
    const installs = arr(list.installs).filter((i) => i.status === 'installed');
    if (!installs.length) {
      main.replaceChildren(h('div', { class: 'empty', tid: 'no-installs' }, h('h1', null, 'Nothing installed yet'),
        h('p', 'muted', 'Pick an app and install it; it shows up here.'), h('a', { class: 'btn btn-primary', href: '#/apps' }, 'Browse apps')));
      return;
    }
    main.replaceChildren(h('section', { class: 'installed', tid: 'installed' }, h('h1', null, 'Installed apps'),
      h('div', 'grid', installs.map((i) => installedCard(i)))));
  };
  load();
}

function installedCard(i) {
  const url = outputUrl(i);
  const up = i.upgrade || {};
  const status = h('div', { tid: 'install-status' });
  const { button, confirmBox } = uninstallControls(i, (err) => status.replaceChildren(errorBox(err)));
  return h('article', { class: 'card installed-card', tid: 'installed-app', 'data-app-id': i.app_id, 'data-install-id': i.id },
    h('div', 'card-head', h('div', null, h('h2', 'card-name', h('a', { href: '#/installed/' + i.id, tid: 'installed-link' }, i.app_id)),
      h('span', 'version', 'v' + i.version, ' · CT ', String(i.ctid ?? ''))),
      i.container_status && h('span', { class: 'pill t-' + stateClass(i.container_status), tid: 'ct-status' }, i.container_status)),
    up.status === 'available' && h('p', { class: 'badge t-info', tid: 'upgrade-available' }, `Upgrade available: ${up.to}`),
    up.status === 'blocked' && h('p', { class: 'muted', title: up.reason }, `Version ${up.to} cannot upgrade in place`),
    h('div', 'job-actions',
      url && h('a', { class: 'btn btn-sm', href: url, target: '_blank', rel: 'noopener noreferrer' }, 'Open'),
      h('a', { class: 'btn btn-sm', href: '#/installed/' + i.id, tid: 'details' }, 'Details'),
      i.reconfigurable && h('a', { class: 'btn btn-sm', href: `#/installed/${i.id}/reconfigure`, tid: 'reconfigure' }, 'Reconfigure'),
      up.status === 'available' && h('button', { type: 'button', class: 'btn btn-sm', tid: 'upgrade', onclick: async () => {
        try { const r = await api.upgrade(i.id); location.hash = '#/jobs/' + r.job_id; } catch (err) { status.replaceChildren(errorBox(err)); }
      } }, 'Upgrade'),
      button),
    confirmBox, status);
}

// -- shared pieces of the installed-app views
const outputUrl = (i) => arr(i.outputs).map((o) => (typeof o.value === 'string' && /^https?:\/\//.test(o.value) ? safeUrl(o.value) : null)).find(Boolean);
function fmtBytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return `${n >= 10 || u === 0 ? Math.round(n) : n.toFixed(1)} ${units[u]}`;
}
function fmtUptime(s) {
  if (typeof s !== 'number' || s < 0) return '—';
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${s % 60} s` : `${s} s`;
}
const msTime = (ms) => timeEl(typeof ms === 'number' ? ms / 1000 : null);
const stateClass = (s) => (s === 'completed' || s === 'running' || s === 'installed' ? 'ok' : s === 'failed' || s === 'stopped' ? 'warn' : 'info');

// Uninstall with a confirmation that offers to keep the data volumes.
function uninstallControls(i, onError, size = 'btn-sm') {
  const confirmBox = h('div', { class: 'confirm', hidden: true, tid: 'uninstall-confirm' });
  const keep = h('input', { type: 'checkbox', id: 'keep-' + i.id, tid: 'keep-volumes' });
  const button = h('button', { type: 'button', class: 'btn ' + size, tid: 'uninstall', 'aria-expanded': 'false',
    onclick: () => { confirmBox.hidden = false; button.setAttribute('aria-expanded', 'true'); keep.focus(); } }, 'Uninstall');
  confirmBox.append(h('p', null, `Uninstall ${i.app_id} and destroy container ${i.ctid}?`),
    h('label', { for: 'keep-' + i.id }, keep, ' Keep its data volumes for a later install'),
    h('div', 'wizard-foot',
      h('button', { type: 'button', class: 'btn', onclick: () => { confirmBox.hidden = true; button.setAttribute('aria-expanded', 'false'); button.focus(); } }, 'Cancel'),
      h('button', { type: 'button', class: 'btn btn-primary', tid: 'uninstall-confirm-button', onclick: async () => {
        try { const r = await api.uninstall(i.id, keep.checked); location.hash = '#/jobs/' + r.job_id; } catch (err) { onError(err); }
      } }, 'Uninstall')));
  return { button, confirmBox };
}

// -- view: one installed app (live state from PVE, outputs, volumes, config, job history)
function installDetailView(main, id, ctx) {
  document.title = `Installed app ${id} · PVE App Store`;
  let timer;
  let app = null;
  const status = h('div', { tid: 'install-error' });
  async function load(quiet) {
    if (!quiet) main.replaceChildren(loading());
    let d;
    try { d = await api.installDetail(id); } catch (err) { if (ctx.alive && !quiet) main.replaceChildren(errorBox(err, () => load())); return; }
    if (!ctx.alive) return;
    if (!app) app = await api.getApp(d.app_id).catch(() => null);
    if (!ctx.alive) return;
    if (quiet && $('[data-testid="live-stats"]', main)) $('[data-testid="live-stats"]', main).replaceWith(livePanel(d));
    else render(d);
    clearTimeout(timer);
    if (d.container && !d.container.error) timer = setTimeout(() => load(true), 3000);
  }
  function livePanel(d) {
    const c = d.container;
    if (!c) return panel('Container', 'live-stats', h('p', 'muted', d.status === 'removed' ? 'This app was uninstalled; its container is gone.' : 'No container.'));
    if (c.error) return panel('Container', 'live-stats', h('div', { class: 'alert alert-error', role: 'alert' }, icon('alert', 'alert-icon'), h('div', 'alert-body', c.error)));
    const st = c.status || {};
    const cpuPct = typeof st.cpu === 'number' ? `${(st.cpu * 100).toFixed(1)} % of ${plural(st.cpus ?? 1, 'core')}` : '—';
    const meter = (used, max, key) => {
      const pct = used != null && max ? Math.min(100, Math.round((used / max) * 100)) : null;
      return h('span', { class: 'meter-row', 'data-stat': key }, `${fmtBytes(used)} of ${fmtBytes(max)}`,
        pct != null && h('meter', { min: 0, max: 100, value: pct, 'aria-label': `${key} ${pct} %` }));
    };
    return panel('Live from PVE', 'live-stats',
      h('p', 'muted small', 'Refreshes every 3 seconds.'),
      dl([
        ['Status', h('span', { class: 'pill t-' + stateClass(st.status), tid: 'ct-status' }, st.status || 'unknown')],
        ['CPU', h('span', { 'data-stat': 'cpu' }, cpuPct)],
        ['Memory', meter(st.mem, st.maxmem, 'memory')],
        ['Disk', meter(st.disk, st.maxdisk, 'disk')],
        ['Network', h('span', { 'data-stat': 'net' }, `in ${fmtBytes(st.netin)}, out ${fmtBytes(st.netout)}`)],
        ['Uptime', h('span', { tid: 'uptime', 'data-stat': 'uptime' }, st.status === 'running' ? fmtUptime(st.uptime) : '—')],
      ]));
  }
  function render(d) {
    const c = d.container || {};
    const name = app?.manifest?.name || d.app_id;
    document.title = `${name} · PVE App Store`;
    const url = outputUrl(d);
    const up = d.upgrade || {};
    const reconfigurable = arr(app?.manifest?.inputs).some((x) => x.reconfigurable);
    const live = d.status === 'installed';
    const { button, confirmBox } = uninstallControls(d, (err) => status.replaceChildren(errorBox(err)), '');
    const config = Object.entries(c.config || {}).filter(([k]) => !['digest', 'description'].includes(k));
    main.replaceChildren(h('section', { class: 'installed-app', tid: 'installed-app-page', 'data-install-id': d.id },
      h('a', { class: 'back', href: '#/installed' }, icon('back'), 'Installed apps'),
      h('div', 'page-head',
        h('div', 'detail-title', app?.app && appIcon(app.app, 'lg'),
          h('div', null, h('h1', null, name), h('p', 'muted', `v${d.version} · CT ${d.ctid ?? '—'} · ${d.node} · pool ${d.pool}`))),
        h('span', { class: 'pill t-' + stateClass(d.status), tid: 'install-state' }, d.status)),
      live && h('div', 'job-actions',
        url && h('a', { class: 'btn', href: url, target: '_blank', rel: 'noopener noreferrer', tid: 'open-app' }, 'Open app', icon('ext', 'i-sm')),
        up.status === 'available' && h('button', { type: 'button', class: 'btn', tid: 'upgrade', onclick: async () => {
          try { const r = await api.upgrade(d.id); location.hash = '#/jobs/' + r.job_id; } catch (err) { status.replaceChildren(errorBox(err)); }
        } }, `Upgrade to ${up.to}`),
        reconfigurable && h('a', { class: 'btn', href: `#/installed/${d.id}/reconfigure`, tid: 'reconfigure' }, 'Reconfigure'),
        button),
      confirmBox, status,
      h('div', 'detail-grid',
        h('div', null,
          livePanel(d),
          panel('Volumes', 'volumes', arr(c.volumes).length ? table('volumes', ['Mount', 'Volume', 'Size'], h('tbody', null, arr(c.volumes).map((v) =>
            h('tr', { tid: 'volume-row' }, h('td', null, code(v.mount || '—')), h('td', null, code(v.volume, 'break')), h('td', null, v.size || '—')))))
            : h('p', 'muted', live ? 'No volumes reported.' : 'The container is gone.')),
          panel('Job history', 'job-history', table('jobs', ['Job', 'Kind', 'State', 'Started', 'What'],
            h('tbody', null, arr(d.jobs).map((j) => h('tr', { tid: 'history-row', 'data-job-id': j.id },
              h('td', null, h('a', { href: '#/jobs/' + j.id }, `#${j.id}`)), h('td', null, j.kind),
              h('td', null, h('span', { class: 'pill t-' + stateClass(j.state) }, j.state)),
              h('td', null, msTime(j.created_at)), h('td', null, j.user_action || '', j.error && h('p', 'field-error', j.error))))))),
          config.length > 0 && panel('Container config', 'ct-config', dl(config.map(([k, v]) => [k, code(v, 'break')])))),
        h('aside', 'detail-side',
          panel('Outputs', 'outputs', arr(d.outputs).length ? h('ul', 'outputs', arr(d.outputs).map((o) => h('li', { tid: 'output', 'data-key': o.key },
            h('span', null, o.label || o.key, ': '), o.secret ? secretOutput(d.id, o) : code(o.value ?? ''),
            !o.secret && h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Copy ${o.label || o.key}`, onclick: () => navigator.clipboard?.writeText(String(o.value)) }, 'Copy'))))
            : h('p', 'muted', 'No outputs.'))))));
  }
  load();
  return { cleanup: () => clearTimeout(timer) };
}

// A secret output (a generated password): hidden until revealed, which asks for the admin password
// again when login is on; the controller logs every reveal.
function secretOutput(installId, o) {
  const box = h('span', { class: 'secret-output', tid: 'secret-output' });
  const hidden = () => box.replaceChildren(muted('(secret)'), ' ',
    h('button', { type: 'button', class: 'btn btn-sm', tid: 'reveal-output', 'aria-label': `Reveal ${o.label || o.key}`, onclick: ask }, 'Reveal'));
  const show = (value) => box.replaceChildren(code(value), ' ',
    h('button', { type: 'button', class: 'btn btn-sm', tid: 'copy-output', 'aria-label': `Copy ${o.label || o.key}`, onclick: () => navigator.clipboard?.writeText(value) }, 'Copy'), ' ',
    h('button', { type: 'button', class: 'btn btn-sm', onclick: hidden }, 'Hide'));
  async function reveal(password, err) {
    try { show((await api.revealOutput(installId, o.key, password)).value); } catch (e) { if (err) err.textContent = e.message; else box.append(h('p', 'field-error', e.message)); }
  }
  function ask() {
    if (session.auth !== 'password') { reveal(null, null); return; }
    const pw = h('input', { type: 'password', autocomplete: 'current-password', placeholder: 'Admin password', 'aria-label': 'Admin password', tid: 'reveal-output-password' });
    const err = h('span', { class: 'field-error', role: 'alert' });
    box.replaceChildren(h('form', { class: 'reveal-form', onsubmit: (e) => { e.preventDefault(); reveal(pw.value, err); } },
      pw, ' ', h('button', { type: 'submit', class: 'btn btn-sm', tid: 'reveal-submit' }, 'Show'), ' ',
      h('button', { type: 'button', class: 'btn btn-sm', onclick: hidden }, 'Cancel'), ' ', err));
    pw.focus();
  }
  hidden();
  return box;
}

// -- view: reconfigure an installed app (only inputs the manifest marks reconfigurable)
function reconfigureView(main, id, ctx) {
  document.title = 'Reconfigure · PVE App Store';
  main.replaceChildren(loading());
  (async () => {
    let d, app;
    try { d = await api.installDetail(id); app = await api.getApp(d.app_id); } catch (err) { if (ctx.alive) main.replaceChildren(errorBox(err, () => reconfigureView(main, id, ctx))); return; }
    if (!ctx.alive) return;
    const m = app.manifest || {};
    const inputs = arr(m.inputs).filter((x) => x.reconfigurable);
    const byKey = new Map(arr(m.inputs).map((x) => [x.key, x]));
    const current = d.inputs && typeof d.inputs === 'object' ? d.inputs : {};
    const st = { values: {}, errors: {}, reveal: {}, restart: false };
    for (const inp of inputs) st.values[inp.key] = inp.type === 'secret' ? '' : current[inp.key] ?? inp.default ?? (inp.type === 'boolean' ? false : '');
    const form = h('form', { class: 'wizard-body panel', tid: 'reconfigure-form', novalidate: true });
    const alert = h('div', { class: 'wizard-alert', role: 'alert', tid: 'wizard-error' });
    const kit = formKit(st, () => render());
    const save = h('button', { type: 'submit', class: 'btn btn-primary', tid: 'reconfigure-submit' }, 'Apply');
    function render() {
      const all = inputs.map((x) => byKey.get(x.key) || x);
      form.replaceChildren(
        inputs.length ? h('p', 'muted', 'Only these options can change after an install. A secret left empty keeps its current value.')
          : h('p', 'muted', `${m.name || d.app_id} has no options that can change after an install.`),
        ...inputs.filter((inp) => shown(inp, { ...current, ...st.values }, byKey)).map((inp) => kit.inputField(inp, all, inp.type === 'secret' ? 'Leave empty to keep the current value.' : null)),
        inputs.length > 0 && h('label', { class: 'check-row' }, kit.text('restart', '', (v) => { st.restart = v; }, { type: 'checkbox', checked: st.restart }), ' Restart the container afterwards'),
        h('div', 'wizard-foot', h('a', { class: 'btn', href: '#/installed/' + d.id }, 'Cancel'), inputs.length > 0 && save));
    }
    form.onsubmit = async (e) => {
      e.preventDefault();
      const errors = {};
      const changed = {};
      for (const inp of inputs) {
        const v = st.values[inp.key];
        if (inp.type === 'secret' && (v === '' || v == null)) continue; // keep
        const msg = checkInput(inp, v);
        if (msg) errors[inp.key] = msg;
        changed[inp.key] = inp.type === 'number' && v !== '' ? Number(v) : v;
      }
      st.errors = errors;
      if (Object.keys(errors).length) { render(); form.querySelector('.invalid input, .invalid select')?.focus(); return; }
      save.disabled = true;
      try {
        const r = await api.reconfigure(d.id, changed, st.restart);
        location.hash = '#/jobs/' + r.job_id;
      } catch (err) {
        const fe = {};
        for (const [k, v] of Object.entries(err.fields || {})) fe[k.replace(/^inputs\./, '')] = v;
        st.errors = fe;
        alert.replaceChildren(errorBox(err));
        render();
      } finally { save.disabled = false; }
    };
    main.replaceChildren(h('section', { class: 'wizard', tid: 'reconfigure' },
      h('a', { class: 'back', href: '#/installed/' + d.id }, icon('back'), m.name || d.app_id),
      h('h1', null, 'Reconfigure ', m.name || d.app_id, h('span', 'version', `CT ${d.ctid}`)), alert, form));
    render();
  })();
}

// -- view: GPUs (the live inventory and which containers use each device)
function gpusView(main, _, ctx) {
  document.title = 'GPUs · PVE App Store';
  const live = h('span', { class: 'pill t-info', tid: 'gpu-live' }, 'Connecting…');
  let events;
  let demo = null;
  async function load() {
    let g;
    try { [g, demo] = await Promise.all([api.gpus(), api.demoGpus().catch(() => null)]); } catch (err) { if (ctx.alive) main.replaceChildren(errorBox(err, load)); return; }
    if (ctx.alive) render(g);
  }
  const demoPanel = () => demo && panel('Demo: simulate hot-plug', 'demo-gpus',
    h('p', 'muted', 'The demo runs on a simulated host. Unplug a card and watch this page follow the change live.'),
    h('ul', 'plain', arr(demo.gpus).map((d) => h('li', { class: 'check-row' },
      h('span', null, d.name, ' ', code(d.pci_address), ' ', h('span', { class: 'pill t-' + (d.present ? 'ok' : 'warn') }, d.present ? 'plugged in' : 'unplugged')),
      h('button', { type: 'button', class: 'btn btn-sm', tid: 'demo-plug-' + d.pci_address, onclick: async (e) => {
        e.target.disabled = true;
        try { await api.demoPlug(d.pci_address, !d.present); } catch (err) { main.prepend(errorBox(err)); }
      } }, d.present ? 'Unplug' : 'Plug in')))));
  function render(g) {
    const inv = g.inventory || {};
    const gpus = arr(inv.gpus);
    const att = arr(g.attachments);
    const users = (gpu) => {
      const paths = new Set(arr(gpu.nodes).map((n) => n.path));
      const cts = [...new Set(att.filter((a) => a.pci_address === gpu.pci_address || paths.has(a.device_path)).map((a) => a.ctid))];
      return cts.length ? cts.map((c) => h('span', 'chip chip-sm', `CT ${c}`)) : muted('none');
    };
    const hex = (n) => (typeof n === 'number' ? n.toString(16).padStart(4, '0') : '????');
    main.replaceChildren(h('section', { class: 'gpus', tid: 'gpus' },
      h('div', 'page-head', h('h1', 'page-title', 'GPUs'), live),
      g.last_error && h('div', { class: 'alert alert-error', role: 'alert' }, icon('alert', 'alert-icon'), h('div', 'alert-body', h('strong', null, 'The last scan failed'), h('p', null, g.last_error))),
      gpus.length
        ? table('gpu-table', ['PCI address', 'Vendor', 'Device', 'Driver', 'Device nodes', 'Used by'], h('tbody', null, gpus.map((gpu) =>
          h('tr', { tid: 'gpu-row', 'data-pci': gpu.pci_address },
            h('td', null, code(gpu.pci_address), gpu.boot_vga && h('span', 'chip chip-sm', 'boot display')),
            h('td', null, gpu.vendor ? vendor(gpu.vendor) : muted(`unsupported (${hex(gpu.vendor_id)})`)),
            h('td', null, gpu.name ? h('span', 'cell-title', gpu.name) : null, code(`${hex(gpu.vendor_id)}:${hex(gpu.device_id)}`),
              arr(gpu.problems).map((p) => h('p', 'field-error', p))),
            h('td', null, gpu.driver ? code(gpu.driver) : muted('no driver')),
            h('td', null, h('ul', 'plain', arr(gpu.nodes).map((n) => h('li', null, code(n.path), muted(` ${n.major}:${n.minor}`))))),
            h('td', null, users(gpu))))))
        : h('div', { class: 'empty', tid: 'no-gpus' }, icon('chip', 'empty-icon'), h('h2', null, 'No GPU found on this host'),
          h('p', 'muted', 'Intel and AMD GPUs show up through /dev/dri, NVIDIA GPUs through /dev/nvidia*. This page updates by itself when one appears.')),
      (arr(inv.shared_nodes).length > 0 || inv.nvidia_driver_version) && panel('Shared device nodes', 'shared-nodes',
        inv.nvidia_driver_version && h('p', null, 'NVIDIA driver ', code(inv.nvidia_driver_version)),
        h('ul', 'plain', arr(inv.shared_nodes).map((n) => h('li', null, code(n.path), muted(` ${n.major}:${n.minor}`))))),
      demoPanel(),
      h('p', 'muted small', `Scans so far: ${g.scans ?? 0}.`)));
  }
  events = new EventSource('/api/events');
  events.onopen = () => { live.textContent = 'Live'; live.className = 'pill t-ok'; };
  events.onerror = () => { live.textContent = 'Reconnecting…'; live.className = 'pill t-warn'; if (!ctx.alive) events.close(); };
  for (const kind of ['gpus', 'job', 'lagged']) events.addEventListener(kind, () => ctx.alive && load());
  main.replaceChildren(loading());
  load();
  return { cleanup: () => events.close() };
}
