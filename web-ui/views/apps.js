// View: the app list (catalog) with search, category chips, tag and sort filters, and paging.
// The list remembers its last result and scroll position so Back from an app page is instant.
import { api } from '../api.js';
import { h, $, icon, appIcon, errorBox, loading } from '../dom.js';
import { arr, plural, vendor, humanize } from '../format.js';
import { booted, focusSearchOnMount, setLastListHash, setFocusSearchOnMount } from '../nav.js';

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

function gpuBadge(gpu) {
  const vs = arr(gpu?.supported);
  if (!vs.length) return null;
  const text = `GPU ${gpu.required ? 'required' : 'optional'}: ${vs.map(vendor).join(', ')}`;
  return h('span', { class: 'badge badge-gpu ' + (gpu.required ? 't-warn required' : 't-ok'), title: text, 'aria-label': text, tid: 'gpu-badge' },
    icon('chip'), 'GPU', gpu.required && ' required');
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
    const key = setLastListHash(listHash(state));
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
    setLastListHash(cache.key);
    render(cache.data);
    if (booted) { scrollTo(0, cache.y); if (cache.opened) focusCard(cache.opened); }
    load(true);
  } else load();
  if (focusSearchOnMount) { setFocusSearchOnMount(false); search.focus(); }

  return {
    update(p) {
      const next = readParams(p);
      if (listHash(next) !== listHash(state)) { state = next; sync(); load(); }
    },
    focusSearch() { search.focus(); search.select(); },
    cleanup() { clearTimeout(timer); ctrl?.abort(); cache.y = scrollY; },
  };
}

export { listView, listHash };
