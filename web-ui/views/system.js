// View: System (catalog source and health, refresh, broken apps, the Proxmox node as discovered,
// notification targets, and the debug bundle).
import { api } from '../api.js';
import { safeUrl } from '../markdown.js';
import { h, $, muted, code, icon, errorBox, loading, dl, extLink } from '../dom.js';
import { sleep, arr, plural, timeEl, fmtBytes } from '../format.js';
import { notificationsPanel } from './notify.js';

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
      notificationsPanel(ctx),
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

export { systemView };
