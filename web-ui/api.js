// Fetch helpers for the controller's REST API. Failures become ApiError with a message fit to show.
export class ApiError extends Error {
  constructor(message, status = 0, code = 'network', fields = null) {
    super(message);
    Object.assign(this, { name: 'ApiError', status, code, fields });
  }
}

async function request(method, path, { query, signal } = {}) {
  const qs = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v != null && v !== '')).toString();
  let res;
  try {
    res = await fetch(path + (qs ? '?' + qs : ''), { method, signal, headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError('Cannot reach the PVE App Store controller. Is it running?');
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    // Errors are {"error": {"code", "message", "fields"}}.
    const e = body?.error || {};
    throw new ApiError(e.message || `Request failed: HTTP ${res.status}`, res.status, e.code || 'http', e.fields || null);
  }
  if (body === null && method === 'GET') throw new ApiError('The controller sent a response that is not JSON.', res.status, 'bad_json');
  return body;
}

export const api = {
  health: () => request('GET', '/api/health'),
  listApps: (query, opts) => request('GET', '/api/apps', { ...opts, query }),
  getApp: (id) => request('GET', '/api/apps/' + encodeURIComponent(id)),
  catalog: () => request('GET', '/api/catalog'),
  refreshCatalog: () => request('POST', '/api/catalog/refresh'),
};
