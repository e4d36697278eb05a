// View: reconfigure an installed app (only the inputs its manifest marks reconfigurable).
import { api } from '../api.js';
import { h, icon, errorBox, loading } from '../dom.js';
import { arr } from '../format.js';
import { shown, checkInput, formKit } from './form.js';

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

export { reconfigureView };
