// View: one app's page (header with Install, GPU banner, install options, volumes, README,
// about, resources and outputs), from the catalog's manifest.
import { api } from '../api.js';
import { renderMarkdown, safeUrl } from '../markdown.js';
import { h, muted, dash, code, icon, appIcon, errorBox, loading, panel, dl, extLink, table, notFound } from '../dom.js';
import { arr, plural, vendor, humanize, memory, timeEl } from '../format.js';
import { lastListHash } from '../nav.js';
import { listHash } from './apps.js';

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
  const unmet = arr(data.unmet_requirements);
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
        unmet.length
          ? h('span', { class: 'btn btn-primary detail-action', 'aria-disabled': 'true', tid: 'install', title: unmet.join('; ') }, 'Install')
          : h('a', { class: 'btn btn-primary detail-action', href: '#/install/' + encodeURIComponent(app.id || m.id), tid: 'install' }, 'Install'),
        home && h('a', { class: 'btn detail-action', href: home, rel: 'noopener noreferrer', target: '_blank', tid: 'homepage' }, 'Homepage', icon('ext', 'i-sm')))),
    unmet.length > 0 && h('div', { class: 'alert', role: 'alert', tid: 'unmet-requirements' },
      h('div', 'alert-body', h('strong', null, 'This app cannot be installed here'),
        h('ul', null, unmet.map((u) => h('li', null, u))))),
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
          ['Installs from', arr(m.sources).length
            ? h('ul', { class: 'plain', tid: 'sources' }, m.sources.map((src) => h('li', null, sourceLabel(src))))
            : muted('Not declared')],
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

// Where the app's scripts download from: the trust an install asks for.
function sourceLabel(src) {
  const known = { debian: "Debian's archive", pypi: 'PyPI (Python packages)', npm: 'npm registry' };
  if (known[src]) return known[src];
  const url = safeUrl(src);
  return url ? extLink(url, 'ext') : String(src);
}

export { detailView };
