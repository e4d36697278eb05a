// View: GPUs (the live inventory over server-sent events, which containers use each device,
// and the demo's simulated hot-plug).
import { api } from '../api.js';
import { h, muted, code, icon, errorBox, loading, panel, table } from '../dom.js';
import { arr, vendor } from '../format.js';

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

export { gpusView };
