// View: the login form (web.auth.mode: password). `route` is the router's, called once logged in.
import { api } from '../api.js';
import { h } from '../dom.js';
import { setSession, updateSessionUi } from '../session.js';

function loginView(main, route) {
  document.title = 'Log in · PVE App Store';
  const pw = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const err = h('p', { class: 'field-error', role: 'alert', 'data-testid': 'login-error' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-submit' }, 'Log in');
  const form = h('form', { class: 'login card', 'data-testid': 'login-form' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'This PVE App Store asks for its admin password (set on the node with pve-appstore passwd).'),
    h('label', { for: 'login-password' }, 'Password'), pw, err, btn);
  form.onsubmit = async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.textContent = '';
    try {
      await api.login(pw.value);
      setSession(await api.session());
      updateSessionUi();
      route();
    } catch (x) {
      err.textContent = x.fields?.password ? 'Wrong password.' : x.message;
      pw.select();
    } finally { btn.disabled = false; }
  };
  main.append(form);
  pw.focus();
}

export { loginView };
