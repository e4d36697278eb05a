// The login session (web.auth.mode: password) and the Log out button that reflects it.
// Importers read the live `session` binding; only setSession replaces it.
import { $ } from './dom.js';

let session = { auth: 'none', logged_in: true };

const setSession = (s) => (session = s);

function updateSessionUi() {
  const out = $('#logout');
  if (!out) return;
  out.hidden = !(session.auth === 'password' && session.logged_in);
}

export { session, setSession, updateSessionUi };
