// DOM helpers: element builder, query, icons and the small building blocks every view uses
// (error box, spinner, panels, definition lists, tables, empty states).
// Catalog data reaches the DOM only through text nodes and attributes, never as HTML.

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

function errorBox(err, retry) {
  return h('div', { class: 'alert alert-error', role: 'alert', tid: 'error' }, icon('alert', 'alert-icon'),
    h('div', 'alert-body', h('strong', null, 'Something went wrong'), h('p', null, err?.message || String(err)),
      retry && h('button', { type: 'button', class: 'btn', onclick: retry }, 'Try again')));
}
const loading = () => h('div', { class: 'loading', role: 'status' }, h('span', 'spinner'), 'Loading…');

const panel = (title, tid, ...body) => h('section', { class: 'panel', tid }, h('h2', 'panel-title', title), ...body);
const dl = (rows) => h('dl', 'kv', rows.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? dash())]));
const extLink = (url, cls) => h('a', { href: url, rel: 'noopener noreferrer', target: '_blank', class: cls }, url, icon('ext', 'i-sm'));
const table = (cls, heads, ...bodies) => h('div', 'table-wrap', h('table', 'table ' + cls,
  h('thead', null, h('tr', null, heads.map((t) => h('th', { scope: 'col' }, t)))), ...bodies));

const notFound = (title, text) => h('div', { class: 'empty', tid: 'not-found' }, icon('search', 'empty-icon'), h('h1', null, title), h('p', 'muted', text),
  h('a', { class: 'btn', href: '#/apps' }, 'Browse apps'));

export { h, $, muted, dash, code, icon, appIcon, errorBox, loading, panel, dl, extLink, table, notFound };
