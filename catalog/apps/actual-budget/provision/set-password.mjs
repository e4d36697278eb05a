// Sets the password of the Actual sync server, for PVE App Store. The password comes on standard
// input, never on a command line. Run as the service user with the service's ACTUAL_CONFIG_PATH and
// ACTUAL_DATA_DIR, after the server has started once (it creates the account database).
//
// A server without a login method is bootstrapped with the password, as its first-run page would.
// Otherwise the password hash is replaced, as upstream's reset-password script does, and the
// password sessions are ended so that every device logs in again. The same password is left alone.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const SERVER = '/opt/actual-budget/node_modules/@actual-app/sync-server/build/src';
const load = (file) => import(pathToFileURL(`${SERVER}/${file}`).href);

function fail(message, code = 1) {
  console.error(`ERROR: ${message}`);
  process.exit(code);
}

const password = readFileSync(0, 'utf8');
if (password.length < 8 || password.includes('\n')) {
  fail('the password must be one line of at least 8 characters', 2);
}

const { bootstrap, getAccountDb, needsBootstrap } = await load('account-db.js');
const { changePassword, checkPassword } = await load('accounts/password.js');

if (needsBootstrap()) {
  const { error } = await bootstrap({ password });
  if (error) fail(`the server refused the first password: ${error}`);
  console.log('==> Set the server password (first start)');
} else {
  const db = getAccountDb();
  const row = db.first("SELECT active FROM auth WHERE method = 'password'");
  if (!row) {
    fail('this server logs in with another method (OpenID); its password cannot be set', 3);
  }
  if (checkPassword(password)) {
    console.log('==> The server password is already set to this value');
  } else {
    const { error } = changePassword(password);
    if (error) fail(`the server refused the new password: ${error}`);
    db.mutate("DELETE FROM sessions WHERE auth_method = 'password'");
    console.log('==> Replaced the server password; devices log in again with the new one');
  }
}

if (!checkPassword(password)) fail('the password does not verify after setting it');
