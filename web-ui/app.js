// PVE App Store web UI: hash router and views.
// All catalog data reaches the DOM through textContent / attributes only.

import { api, ApiError } from './api.js';
import { renderMarkdown, safeUrl } from './markdown.js';

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVGNS = 'http://www.w3.org/2000/svg';
const ICONS = {
  search: 'M11 4a7 7 0 1 0 0 14 7 7 0 1 0 0-14zM16.5 16.5 21 21',
  sun: 'M12 8a4 4 0 1 0 0 8 4 4 0 1 0 0-8zM12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4',
  moon: 'M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z',
  chip: 'M7 7h10v10H7zM10.5 10.5h3v3h-3zM10 3v4M14 3v4M10 17v4M14 17v4M3 10h4M3 14h4M17 10h4M17 14h4',
  back: 'M19 12H5M11 6l-6 6 6 6',
  refresh: 'M20 12a8 8 0 1 1-2.34-5.66M20 4v5h-5',
  external: 'M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5',
  star: 'M12 3.5l2.6 5.3 5.9.9-4.3 4.1 1 5.8-5.2-2.7-5.2 2.7 1-5.8-4.3-4.1 5.9-.9z',
  alert: 'M12 3.5 2.5 20h19zM12 10v4.5M12 17.2v.3',
  check: 'M5 12.5l4.5 4.5L19 7.5',
};

function icon(name, cls = 'i') {
  const svg = document.createElementNS(SVGNS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const p = document.createElementNS(SVGNS, 'path');
  p.setAttribute('d', ICONS[name]);
  svg.append(p);
  return svg;
}

const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- formatting ----------

const VENDORS = { intel: 'Intel', amd: 'AMD', nvidia: 'NVIDIA' };
const vendorName = (v) => VENDORS[String(v).toLowerCase()] || String(v);
const humanize = (s) => {
  const t = String(s).replace(/[-_]+/g, ' ').trim();
  if (t.length <= 3 && /^[a-z]+$/.test(t)) return t.toUpperCase();
  return t.charAt(0).toUpperCase() + t.slice(1);
};
const plural = (n, one, many = one + 's') => `${n} ${n === 1 ? one : many}`;
const list = (arr) => (Array.isArray(arr) ? arr : []);

function formatMemory(mb) {
  if (typeof mb !== 'number') return '—';
  return mb >= 1024 && mb % 256 === 0 ? `${+(mb / 1024).toFixed(2)} GB` : `${mb} MB`;
}

function formatBytes(n) {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function relTime(sec) {
  const diff = sec - Date.now() / 1000;
  const abs = Math.abs(diff);
  const units = [[60, 'second', 1], [3600, 'minute', 60], [86400, 'hour', 3600], [86400 * 30, 'day', 86400], [86400 * 365, 'month', 86400 * 30]];
  for (const [limit, unit, div] of units) {
    if (abs < limit) return rtf.format(Math.round(diff / div), unit);
  }
  return rtf.format(Math.round(diff / (86400 * 365)), 'year');
}

function timeEl(sec) {
  if (typeof sec !== 'number' || !isFinite(sec)) return h('span', { class: 'muted', text: 'Never' });
  const d = new Date(sec * 1000);
  return h('time', { datetime: d.toISOString(), title: d.toISOString() },
    dtf.format(d), ' ', h('span', { class: 'muted', text: `(${relTime(sec)})` }));
}

function hashHue(s) {
  let x = 0;
  for (const ch of String(s)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

function appIcon(app, size = 'md') {
  const placeholder = () => {
    const letter = ([...String(app.name || app.id || '?').trim()][0] || '?').toUpperCase();
    return h('span', {
      class: `app-icon app-icon-${size} placeholder`,
      style: `--hue:${hashHue(app.id || app.name)}`,
      'aria-hidden': 'true',
      text: letter,
    });
  };
  const url = app.icon_url;
  // Same-origin paths only: the UI never loads anything from another host.
  if (typeof url !== 'string' || !url.startsWith('/') || url.startsWith('//')) return placeholder();
  const img = h('img', { class: `app-icon app-icon-${size}`, src: url, alt: '', loading: 'lazy', decoding: 'async' });
  img.addEventListener('error', () => img.replaceWith(placeholder()), { once: true });
  return img;
}

function gpuSummary(gpu) {
  const vendors = list(gpu && gpu.supported);
  if (!vendors.length) return null;
  const names = vendors.map(vendorName).join(', ');
  return { required: !!gpu.required, vendors, text: `${gpu.required ? 'GPU required' : 'GPU optional'}: ${names}` };
}

function gpuBadge(gpu) {
  const g = gpuSummary(gpu);
  if (!g) return null;
  return h('span', { class: 'badge badge-gpu' + (g.required ? ' required' : ''), title: g.text, 'aria-label': g.text, 'data-testid': 'gpu-badge' },
    icon('chip'), 'GPU', g.required ? h('span', { class: 'badge-extra', text: 'required' }) : null);
}

function errorBox(err, retry) {
  const msg = err instanceof Error ? err.message : String(err);
  return h('div', { class: 'alert alert-error', role: 'alert', 'data-testid': 'error' },
    icon('alert', 'i alert-icon'),
    h('div', { class: 'alert-body' },
      h('strong', { text: err instanceof ApiError && err.status === 404 ? 'Not found' : 'Something went wrong' }),
      h('p', { text: msg }),
      retry ? h('button', { type: 'button', class: 'btn', onclick: retry, text: 'Try again' }) : null));
}

const loading = (text = 'Loading…') => h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);

// ---------- theme ----------

const THEME_KEY = 'pve-appstore.theme';
const darkQuery = matchMedia('(prefers-color-scheme: dark)');

function storedTheme() {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return t === 'dark' || t === 'light' ? t : null;
  } catch { return null; }
}

function currentTheme() {
  return storedTheme() || (darkQuery.matches ? 'dark' : 'light');
}

function applyTheme() {
  const t = storedTheme();
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  const btn = $('#theme-toggle');
  if (!btn) return;
  const next = currentTheme() === 'dark' ? 'light' : 'dark';
  btn.replaceChildren(icon(next === 'dark' ? 'moon' : 'sun'));
  btn.setAttribute('aria-label', `Switch to ${next} theme`);
  btn.title = `Switch to ${next} theme`;
}

function initTheme() {
  applyTheme();
  $('#theme-toggle')?.addEventListener('click', () => {
    const next = currentTheme() === 'dark' ? 'light' : 'dark';
    try { localStorage.setItem(THEME_KEY, next); } catch { /* private mode: not remembered */ }
    applyTheme();
  });
  darkQuery.addEventListener('change', applyTheme);
}

// ---------- router ----------

let current = null; // { name, ctx, update?, cleanup? }
let firstRoute = true;
let lastListHash = '#/apps';
let focusSearchOnMount = false;

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const qi = raw.indexOf('?');
  let path = (qi >= 0 ? raw.slice(0, qi) : raw).replace(/\/+$/, '');
  if (path === '' || path === '/') path = '/apps';
  return { path, params: new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '') };
}

function setNav(section) {
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function mount(name, view, arg) {
  if (current) {
    current.ctx.alive = false;
    current.cleanup?.();
  }
  const main = $('#main');
  main.replaceChildren();
  const ctx = { alive: true };
  const focusMain = !firstRoute;
  if (focusMain) window.scrollTo(0, 0);
  current = { name, ctx, ...(view(main, arg, ctx) || {}) };
  if (focusMain && (!document.activeElement || document.activeElement === document.body || !main.contains(document.activeElement))) {
    main.focus({ preventScroll: true });
  }
}

function route() {
  const { path, params } = parseHash();
  let m;
  if (path === '/apps') {
    setNav('apps');
    if (current?.name === 'list') current.update(params);
    else mount('list', listView, params);
  } else if ((m = /^\/apps\/([^/]+)$/.exec(path))) {
    setNav('apps');
    let id;
    try { id = decodeURIComponent(m[1]); } catch { id = m[1]; }
    mount('detail', detailView, id);
  } else if (path === '/system') {
    setNav('system');
    mount('system', systemView);
  } else {
    setNav(null);
    mount('notfound', notFoundView, path);
  }
  firstRoute = false;
}

// ---------- view: app list ----------

const SORTS = [['featured', 'Featured'], ['name', 'Name'], ['updated', 'Recently updated']];
const listCache = { key: null, text: null, data: null, scrollY: 0, openedId: null };

function readListParams(params) {
  const sort = params.get('sort');
  return {
    q: params.get('q') || '',
    category: params.get('category') || '',
    tag: params.get('tag') || '',
    sort: SORTS.some(([v]) => v === sort) ? sort : 'featured',
  };
}

function listHash(s) {
  const qs = new URLSearchParams();
  if (s.q) qs.set('q', s.q);
  if (s.category) qs.set('category', s.category);
  if (s.tag) qs.set('tag', s.tag);
  if (s.sort && s.sort !== 'featured') qs.set('sort', s.sort);
  const str = qs.toString();
  return '#/apps' + (str ? '?' + str : '');
}

function appCard(app) {
  const cats = list(app.categories);
  return h('a', {
    class: 'card',
    href: '#/apps/' + encodeURIComponent(app.id),
    'data-testid': 'app-card',
    'data-app-id': app.id,
  },
  h('div', { class: 'card-head' },
    appIcon(app),
    h('div', { class: 'card-title' },
      h('h2', { class: 'card-name', text: app.name || app.id }),
      h('span', { class: 'card-version', text: app.version ? 'v' + app.version : '' })),
    app.featured ? h('span', { class: 'featured', title: 'Featured', 'aria-label': 'Featured' }, icon('star')) : null),
  h('p', { class: 'card-desc', text: app.description || '' }),
  h('div', { class: 'card-foot' },
    h('span', { class: 'chip-row' }, cats.map((c) => h('span', { class: 'chip chip-sm', text: humanize(c) }))),
    gpuBadge(app.gpu)));
}

function skeletonCards(n) {
  return Array.from({ length: n }, () => h('div', { class: 'card skeleton', 'aria-hidden': 'true' },
    h('div', { class: 'card-head' }, h('span', { class: 'app-icon app-icon-md sk' }), h('div', { class: 'card-title' }, h('span', { class: 'sk sk-line' }), h('span', { class: 'sk sk-line short' }))),
    h('span', { class: 'sk sk-line' }), h('span', { class: 'sk sk-line short' })));
}

function listView(main, params, ctx) {
  let state = readListParams(params);
  let ctrl = null;
  let seq = 0;
  let timer = 0;
  let catKey = '';
  let tagKey = '';
  document.title = 'Apps · PVE App Store';

  const search = h('input', {
    type: 'search', id: 'search', class: 'search-input', 'data-testid': 'search',
    placeholder: 'Search apps', autocomplete: 'off', spellcheck: 'false', 'aria-keyshortcuts': '/',
  });
  const tagSelect = h('select', { id: 'tag-filter', 'data-testid': 'tag-filter' });
  const sortSelect = h('select', { id: 'sort', 'data-testid': 'sort' },
    SORTS.map(([v, label]) => h('option', { value: v, text: label })));
  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Categories' });
  const count = h('p', { class: 'result-count', role: 'status', 'aria-live': 'polite', 'data-testid': 'result-count' });
  const grid = h('div', { class: 'grid', 'data-testid': 'app-grid' });
  const clearBtn = h('button', { type: 'button', class: 'link-btn', text: 'Clear filters', hidden: true, onclick: () => go({ q: '', category: '', tag: '' }) });

  main.append(h('section', { class: 'list-view' },
    h('h1', { class: 'sr-only', text: 'Apps' }),
    h('div', { class: 'toolbar' },
      h('div', { class: 'search' },
        h('label', { for: 'search', class: 'sr-only', text: 'Search apps' }),
        icon('search', 'i search-icon'),
        search,
        h('kbd', { class: 'search-kbd', 'aria-hidden': 'true', text: '/' })),
      h('div', { class: 'selects' },
        h('label', { class: 'select' }, h('span', { text: 'Tag' }), tagSelect),
        h('label', { class: 'select' }, h('span', { text: 'Sort' }), sortSelect))),
    chips,
    h('div', { class: 'result-bar' }, count, clearBtn),
    grid));

  function syncControls() {
    if (search.value !== state.q) search.value = state.q;
    sortSelect.value = state.sort;
    ensureTagOption(state.tag);
    tagSelect.value = state.tag;
    for (const c of chips.querySelectorAll('.chip')) c.setAttribute('aria-pressed', String(c.dataset.category === state.category));
    clearBtn.hidden = !(state.q || state.category || state.tag);
  }

  function ensureTagOption(tag) {
    if (!tagSelect.options.length) tagSelect.append(h('option', { value: '', text: 'All tags' }));
    if (tag && ![...tagSelect.options].some((o) => o.value === tag)) tagSelect.append(h('option', { value: tag, text: tag }));
  }

  function renderFilters(data) {
    const cats = Object.entries(data.categories || {}).sort((a, b) => a[0].localeCompare(b[0]));
    if (state.category && !cats.some(([c]) => c === state.category)) cats.push([state.category, 0]);
    const ck = JSON.stringify(cats);
    if (ck !== catKey) {
      catKey = ck;
      const chip = (value, label, n) => h('button', {
        type: 'button', class: 'chip chip-filter', 'data-testid': 'category-chip', 'data-category': value,
        'aria-pressed': 'false', onclick: () => go({ category: value }),
      }, label, n !== null ? h('span', { class: 'chip-count', text: String(n) }) : null);
      const had = chips.contains(document.activeElement) ? document.activeElement.dataset.category : null;
      chips.replaceChildren(chip('', 'All', null), ...cats.map(([c, n]) => chip(c, humanize(c), n)));
      if (had !== null) chips.querySelector(`[data-category="${CSS.escape(had)}"]`)?.focus();
    }
    const tags = Object.entries(data.tags || {}).sort((a, b) => a[0].localeCompare(b[0]));
    const tk = JSON.stringify(tags);
    if (tk !== tagKey) {
      tagKey = tk;
      tagSelect.replaceChildren(h('option', { value: '', text: 'All tags' }),
        ...tags.map(([t, n]) => h('option', { value: t, text: `${t} (${n})` })));
    }
    syncControls();
  }

  function renderResults(data) {
    const apps = list(data.apps);
    const n = typeof data.total === 'number' ? data.total : apps.length;
    count.textContent = plural(n, 'app') + (state.q ? ` matching “${state.q}”` : '');
    grid.removeAttribute('aria-busy');
    grid.classList.remove('is-loading');
    if (!apps.length) {
      grid.replaceChildren(h('div', { class: 'empty', 'data-testid': 'empty' },
        icon('search', 'i empty-icon'),
        h('h2', { text: 'No apps match' }),
        h('p', { class: 'muted', text: state.q || state.category || state.tag ? 'Try another search or clear the filters.' : 'The catalog has no apps yet. See System for the catalog status.' }),
        state.q || state.category || state.tag ? h('button', { type: 'button', class: 'btn', text: 'Clear filters', onclick: () => go({ q: '', category: '', tag: '' }) }) : null));
      return;
    }
    grid.replaceChildren(...apps.map(appCard));
  }

  function render(data) {
    renderFilters(data);
    renderResults(data);
  }

  async function load({ quiet = false } = {}) {
    const key = listHash(state);
    lastListHash = key;
    ctrl?.abort();
    ctrl = new AbortController();
    const my = ++seq;
    if (!quiet) {
      grid.setAttribute('aria-busy', 'true');
      if (!grid.querySelector('.card')) grid.replaceChildren(...skeletonCards(6));
      else grid.classList.add('is-loading');
    }
    let data;
    try {
      data = await api.listApps({ q: state.q, category: state.category, tag: state.tag, sort: state.sort }, { signal: ctrl.signal });
    } catch (err) {
      if (err.name === 'AbortError' || my !== seq || !ctx.alive) return;
      grid.removeAttribute('aria-busy');
      grid.classList.remove('is-loading');
      count.textContent = '';
      grid.replaceChildren(errorBox(err, () => load()));
      return;
    }
    if (my !== seq || !ctx.alive) return;
    const text = JSON.stringify(data);
    if (quiet && text === listCache.text && key === listCache.key) return;
    const focusedId = document.activeElement?.closest?.('.card')?.dataset.appId;
    Object.assign(listCache, { key, text, data });
    render(data);
    if (focusedId) grid.querySelector(`[data-app-id="${CSS.escape(focusedId)}"]`)?.focus({ preventScroll: true });
  }

  function go(changes, { replace = false } = {}) {
    state = { ...state, ...changes };
    const hash = listHash(state);
    if (hash !== location.hash) history[replace ? 'replaceState' : 'pushState'](null, '', hash);
    syncControls();
    load();
  }

  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => go({ q: search.value.trim() }, { replace: true }), 120);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      if (search.value) { e.preventDefault(); search.value = ''; clearTimeout(timer); go({ q: '' }, { replace: true }); }
      else search.blur();
    } else if (e.key === 'Enter') {
      clearTimeout(timer);
      go({ q: search.value.trim() }, { replace: true });
    }
  });
  tagSelect.addEventListener('change', () => go({ tag: tagSelect.value }));
  sortSelect.addEventListener('change', () => go({ sort: sortSelect.value }));
  grid.addEventListener('click', (e) => {
    const card = e.target.closest('.card');
    if (card) listCache.openedId = card.dataset.appId;
  });

  // Coming back to the same list (e.g. from an app page): show it at once, where it was.
  syncControls();
  if (listCache.key === listHash(state) && listCache.data) {
    render(listCache.data);
    lastListHash = listCache.key;
    if (!firstRoute) {
      window.scrollTo(0, listCache.scrollY);
      const card = listCache.openedId && grid.querySelector(`[data-app-id="${CSS.escape(listCache.openedId)}"]`);
      card?.focus({ preventScroll: true });
    }
    load({ quiet: true });
  } else {
    load();
  }
  if (focusSearchOnMount) {
    focusSearchOnMount = false;
    search.focus();
  }

  return {
    update(params) {
      const next = readListParams(params);
      if (listHash(next) === listHash(state)) return;
      state = next;
      syncControls();
      load();
    },
    focusSearch() {
      search.focus();
      search.select();
    },
    cleanup() {
      clearTimeout(timer);
      ctrl?.abort();
      listCache.scrollY = window.scrollY;
    },
  };
}

// ---------- view: app detail ----------

function panel(title, testid, ...body) {
  return h('section', { class: 'panel', 'data-testid': testid },
    h('h2', { class: 'panel-title', text: title }), ...body);
}

function dl(rows) {
  return h('dl', { class: 'kv' }, rows.filter(Boolean).map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
}

function extLink(url, text) {
  const safe = safeUrl(url);
  if (!safe) return h('span', { text: text || url || '—' });
  return h('a', { href: safe, rel: 'noopener noreferrer', target: '_blank', class: 'ext' }, text || safe, icon('external', 'i i-sm'));
}

const yesNo = (b) => (b ? 'Yes' : 'No');
const dash = () => h('span', { class: 'muted', text: '—' });

function gpuBanner(gpu) {
  const vendors = list(gpu && gpu.supported);
  const kind = !vendors.length ? 'none' : gpu.required ? 'required' : 'optional';
  const titles = {
    required: 'GPU required',
    optional: 'GPU optional',
    none: 'No GPU support',
  };
  const leads = {
    required: 'This app needs a GPU passed through to its container.',
    optional: 'This app runs without a GPU and can use one for hardware acceleration.',
    none: 'This app runs on the CPU only.',
  };
  return h('section', { class: `gpu-banner gpu-${kind}`, 'data-testid': 'gpu-banner', 'data-gpu': kind },
    h('span', { class: 'gpu-banner-icon' }, icon('chip')),
    h('div', { class: 'gpu-banner-body' },
      h('h2', { text: titles[kind] }),
      h('p', { text: leads[kind] }),
      vendors.length ? h('p', { class: 'gpu-meta' },
        h('span', { 'data-testid': 'gpu-vendors' }, h('span', { class: 'muted', text: 'Vendors' }), vendors.map((v) => h('span', { class: 'chip chip-sm vendor', text: vendorName(v) }))),
        list(gpu.profiles).length ? h('span', { 'data-testid': 'gpu-profiles' }, h('span', { class: 'muted', text: 'Profiles' }), list(gpu.profiles).map((p) => h('code', { text: p }))) : null) : null,
      gpu && gpu.notes ? h('p', { class: 'gpu-notes', text: gpu.notes }) : null));
}

function inputDefault(inp) {
  if (inp.type === 'secret') {
    if (inp.generate) return h('span', { class: 'badge badge-info', text: 'generated' });
    return inp.default !== null && inp.default !== undefined && inp.default !== '' ? h('span', { class: 'muted', text: 'hidden' }) : dash();
  }
  if (inp.default === null || inp.default === undefined || inp.default === '') return dash();
  if (inp.type === 'boolean') return typeof inp.default === 'boolean' ? (inp.default ? 'On' : 'Off') : String(inp.default);
  return h('code', { text: typeof inp.default === 'string' ? inp.default : JSON.stringify(inp.default) });
}

function inputHelp(inp, byKey) {
  const v = inp.validation || {};
  const meta = [];
  if (list(v.enum).length) meta.push(['Choices', list(v.enum).map((x) => h('code', { text: String(x) }))]);
  if (typeof v.min === 'number' || typeof v.max === 'number') {
    const range = typeof v.min === 'number' && typeof v.max === 'number' ? `${v.min} – ${v.max}` : typeof v.min === 'number' ? `at least ${v.min}` : `at most ${v.max}`;
    meta.push([inp.type === 'number' ? 'Range' : 'Length', range]);
  }
  if (v.regex) meta.push(['Pattern', h('code', { class: 'regex', text: v.regex })]);
  if (inp.show_when && inp.show_when.input) {
    const other = byKey.get(inp.show_when.input);
    meta.push(['Shown when', `${other?.label || inp.show_when.input} is `, list(inp.show_when.values).map((x, i) => [i ? ' or ' : '', h('code', { text: String(x) })])]);
  }
  return [
    inp.help ? h('p', { text: inp.help }) : null,
    inp.placeholder && !inp.help ? h('p', { class: 'muted', text: inp.placeholder }) : null,
    meta.length ? h('ul', { class: 'meta' }, meta.map(([k, ...rest]) => h('li', {}, h('span', { class: 'muted', text: k + ': ' }), rest))) : null,
    inp.reconfigurable ? h('span', { class: 'badge badge-soft', title: 'Can be changed after the install', text: 'reconfigurable' }) : null,
  ];
}

function inputsTable(inputs) {
  if (!inputs.length) return h('p', { class: 'muted', text: 'This app has no install options.' });
  const byKey = new Map(inputs.map((i) => [i.key, i]));
  const groups = new Map();
  for (const inp of inputs) {
    const g = inp.group || '';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(inp);
  }
  const showGroups = groups.size > 1 || !groups.has('');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table inputs' },
    h('thead', {}, h('tr', {}, ['Option', 'Type', 'Default', 'Required', 'Help'].map((t) => h('th', { scope: 'col', text: t })))),
    [...groups].map(([g, rows]) => h('tbody', {},
      showGroups ? h('tr', { class: 'group-row' }, h('th', { colspan: '5', scope: 'colgroup', text: g || 'General' })) : null,
      rows.map((inp) => h('tr', { 'data-input-key': inp.key },
        h('td', {}, h('span', { class: 'cell-title', text: inp.label || inp.key }), h('code', { class: 'cell-sub', text: inp.key })),
        h('td', {}, h('span', { class: 'type type-' + String(inp.type).replace(/\W/g, ''), text: inp.type || '' })),
        h('td', {}, inputDefault(inp)),
        h('td', {}, inp.required ? h('span', { class: 'req', text: 'Yes' }) : h('span', { class: 'muted', text: 'No' })),
        h('td', { class: 'help' }, inputHelp(inp, byKey))))))));
}

function volumeSource(vol) {
  const src = vol.source || {};
  const managed = src.managed || (typeof vol.size_gb === 'number' ? { size_gb: vol.size_gb } : null);
  const host = src.host_path || (vol.host_path ? { path: typeof vol.host_path === 'string' ? vol.host_path : vol.host_path.path } : null);
  if (host) return [h('span', { class: 'muted', text: 'Host path ' }), h('code', { text: host.path || '' })];
  if (managed) return `Managed volume, ${managed.size_gb} GB`;
  return dash();
}

function volumesTable(vols) {
  if (!vols.length) return h('p', { class: 'muted', text: 'This app stores everything in its root disk.' });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table volumes' },
    h('thead', {}, h('tr', {}, ['Volume', 'Mount path', 'Source', 'Required'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, vols.map((v) => h('tr', { 'data-volume': v.name },
      h('td', {}, h('span', { class: 'cell-title', text: v.label || v.name }), h('code', { class: 'cell-sub', text: v.name }),
        v.description ? h('p', { class: 'cell-desc', text: v.description }) : null),
      h('td', {}, h('code', { text: v.mount_path || '' })),
      h('td', {}, volumeSource(v)),
      h('td', {}, v.required === false ? h('span', { class: 'muted', text: 'No' }) : h('span', { class: 'req', text: 'Yes' })))))));
}

function detailView(main, id, ctx) {
  document.title = `${id} · PVE App Store`;
  const load = () => {
    main.replaceChildren(loading());
    api.getApp(id).then((data) => {
      if (ctx.alive) renderDetail(main, data);
    }, (err) => {
      if (!ctx.alive) return;
      const notFound = err instanceof ApiError && err.status === 404;
      document.title = `${notFound ? 'App not found' : 'Error'} · PVE App Store`;
      main.replaceChildren(h('div', { class: 'detail', 'data-testid': 'app-detail' },
        backLink(),
        notFound
          ? h('div', { class: 'empty', 'data-testid': 'not-found' },
            icon('search', 'i empty-icon'),
            h('h1', { text: 'App not found' }),
            h('p', { class: 'muted', text: err.message }),
            h('a', { class: 'btn', href: '#/apps', text: 'Browse apps' }))
          : errorBox(err, load)));
    });
  };
  load();
}

function backLink() {
  return h('a', { class: 'back', href: lastListHash, 'data-testid': 'back' }, icon('back'), 'All apps');
}

function renderDetail(main, data) {
  const app = data.app || {};
  const m = data.manifest || {};
  const name = m.name || app.name || app.id;
  document.title = `${name} · PVE App Store`;
  const lxc = m.lxc || {};
  const cats = list(m.categories || app.categories);
  const tags = list(m.tags || app.tags);
  const files = list(data.files);
  const totalSize = files.reduce((s, f) => s + (typeof f.size === 'number' ? f.size : 0), 0);
  const features = list(lxc.features);
  const outputs = list(m.outputs);

  let readme = null;
  if (typeof data.readme === 'string' && data.readme.trim()) {
    readme = renderMarkdown(data.readme, { headingOffset: 1 });
    const first = readme.firstElementChild;
    if (first && first.tagName === 'H2' && first.textContent.trim().toLowerCase() === String(name).toLowerCase()) first.remove();
  }

  const homepage = m.homepage ? extLink(m.homepage) : null;
  const req = m.requires || {};

  main.replaceChildren(h('article', { class: 'detail', 'data-testid': 'app-detail', 'data-app-id': app.id || m.id },
    backLink(),
    h('header', { class: 'detail-head' },
      appIcon({ ...app, name }, 'lg'),
      h('div', { class: 'detail-title' },
        h('h1', {}, h('span', { text: name }), h('span', { class: 'version', text: (m.version || app.version) ? 'v' + (m.version || app.version) : '' })),
        h('p', { class: 'detail-desc', text: m.description || app.description || '' }),
        h('div', { class: 'chip-row' },
          cats.map((c) => h('a', { class: 'chip', href: listHash({ category: c }), text: humanize(c) })),
          tags.map((t) => h('a', { class: 'chip chip-tag', href: listHash({ tag: t }), text: '#' + t })))),
      safeUrl(m.homepage) ? h('div', { class: 'detail-actions' },
        h('a', { class: 'btn', href: safeUrl(m.homepage), rel: 'noopener noreferrer', target: '_blank', 'data-testid': 'homepage' }, 'Homepage', icon('external', 'i i-sm'))) : null),
    gpuBanner(m.gpu || app.gpu),
    h('div', { class: 'detail-grid' },
      h('div', { class: 'detail-main' },
        panel('Install options', 'inputs', inputsTable(list(m.inputs))),
        panel('Volumes', 'volumes', volumesTable(list(m.volumes))),
        panel('README', 'readme', readme || h('p', { class: 'muted', text: 'This app has no README.' }))),
      h('aside', { class: 'detail-side' },
        panel('About', 'about', dl([
          ['Homepage', homepage || dash()],
          ['License', m.license || dash()],
          ['Maintainers', list(m.maintainers).length ? h('ul', { class: 'plain' }, list(m.maintainers).map((x) => h('li', { text: x }))) : dash()],
          req.store ? ['Store version', h('code', { text: req.store })] : null,
          req.pve ? ['Proxmox VE', h('code', { text: req.pve })] : null,
          typeof app.updated === 'number' ? ['Updated', timeEl(app.updated)] : null,
          files.length ? ['Package', `${plural(files.length, 'file')}, ${formatBytes(totalSize)}`] : null,
          data.manifest_sha256 ? ['Manifest', h('code', { class: 'hash', title: data.manifest_sha256, text: String(data.manifest_sha256).slice(0, 12) })] : null,
        ])),
        panel('Resources', 'resources', dl([
          ['OS template', lxc.ostemplate ? h('code', { text: lxc.ostemplate }) : dash()],
          ['CPU cores', lxc.cores ?? dash()],
          ['Memory', formatMemory(lxc.memory_mb)],
          ['Disk', typeof lxc.disk_gb === 'number' ? `${lxc.disk_gb} GB` : dash()],
          ['Container', lxc.unprivileged === false ? h('span', { class: 'warn', text: 'Privileged' }) : 'Unprivileged'],
          ['Features', features.length ? features.map((f) => h('code', { text: f })) : h('span', { class: 'muted', text: 'None' })],
          ['Start on boot', yesNo(lxc.onboot)],
          lxc.bridge ? ['Bridge', h('code', { text: lxc.bridge })] : null,
          lxc.storage ? ['Storage', h('code', { text: lxc.storage })] : null,
        ])),
        panel('Outputs', 'outputs', outputs.length
          ? h('ul', { class: 'outputs' }, outputs.map((o) => h('li', {}, o.label || o.key, o.secret ? h('span', { class: 'badge badge-soft', text: 'secret' }) : null)))
          : h('p', { class: 'muted', text: 'None' }))))));
}

// ---------- view: system ----------

function systemView(main, _arg, ctx) {
  document.title = 'System · PVE App Store';
  let polling = false;
  let notice = '';

  const load = async () => {
    main.replaceChildren(loading());
    try {
      const st = await api.catalog();
      if (ctx.alive) render(st);
    } catch (err) {
      if (ctx.alive) main.replaceChildren(h('section', { class: 'system' }, h('h1', { class: 'page-title', text: 'System' }), errorBox(err, load)));
    }
  };

  function render(st) {
    const src = st.source;
    const broken = list(st.broken);
    const busy = !!st.refreshing || polling;
    const btn = h('button', {
      type: 'button', class: 'btn btn-primary', 'data-testid': 'refresh-catalog', disabled: busy,
      'aria-busy': busy ? 'true' : null, onclick: refresh,
    }, icon('refresh', 'i' + (busy ? ' spin' : '')), busy ? 'Refreshing…' : 'Refresh catalog');

    const status = busy
      ? h('span', { class: 'pill pill-busy', 'data-testid': 'catalog-status', text: 'Refreshing' })
      : st.last_error ? h('span', { class: 'pill pill-error', 'data-testid': 'catalog-status', text: 'Error' })
        : broken.length ? h('span', { class: 'pill pill-warn', 'data-testid': 'catalog-status', text: plural(broken.length, 'broken app') })
          : h('span', { class: 'pill pill-ok', 'data-testid': 'catalog-status' }, icon('check', 'i i-sm'), 'Healthy');

    const commit = src && src.commit ? String(src.commit) : '';
    main.replaceChildren(h('section', { class: 'system', 'data-testid': 'system' },
      h('div', { class: 'page-head' },
        h('h1', { class: 'page-title', text: 'System' }),
        btn),
      h('p', { class: 'notice', role: 'status', 'aria-live': 'polite', 'data-testid': 'refresh-notice', text: notice }),
      st.last_error ? h('div', { class: 'alert alert-error', role: 'alert', 'data-testid': 'last-error' },
        icon('alert', 'i alert-icon'),
        h('div', { class: 'alert-body' }, h('strong', { text: 'The last catalog refresh failed' }), h('pre', { class: 'alert-pre', text: st.last_error }))) : null,
      h('section', { class: 'panel', 'data-testid': 'catalog' },
        h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title', text: 'Catalog' }), status),
        src ? dl([
          ['Source', src.url ? (safeUrl(src.url) ? extLink(src.url) : h('code', { class: 'break', text: src.url })) : dash()],
          ['Branch', src.branch ? h('code', { text: src.branch }) : dash()],
          ['Commit', commit ? h('code', { class: 'hash', title: commit, 'data-testid': 'commit', text: commit.slice(0, 12) }) : dash()],
          ['Commit time', timeEl(src.commit_time)],
          ['Apps', h('span', { 'data-testid': 'app-count', text: String(st.apps ?? 0) })],
          ['Last refresh', timeEl(st.last_refresh)],
        ]) : [
          h('p', { class: 'muted', text: 'No catalog has been loaded yet.' }),
          dl([['Apps', String(st.apps ?? 0)], ['Last refresh', timeEl(st.last_refresh)]]),
        ]),
      h('section', { class: 'panel', 'data-testid': 'broken-apps' },
        h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title', text: `Broken apps (${broken.length})` })),
        broken.length
          ? [h('p', { class: 'muted', text: 'These app directories failed validation and are not offered in the store. Fix them in the catalog repository, then refresh.' }),
            broken.map((b) => h('div', { class: 'broken', 'data-testid': 'broken-app', 'data-dir': b.dir },
              h('h3', {}, h('code', { text: b.dir })),
              h('ul', { class: 'diags' }, list(b.diagnostics).map((d) => h('li', { 'data-testid': 'diagnostic' },
                h('code', { class: 'diag-path', text: d.path || '(app)' }), ': ',
                h('span', { text: d.message || '' }),
                d.hint ? h('span', { class: 'diag-hint', text: ` (${d.hint})` }) : null)))))]
          : h('p', { class: 'ok-line' }, icon('check', 'i i-sm'), 'Every app in the catalog passed validation.'))));
    if (st.refreshing && !polling) poll();
  }

  async function refresh() {
    polling = true;
    notice = '';
    const btn = $('[data-testid="refresh-catalog"]', main);
    if (btn) {
      btn.disabled = true;
      btn.replaceChildren(icon('refresh', 'i spin'), 'Refreshing…');
    }
    try {
      await api.refreshCatalog();
    } catch (err) {
      // 409: a refresh is already running; wait for it like for ours.
      if (!(err instanceof ApiError && err.status === 409)) {
        polling = false;
        if (!ctx.alive) return;
        notice = '';
        if (btn) {
          btn.disabled = false;
          btn.replaceChildren(icon('refresh'), 'Refresh catalog');
        }
        $('.notice', main)?.replaceWith(h('div', { class: 'notice' }, errorBox(err)));
        return;
      }
    }
    polling = false;
    poll();
  }

  async function poll() {
    polling = true;
    let failures = 0;
    while (ctx.alive) {
      await sleep(1000);
      if (!ctx.alive) return;
      let st;
      try {
        st = await api.catalog();
      } catch (err) {
        if (++failures < 5) continue;
        polling = false;
        main.prepend(errorBox(err, load));
        return;
      }
      if (!st.refreshing) {
        polling = false;
        notice = st.last_error ? 'Refresh finished with an error.' : `Catalog refreshed: ${plural(st.apps ?? 0, 'app')}.`;
        render(st);
        $('[data-testid="refresh-catalog"]', main)?.focus();
        return;
      }
    }
  }

  load();
}

// ---------- view: not found ----------

function notFoundView(main, path) {
  document.title = 'Not found · PVE App Store';
  main.append(h('section', { class: 'empty' },
    h('h1', { text: 'Page not found' }),
    h('p', { class: 'muted', text: `There is no page at ${path}.` }),
    h('a', { class: 'btn', href: '#/apps', text: 'Browse apps' })));
}

// ---------- boot ----------

function isTyping(el) {
  return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}

document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
  e.preventDefault();
  if (current?.name === 'list') current.focusSearch();
  else {
    focusSearchOnMount = true;
    location.hash = lastListHash;
  }
});

async function showVersion() {
  const el = $('#store-version');
  try {
    const hres = await api.health();
    el.textContent = hres && hres.version ? 'v' + hres.version : '';
  } catch {
    el.textContent = 'controller unreachable';
    el.classList.add('offline');
  }
}

initTheme();
window.addEventListener('hashchange', route);
route();
showVersion();
