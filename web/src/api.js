// Talking to the civictwin server: every request carries the user's API token when one is set.

const TOKEN_KEY = 'civictwin.token';

/** The API token pasted by the user (kept for this browser tab only). */
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** Remember (or, with an empty string, forget) the API token for this tab. */
export function setToken(token) {
  const trimmed = token.trim();
  if (trimmed) sessionStorage.setItem(TOKEN_KEY, trimmed);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers for a request to our own server: `Authorization: Bearer <token>` when a token is set. */
export function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Whether `url` points at the server that served the viewer (tokens never go anywhere else). */
export function isOwnServer(url) {
  try {
    return new URL(url, window.location.href).origin === window.location.origin;
  } catch {
    return false;
  }
}

/**
 * MapLibre `transformRequest`: adds the token to tile and TileJSON requests to our own server,
 * so protected layers render for users with the right token.
 */
export function transformRequest(url) {
  return isOwnServer(url) ? { url, headers: authHeaders() } : { url };
}

/** An error from the server, with the problem document's detail when there is one. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/**
 * Absolute URL of an API path. The viewer is served at `<root>/viewer/`, the API at `<root>/`, so
 * paths are resolved against the folder above the viewer's (this keeps working behind a proxy prefix).
 */
export function apiUrl(path) {
  return new URL(`../${path.replace(/^\/+/, '')}`, new URL('.', window.location.href)).href;
}

/**
 * An absolute tile URL template. `new URL` would percent-encode the `{z}/{x}/{y}` placeholders, so
 * relative templates are joined by hand: root-relative ones to the origin, others to the API root.
 */
export function absoluteTemplate(template) {
  if (/^https?:\/\//.test(template)) return template;
  if (template.startsWith('/')) return `${window.location.origin}${template}`;
  return `${apiUrl('')}${template}`;
}

/** GET a JSON document from an API path; raises ApiError with the server's own explanation. */
export async function getJson(path) {
  return getJsonAt(apiUrl(path));
}

/**
 * GET a JSON document from a URL the server gave (a link in one of its answers); the token goes
 * only to our own server.
 */
export async function getJsonAt(url) {
  const headers = { Accept: 'application/json', ...(isOwnServer(url) ? authHeaders() : {}) };
  const response = await fetch(url, { headers });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      detail = body.detail || body.title || detail;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, typeof detail === 'string' ? detail : JSON.stringify(detail));
  }
  return response.json();
}
