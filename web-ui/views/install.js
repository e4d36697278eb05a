// View: the install wizard (placement, resources, GPU, options, review), which starts an install job.
import { api } from '../api.js';
import { h, muted, code, icon, errorBox, loading, dl } from '../dom.js';
import { arr, plural, vendor } from '../format.js';
import { shown, checkInput, formKit } from './form.js';

const WIZARD_STEPS = ['Placement', 'Resources', 'GPU', 'Options', 'Review'];

function installView(main, id, ctx) {
  document.title = `Install ${id} · PVE App Store`;
  main.replaceChildren(loading());
  Promise.all([api.getApp(id), api.discovery().catch(() => null), api.gpuOptions(id).catch(() => null)]).then(
    ([data, disc, gpus]) => ctx.alive && wizard(main, data, disc, gpus),
    (err) => ctx.alive && main.replaceChildren(errorBox(err, () => installView(main, id, ctx))));
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

export { installView };
