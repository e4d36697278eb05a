// Fetch helpers for the controller's REST API. Failures become ApiError with a message fit to show.
export class ApiError extends Error {
  constructor(message, status = 0, code = 'network', fields = null) {
    super(message);
    Object.assign(this, { name: 'ApiError', status, code, fields });
  }
}

// The session's CSRF token (password mode): sent with every request that changes something.
let csrf = null;
// Called when a request needs a login (401), so the app can show the login page.
let onLoginNeeded = () => {};

async function request(method, path, { query, signal, body } = {}) {
  const qs = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v != null && v !== '')).toString();
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  // Every change is JSON, with or without a body: the controller refuses anything else (CSRF).
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path + (qs ? '?' + qs : ''), {
      method, signal, headers, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError('Cannot reach the PVE App Store controller. Is it running?');
  }
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    // Errors are {"error": {"code", "message", "fields"}}.
    const e = parsed?.error || {};
    if (res.status === 401 && path !== '/api/login') onLoginNeeded();
    throw new ApiError(e.message || `Request failed: HTTP ${res.status}`, res.status, e.code || 'http', e.fields || null);
  }
  if (parsed === null && method === 'GET') throw new ApiError('The controller sent a response that is not JSON.', res.status, 'bad_json');
  return parsed;
}

export function whenLoginNeeded(f) { onLoginNeeded = f; }

export const api = {
  health: () => request('GET', '/api/health'),
  listApps: (query, opts) => request('GET', '/api/apps', { ...opts, query }),
  getApp: (id) => request('GET', '/api/apps/' + encodeURIComponent(id)),
  catalog: () => request('GET', '/api/catalog'),
  refreshCatalog: () => request('POST', '/api/catalog/refresh'),
  discovery: (refresh) => request('GET', '/api/system/discovery', { query: refresh ? { refresh: '1' } : {} }),
  install: (req) => request('POST', '/api/install', { body: req }),
  job: (id) => request('GET', '/api/jobs/' + encodeURIComponent(id)),
  cancelJob: (id) => request('POST', '/api/jobs/' + encodeURIComponent(id) + '/cancel'),
  destroyFailed: (id) => request('POST', '/api/jobs/' + encodeURIComponent(id) + '/destroy'),
  installs: () => request('GET', '/api/installs'),
  uninstall: (installId, keepVolumes) => request('POST', '/api/uninstall', { body: { install_id: installId, keep_volumes: keepVolumes } }),
  upgrade: (installId) => request('POST', '/api/upgrade', { body: { install_id: installId } }),
  upgradeAll: () => request('POST', '/api/upgrade-all'),
  installDetail: (id) => request('GET', '/api/installs/' + encodeURIComponent(id)),
  reconfigure: (installId, inputs, restart) => request('POST', '/api/reconfigure', { body: { install_id: installId, inputs, restart } }),
  control: (installId, body) => request('POST', '/api/installs/' + encodeURIComponent(installId) + '/control', { body }),
  history: (installId, timeframe) => request('GET', '/api/installs/' + encodeURIComponent(installId) + '/history', { query: { timeframe } }),
  appLog: (installId) => request('GET', '/api/installs/' + encodeURIComponent(installId) + '/app-log'),
  backups: (installId) => request('GET', '/api/installs/' + encodeURIComponent(installId) + '/backups'),
  backupNow: (installId) => request('POST', '/api/installs/' + encodeURIComponent(installId) + '/backup', { body: {} }),
  setBackupPolicy: (installId, policy) => request('POST', '/api/installs/' + encodeURIComponent(installId) + '/backup-policy', { body: policy }),
  restore: (req) => request('POST', '/api/restore', { body: req }),
  gpuSync: (installId) => request('POST', '/api/installs/' + encodeURIComponent(installId) + '/gpu-sync', { body: {} }),
  setUpdatePolicy: (installId, policy) => request('POST', '/api/installs/' + encodeURIComponent(installId) + '/update-policy', { body: policy }),
  notifications: () => request('GET', '/api/notifications'),
  addNotification: (target) => request('POST', '/api/notifications', { body: target }),
  deleteNotification: (id) => request('POST', '/api/notifications/' + encodeURIComponent(id) + '/delete', { body: {} }),
  testNotifications: (id) => request('POST', '/api/notifications/test', { body: id == null ? {} : { id } }),
  gpus: () => request('GET', '/api/gpus'),
  revealOutput: (installId, key, password) => request('POST', '/api/installs/' + encodeURIComponent(installId) + '/outputs/' + encodeURIComponent(key) + '/reveal', { body: password == null ? {} : { password } }),
  gpuOptions: (id) => request('GET', '/api/apps/' + encodeURIComponent(id) + '/gpu-options'),
  demoGpus: () => request('GET', '/api/demo/gpus'),
  demoPlug: (pci, present) => request('POST', '/api/demo/gpus', { body: { pci_address: pci, present } }),
  session: async () => {
    const s = await request('GET', '/api/session');
    csrf = s?.csrf || null;
    return s;
  },
  login: async (password) => {
    const r = await request('POST', '/api/login', { body: { password } });
    csrf = r?.csrf || null;
    return r;
  },
  logout: async () => {
    try { await request('POST', '/api/logout'); } finally { csrf = null; }
  },
};
