// Form pieces shared by the install wizard and the reconfigure form: conditional inputs
// (show_when), client-side validation of one input, and the field controls.
import { h, $ } from '../dom.js';
import { arr } from '../format.js';

function shown(inp, values, byKey) {
  const sw = inp.show_when;
  if (!sw?.input) return true;
  const other = byKey.get(sw.input);
  return other && shown(other, values, byKey) && arr(sw.values).some((v) => String(v) === String(values[sw.input]));
}

function checkInput(inp, value) {
  const v = inp.validation || {};
  const empty = value === '' || value == null;
  if (empty) return inp.required && !inp.generate && inp.default == null ? 'A value is required.' : null;
  if (inp.type === 'number') {
    const n = Number(value);
    if (!Number.isFinite(n)) return 'Enter a number.';
    if (typeof v.min === 'number' && n < v.min) return `Must be at least ${v.min}.`;
    if (typeof v.max === 'number' && n > v.max) return `Must be at most ${v.max}.`;
  } else if (inp.type === 'string' || inp.type === 'secret') {
    const len = String(value).length;
    if (typeof v.min === 'number' && len < v.min) return `At least ${v.min} characters.`;
    if (typeof v.max === 'number' && len > v.max) return `At most ${v.max} characters.`;
    if (v.regex) { try { if (!new RegExp(v.regex).test(String(value))) return `Must match ${v.regex}.`; } catch { /* the server checks */ } }
  }
  return null;
}

// Form controls shared by the install wizard and the reconfigure form. `st` holds `values`,
// `errors` and `reveal`; `rerender` redraws the form (conditional fields, reveal).
function formKit(st, rerender) {
  const fieldRow = (key, label, control, help) => h('div', { class: 'field' + (st.errors[key] ? ' invalid' : ''), 'data-field': key },
    h('label', { for: 'f-' + key }, label), control,
    help && h('p', 'muted help', help),
    h('p', { class: 'field-error', tid: 'field-error', 'data-field': key }, st.errors[key] || ''));
  const text = (key, value, set, attrs = {}) => {
    const el = h('input', { id: 'f-' + key, value: value ?? '', tid: 'f-' + key, ...attrs });
    el.oninput = () => set(el.type === 'checkbox' ? el.checked : el.value);
    return el;
  };
  const select = (key, value, options, set) => {
    const el = h('select', { id: 'f-' + key, tid: 'f-' + key }, options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(value) }, l)));
    el.onchange = () => set(el.value);
    return el;
  };
  // One manifest input as a field; `all` are the form's inputs (conditional fields redraw on change).
  const inputField = (inp, all, extraHelp) => {
    const key = inp.key;
    const set = (v) => { st.values[key] = v; if (all.some((o) => o.show_when?.input === key)) rerender(); };
    let control;
    if (inp.type === 'boolean') control = text(key, '', set, { type: 'checkbox', checked: !!st.values[key] });
    else if (inp.type === 'select') control = select(key, st.values[key], arr(inp.validation?.enum).map((v) => [v, v]), set);
    else if (inp.type === 'secret') {
      const el = text(key, st.values[key], set, { type: st.reveal[key] ? 'text' : 'password', placeholder: inp.placeholder || '', autocomplete: 'new-password' });
      control = h('div', 'secret-row', el, h('button', { type: 'button', class: 'btn btn-sm', tid: 'reveal-' + key, 'aria-pressed': String(!!st.reveal[key]),
        onclick: () => { st.reveal[key] = !st.reveal[key]; rerender(); $('#f-' + key)?.focus(); } }, st.reveal[key] ? 'Hide' : 'Show'));
    } else control = text(key, st.values[key], set, { type: inp.type === 'number' ? 'number' : 'text', placeholder: inp.placeholder || '' });
    return fieldRow(key, inp.label || key, control, [inp.help, extraHelp].filter(Boolean).join(' ') || null);
  };
  return { fieldRow, text, select, inputField };
}

export { shown, checkInput, formKit };
