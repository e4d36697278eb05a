// Views: the installed apps (cards with open, upgrade, reconfigure and uninstall) and one installed
// app's page (live state from PVE, history charts, container controls, outputs with secret reveal,
// volumes, config, job history).
import { api } from '../api.js';
import { safeUrl } from '../markdown.js';
import { h, $, muted, code, icon, appIcon, errorBox, loading, panel, dl, table } from '../dom.js';
import { arr, plural, fmtBytes, fmtUptime, msTime } from '../format.js';
import { session } from '../session.js';
import { controlsPanel, historyPanel, appLogPanel, backupsPanel, updatesPanel } from './day2.js';

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
    const offers = installs.filter((i) => i.upgrade?.status === 'available');
    const allStatus = h('div', { tid: 'upgrade-all-status' });
    main.replaceChildren(h('section', { class: 'installed', tid: 'installed' },
      h('div', 'page-head', h('h1', null, 'Installed apps'),
        offers.length > 0 && h('button', { type: 'button', class: 'btn btn-primary', tid: 'upgrade-all', onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            const r = await api.upgradeAll();
            allStatus.replaceChildren(h('p', 'muted', `${plural(arr(r.queued).length, 'upgrade')} queued`),
              arr(r.queued).map((q) => h('p', null, h('a', { href: '#/jobs/' + q.job_id }, `${q.app_id} ${q.from} → ${q.to}`))),
              arr(r.refused).length > 0 && h('ul', null, r.refused.map((x) => h('li', 'field-error', `${x.app_id}: ${x.reason}`))));
          } catch (err) { allStatus.replaceChildren(errorBox(err)); ev.target.disabled = false; }
        } }, `Update all (${offers.length})`)),
      allStatus,
      h('div', 'grid', installs.map((i) => installedCard(i)))));
  };
  load();
  // GPU drift is flagged live: the list reloads when the hot-plug view finds some.
  const events = new EventSource('/api/events');
  events.addEventListener('gpu_drift', () => { if (ctx.alive) load(); else events.close(); });
  return { cleanup: () => events.close() };
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
    up.status === 'available' && i.update_policy?.mode !== 'off' && h('p', { class: 'badge t-info', tid: 'upgrade-available' }, `Upgrade available: ${up.to}`),
    i.update_policy?.mode === 'automatic' && h('p', { class: 'muted small', tid: 'auto-updates' }, `Automatic updates · ${i.update_policy.window} ${i.update_policy.time_zone || 'UTC'}`),
    arr(i.gpu_drift).map((d) => h('p', { class: 'badge t-warn', tid: 'gpu-drift', 'data-kind': d.kind }, d.message)),
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

// What an upgrade brings, from the catalog's changelog, read before the upgrade button is pressed.
function changelogPanel(up) {
  const entries = arr(up.changes);
  return panel(`What's new in ${up.to}`, 'changelog', entries.length
    ? h('div', null, entries.map((e) => h('div', { class: 'changelog-entry', tid: 'changelog-entry', 'data-version': e.version },
      h('h3', null, 'v' + e.version, e.date && h('span', 'muted', ' · ' + e.date)),
      h('ul', null, arr(e.changes).map((c) => h('li', null, c))))))
    : h('p', 'muted', 'The catalog gives no changelog for this version.'));
}

// -- shared pieces of the installed-app views
const outputUrl = (i) => arr(i.outputs).map((o) => (typeof o.value === 'string' && /^https?:\/\//.test(o.value) ? safeUrl(o.value) : null)).find(Boolean);
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
          arr(d.gpu_drift).length > 0 && panel('GPU drift', 'gpu-drift-panel',
            arr(d.gpu_drift).map((x) => h('p', { class: 'badge t-warn', tid: 'gpu-drift', 'data-kind': x.kind }, x.message)),
            // A vanished card cannot be synced; it is attached again by itself when it comes back.
            arr(d.gpu_drift).some((x) => x.kind !== 'vanished') && h('button', { type: 'button', class: 'btn', tid: 'gpu-sync', onclick: async () => {
              try { const r = await api.gpuSync(d.id); location.hash = '#/jobs/' + r.job_id; } catch (err) { status.replaceChildren(errorBox(err)); }
            } }, 'GPU sync')),
          up.status === 'available' && changelogPanel(up),
          livePanel(d),
          live && d.container && !d.container.error && historyPanel(d.id, ctx),
          live && app?.manifest?.service && appLogPanel(d.id, ctx),
          live && backupsPanel(d, ctx),
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
          live && d.container && !d.container.error && controlsPanel(d),
          live && updatesPanel(d),
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

export { installedView, installDetailView };
