// Thin fetch helpers for the controller's REST API.
// Every failure becomes an ApiError whose `message` is fit to show to a person.

export class ApiError extends Error {
  constructor(message, { status = 0, code = 'network', fields = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

async function request(method, path, { query, signal } = {}) {
  let url = path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += '?' + s;
  }
  let res;
  try {
    res = await fetch(url, { method, signal, headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('Cannot reach the PVE App Store controller. Check that it is running.');
  }
  let body = null;
  const text = await res.text();
  if (text) {
    try { body = JSON.parse(text); } catch { body = null; }
  }
  if (!res.ok) {
    const e = body && typeof body === 'object' ? body.error : null;
    const message = e && typeof e.message === 'string' && e.message
      ? e.message
      : `Request failed: ${res.status} ${res.statusText || ''}`.trim();
    throw new ApiError(message, {
      status: res.status,
      code: (e && e.code) || 'http_' + res.status,
      fields: (e && e.fields) || null,
    });
  }
  if (body === null && text) {
    throw new ApiError('The controller sent a response that is not valid JSON.', { status: res.status, code: 'bad_json' });
  }
  return body;
}

export const api = {
  health: (opts) => request('GET', '/api/health', opts),
  listApps: (params, opts = {}) => request('GET', '/api/apps', { ...opts, query: params }),
  getApp: (id, opts) => request('GET', '/api/apps/' + encodeURIComponent(id), opts),
  catalog: (opts) => request('GET', '/api/catalog', opts),
  refreshCatalog: (opts) => request('POST', '/api/catalog/refresh', opts),
};
