// Day-2 panels of an installed app's page: container controls (power, resources, start at boot; each
// runs as a job) and history charts drawn as plain SVG from PVE's RRD data.
import { api } from '../api.js';
import { h, panel, errorBox } from '../dom.js';
import { arr, fmtBytes, timeEl } from '../format.js';

// -- controls
function controlsPanel(d) {
  const c = d.container || {};
  const cfg = c.config || {};
  const running = c.status?.status === 'running';
  const status = h('div', { tid: 'control-status', 'aria-live': 'polite' });
  const run = async (body, btn) => {
    if (btn) btn.disabled = true;
    try {
      const r = await api.control(d.id, body);
      location.hash = '#/jobs/' + r.job_id;
    } catch (err) {
      status.replaceChildren(errorBox(err));
      if (err.fields) for (const [k, v] of Object.entries(err.fields)) {
        const slot = document.querySelector(`[data-testid="control-error"][data-field="${k}"]`);
        if (slot) slot.textContent = v;
      }
      if (btn) btn.disabled = false;
    }
  };
  const power = (action, label, enabled, hint) => h('button', {
    type: 'button', class: 'btn', tid: 'control-' + action, disabled: !enabled, title: hint,
    onclick: (ev) => run({ action }, ev.currentTarget),
  }, label);
  const disk = sizeGb(cfg.rootfs);
  const num = (key, value, min, max, label, unit) => {
    const id = 'res-' + key;
    return h('div', 'field',
      h('label', { for: id }, label, unit && h('span', 'muted', ` (${unit})`)),
      h('input', { id, type: 'number', min, max, value: value ?? '', tid: id, inputmode: 'numeric' }),
      h('span', { class: 'field-error', tid: 'control-error', 'data-field': key, role: 'alert' }));
  };
  const form = h('form', { class: 'resize-form', tid: 'resize-form', onsubmit: (e) => {
    e.preventDefault();
    for (const slot of form.querySelectorAll('[data-testid="control-error"]')) slot.textContent = '';
    const val = (k) => { const v = form.querySelector('#res-' + k).value; return v === '' ? null : Number(v); };
    const body = { action: 'resize' };
    const cores = val('cores'), memory = val('memory_mb'), diskGb = val('disk_gb');
    if (cores !== null && cores !== Number(cfg.cores ?? 1)) body.cores = cores;
    if (memory !== null && memory !== Number(cfg.memory ?? 512)) body.memory_mb = memory;
    if (diskGb !== null && diskGb !== disk) body.disk_gb = diskGb;
    if (Object.keys(body).length === 1) { status.replaceChildren(h('p', 'muted', 'Nothing changed.')); return; }
    run(body, form.querySelector('button[type="submit"]'));
  } },
  h('div', 'resize-fields',
    num('cores', cfg.cores ?? 1, 1, null, 'Cores'),
    num('memory_mb', cfg.memory ?? 512, 64, null, 'Memory', 'MiB'),
    num('disk_gb', disk, disk ?? 1, null, 'Root disk', 'GiB, grow only')),
  h('button', { type: 'submit', class: 'btn', tid: 'resize-submit' }, 'Apply'));
  const onboot = cfg.onboot === '1';
  return panel('Container controls', 'controls',
    h('div', 'job-actions',
      power('start', 'Start', !running, running ? 'The container is running' : null),
      power('shutdown', 'Shut down', running, running ? null : 'The container is stopped'),
      power('reboot', 'Reboot', running, running ? null : 'The container is stopped'),
      power('stop', 'Stop now', running, running ? 'Stops at once, like pulling the plug' : 'The container is stopped')),
    h('h3', 'sub', 'Resources'),
    form,
    h('h3', 'sub', 'Start at boot'),
    h('label', { class: 'toggle' },
      h('input', { type: 'checkbox', tid: 'onboot', checked: onboot, onchange: (ev) => run({ action: 'onboot', enabled: ev.currentTarget.checked }, ev.currentTarget) }),
      ' Start this container when the host boots'),
    status);
}

// `local-lvm:vm-101-disk-0,size=8G` -> 8 (GiB, rounded down).
function sizeGb(line) {
  const m = /(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)/.exec(line || '');
  if (!m) return null;
  const f = { '': 1 / 2 ** 30, K: 1 / 2 ** 20, M: 1 / 1024, G: 1, T: 1024 }[m[2]];
  return Math.floor(Number(m[1]) * f);
}

// -- history charts
const FRAMES = [['hour', 'Hour'], ['day', 'Day'], ['week', 'Week']];
const CHARTS = [
  { key: 'cpu', title: 'CPU', series: [['cpu', 'CPU']], fmt: (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %` },
  { key: 'memory', title: 'Memory', series: [['mem', 'Used']], fmt: fmtBytes, max: (rows) => Math.max(...rows.map((r) => r.maxmem ?? 0)) },
  { key: 'network', title: 'Network', series: [['netin', 'In'], ['netout', 'Out']], fmt: (v) => fmtBytes(v) + '/s' },
  { key: 'disk', title: 'Disk I/O', series: [['diskread', 'Read'], ['diskwrite', 'Write']], fmt: (v) => fmtBytes(v) + '/s' },
];

function historyPanel(installId, ctx) {
  let frame = 'hour';
  let timer;
  const body = h('div', { class: 'charts', tid: 'charts' });
  const buttons = FRAMES.map(([f, label]) => h('button', {
    type: 'button', class: 'chip', tid: 'frame-' + f, 'aria-pressed': String(f === frame),
    onclick: () => { frame = f; buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.testid === 'frame-' + f))); load(); },
  }, label));
  async function load() {
    clearTimeout(timer);
    let r;
    try { r = await api.history(installId, frame); } catch (err) { if (ctx.alive) body.replaceChildren(errorBox(err)); return; }
    if (!ctx.alive || !body.isConnected) return;
    const rows = arr(r.rows);
    body.dataset.frame = frame;
    body.replaceChildren(...CHARTS.map((c) => chart(c, rows)));
    // PVE's rows for the hour are a minute apart; refresh while the page is open.
    timer = setTimeout(load, frame === 'hour' ? 15000 : 120000);
  }
  load();
  return panel('History', 'history',
    h('div', { class: 'chips', role: 'group', 'aria-label': 'Time frame' }, buttons),
    h('p', 'muted small', 'From PVE\u2019s own usage data (RRD) for this container.'),
    body);
}

const W = 320, H = 110, PAD = 4;

function chart(c, rows) {
  const times = rows.map((r) => r.time);
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const values = c.series.flatMap(([k]) => rows.map((r) => r[k]).filter((v) => typeof v === 'number'));
  const figure = h('figure', { class: 'chart', tid: 'chart', 'data-chart': c.key });
  if (!values.length) {
    figure.append(h('figcaption', null, c.title), h('p', { class: 'muted small', tid: 'chart-empty' }, 'No data yet for this time frame.'));
    return figure;
  }
  const top = Math.max(c.max ? c.max(rows) : 0, ...values) || 1;
  const x = (t) => PAD + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * PAD);
  const y = (v) => H - PAD - (v / top) * (H - 2 * PAD);
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${c.title} over time`, class: 'chart-svg' });
  svg.append(svgEl('line', { x1: PAD, x2: W - PAD, y1: H - PAD, y2: H - PAD, class: 'axis' }));
  c.series.forEach(([k, label], i) => {
    // A gap in PVE's data (a row with only `time`) breaks the line.
    let d = '';
    let pen = 'M';
    let points = 0;
    for (const r of rows) {
      if (typeof r[k] !== 'number') { pen = 'M'; continue; }
      d += `${pen}${x(r.time).toFixed(1)},${y(r[k]).toFixed(1)} `;
      pen = 'L';
      points++;
    }
    const path = svgEl('path', { d: d.trim(), class: `series s${i}`, 'data-series': k, 'data-points': points });
    path.append(svgEl('title', {}, label));
    svg.append(path);
    // A single sample still shows, as a dot.
    if (points === 1) {
      const r = rows.find((row) => typeof row[k] === 'number');
      svg.append(svgEl('circle', { cx: x(r.time), cy: y(r[k]), r: 2.5, class: `dot s${i}` }));
    }
  });
  const last = (k) => rows.findLast((r) => typeof r[k] === 'number')?.[k];
  figure.append(
    h('figcaption', null, c.title, ' ', h('span', 'muted small', 'max ' + c.fmt(top))),
    svg,
    h('p', 'chart-legend', c.series.map(([k, label], i) => h('span', { class: `legend s${i}`, 'data-now': k }, `${label}: ${c.fmt(last(k) ?? 0)}`))));
  return figure;
}

function svgEl(tag, attrs, text) {
  const n = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text) n.textContent = text;
  return n;
}

// -- the app's own service log (its journal inside the container), once or followed
function appLogPanel(installId, ctx) {
  const pre = h('pre', { class: 'log app-log', tid: 'app-log', 'aria-live': 'off' });
  const status = h('p', { class: 'muted small', tid: 'app-log-status' });
  let source = null;
  const stop = () => { source?.close(); source = null; };
  const follow = h('input', { type: 'checkbox', tid: 'app-log-follow', onchange: (ev) => (ev.currentTarget.checked ? start() : stop()) });
  const show = (lines, unit) => {
    pre.replaceChildren(lines.join('\n'));
    if (unit) status.textContent = `journalctl --unit ${unit}`;
    pre.scrollTop = pre.scrollHeight;
  };
  async function once() {
    try {
      const r = await api.appLog(installId);
      if (ctx.alive) show(arr(r.lines), r.unit);
    } catch (err) {
      if (ctx.alive) status.replaceWith(errorBox(err));
    }
  }
  function start() {
    stop();
    const lines = [];
    source = new EventSource(`/api/installs/${encodeURIComponent(installId)}/app-log/stream`);
    source.addEventListener('line', (e) => {
      if (!ctx.alive || !pre.isConnected) { stop(); return; }
      lines.push(e.data);
      if (lines.length > 2000) lines.splice(0, lines.length - 2000);
      show(lines);
      pre.dataset.following = 'true';
    });
    source.addEventListener('error', (e) => { if (e.data) status.textContent = e.data; });
  }
  once();
  return panel('App log', 'app-log-panel',
    h('label', { class: 'toggle' }, follow, ' Follow'),
    status, pre);
}

// -- backups: PVE's vzdump on demand and on a schedule, retention, restore
function backupsPanel(d, ctx) {
  const body = h('div', { tid: 'backups-body' }, h('p', 'muted', 'Loading backups…'));
  const status = h('div', { tid: 'backup-status', 'aria-live': 'polite' });
  const toJob = (r) => { location.hash = '#/jobs/' + r.job_id; };
  const fail = (err, form) => {
    status.replaceChildren(errorBox(err));
    if (form && err.fields) for (const [k, v] of Object.entries(err.fields)) {
      const slot = form.querySelector(`[data-testid="policy-error"][data-field="${k}"]`);
      if (slot) slot.textContent = v;
    }
  };
  async function load() {
    let r, disc;
    try {
      [r, disc] = await Promise.all([api.backups(d.id), api.discovery().catch(() => null)]);
    } catch (err) { if (ctx.alive) body.replaceChildren(errorBox(err)); return; }
    if (!ctx.alive) return;
    const p = r.policy || {};
    const storages = arr(disc?.pve?.backup_storages).map((s) => s.storage);
    if (p.storage && !storages.includes(p.storage)) storages.unshift(p.storage);
    const field = (key, label, input, help) => h('div', 'field', h('label', { for: 'bk-' + key }, label), input,
      help && h('p', 'hint muted small', help),
      h('span', { class: 'field-error', tid: 'policy-error', 'data-field': key, role: 'alert' }));
    const form = h('form', { class: 'backup-policy', tid: 'backup-policy', onsubmit: async (e) => {
      e.preventDefault();
      for (const slot of form.querySelectorAll('[data-testid="policy-error"]')) slot.textContent = '';
      const v = (k) => form.querySelector('#bk-' + k).value;
      try {
        await api.setBackupPolicy(d.id, { storage: v('storage'), mode: v('mode'), keep_last: Number(v('keep_last')), schedule: v('schedule').trim() || 'off' });
        status.replaceChildren(h('p', { class: 'muted', tid: 'policy-saved' }, 'Backup settings saved.'));
        load();
      } catch (err) { fail(err, form); }
    } },
    h('div', 'resize-fields',
      field('storage', 'Storage', h('select', { id: 'bk-storage', tid: 'bk-storage' }, storages.map((s) => h('option', { value: s, selected: s === p.storage }, s)))),
      field('mode', 'Mode', h('select', { id: 'bk-mode', tid: 'bk-mode' }, ['snapshot', 'suspend', 'stop'].map((m) => h('option', { value: m, selected: m === p.mode }, m)))),
      field('keep_last', 'Keep last', h('input', { id: 'bk-keep_last', type: 'number', min: 0, max: 1000, value: p.keep_last ?? 3, tid: 'bk-keep_last' }), '0 keeps all'),
      field('schedule', `Schedule (${r.time_zone || 'UTC'})`, h('input', { id: 'bk-schedule', value: p.schedule || 'off', tid: 'bk-schedule', placeholder: 'daily 03:00' }), 'off, daily HH:MM or weekly sun HH:MM')),
    h('button', { type: 'submit', class: 'btn', tid: 'policy-submit' }, 'Save settings'));
    const hostDirs = arr(r.host_directories);
    const rows = arr(r.backups);
    const restoreButtons = (b) => {
      const confirm = h('div', { class: 'confirm', hidden: true, tid: 'restore-confirm' },
        h('p', null, `Restore over container ${d.ctid}? Everything it holds since ${new Date((b.ctime || 0) * 1000).toLocaleString()} is lost.`),
        h('div', 'wizard-foot',
          h('button', { type: 'button', class: 'btn', onclick: () => { confirm.hidden = true; } }, 'Cancel'),
          h('button', { type: 'button', class: 'btn btn-primary', tid: 'restore-over-confirm', onclick: async () => {
            try { toJob(await api.restore({ volid: b.volid, over_install: d.id })); } catch (err) { fail(err); }
          } }, 'Restore over it')));
      return [h('div', 'job-actions',
        h('button', { type: 'button', class: 'btn btn-sm', tid: 'restore-new', disabled: !b.restorable, onclick: async () => {
          try { toJob(await api.restore({ volid: b.volid })); } catch (err) { fail(err); }
        } }, 'Restore as new'),
        h('button', { type: 'button', class: 'btn btn-sm', tid: 'restore-over', disabled: !b.restorable, onclick: () => { confirm.hidden = false; } }, 'Restore over this')), confirm];
    };
    body.replaceChildren(...[
      h('div', 'job-actions', h('button', { type: 'button', class: 'btn', tid: 'backup-now', onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try { toJob(await api.backupNow(d.id)); } catch (err) { fail(err); ev.currentTarget.disabled = false; }
      } }, 'Back up now')),
      hostDirs.length > 0 && h('p', { class: 'badge t-warn', tid: 'host-dirs-note' },
        `Not in PVE backups: host directories bind-mounted into the container (${hostDirs.map((v) => v.mount || v.key).join(', ')}). Back them up on the host.`),
      rows.length
        ? h('ul', { class: 'backup-list', tid: 'backup-list' }, rows.map((b) => h('li', { tid: 'backup-row', 'data-volid': b.volid },
          h('div', null, timeEl(b.ctime), ' ', h('span', 'muted', `${b.version ? 'v' + b.version + ' · ' : ''}${fmtBytes(b.size)} · ${b.storage}`)),
          h('code', 'break small', b.volid), ...restoreButtons(b))))
        : h('p', { class: 'muted', tid: 'no-backups' }, 'No backups yet.'),
      h('h3', 'sub', 'Settings'), form,
      arr(r.errors).length > 0 && h('ul', null, r.errors.map((e) => h('li', 'field-error', e)))].filter(Boolean));
  }
  load();
  return panel('Backups', 'backups', body, status);
}

// -- update policy: off, notify, or automatic in a maintenance window after a hold-off
function updatesPanel(d) {
  const p = d.update_policy || { mode: 'notify', window: 'daily 03:00-05:00', hold_off_days: 3 };
  const status = h('div', { tid: 'update-policy-status', 'aria-live': 'polite' });
  const err = (key) => h('span', { class: 'field-error', tid: 'update-policy-error', 'data-field': key, role: 'alert' });
  const form = h('form', { class: 'update-policy', tid: 'update-policy', onsubmit: async (e) => {
    e.preventDefault();
    for (const slot of form.querySelectorAll('[data-testid="update-policy-error"]')) slot.textContent = '';
    const v = (k) => form.querySelector('#up-' + k).value;
    try {
      const r = await api.setUpdatePolicy(d.id, { mode: v('mode'), window: v('window'), hold_off_days: Number(v('hold_off_days')) });
      status.replaceChildren(h('p', { class: 'muted', tid: 'update-policy-saved' }, `Saved: ${r.update_policy.mode}.`));
    } catch (error) {
      status.replaceChildren(errorBox(error));
      for (const [k, m] of Object.entries(error.fields || {})) {
        const slot = form.querySelector(`[data-testid="update-policy-error"][data-field="${k}"]`);
        if (slot) slot.textContent = m;
      }
    }
  } },
  h('div', 'resize-fields',
    h('div', 'field', h('label', { for: 'up-mode' }, 'Updates'),
      h('select', { id: 'up-mode', tid: 'up-mode' }, [['off', 'Off (no notices)'], ['notify', 'Notify me'], ['automatic', 'Automatic']].map(([m, label]) => h('option', { value: m, selected: m === p.mode }, label))), err('mode')),
    h('div', 'field', h('label', { for: 'up-window', tid: 'up-window-label' }, `Window (${p.time_zone || 'UTC'})`),
      h('input', { id: 'up-window', value: p.window, tid: 'up-window', placeholder: 'daily 03:00-05:00' }), err('window')),
    h('div', 'field', h('label', { for: 'up-hold_off_days' }, 'Hold-off (days)'),
      h('input', { id: 'up-hold_off_days', type: 'number', min: 0, max: 365, value: p.hold_off_days, tid: 'up-hold_off_days' }), err('hold_off_days'))),
  h('p', 'hint muted small', 'Automatic updates run in the window, only to versions at least the hold-off old; each takes a snapshot, runs the upgrade and its health check, and rolls back on failure.'),
  h('button', { type: 'submit', class: 'btn', tid: 'update-policy-submit' }, 'Save'));
  return panel('Update policy', 'update-policy-panel', form, status);
}

export { controlsPanel, historyPanel, appLogPanel, backupsPanel, updatesPanel };
