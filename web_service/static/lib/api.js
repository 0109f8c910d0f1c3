// Every request to the API goes through here: the in-memory access token, silent refresh
// (before expiry and on a 401, one refresh at a time across tabs), errors turned into
// messages a person can read, uploads with progress, and streamed (SSE) answers.
//
// The access token lives only in this module's memory. The refresh token is an HttpOnly
// cookie on /api/v1/auth that only web_service reads; no token is ever written to storage.
import { t } from './i18n.js';

const REFRESH_MARGIN_MS = 60_000; // refresh this long before the access token expires
const REFRESH_TIMEOUT_MS = 15_000; // a hung refresh must not hold the cross-tab lock

let accessToken = null;
let expiresAt = 0;
let refreshing = null;
let loggingOut = null; // the logout in flight, if any: requests wait for it instead of racing it
const sessionEndedListeners = new Set();

export class ApiError extends Error {
  constructor(status, code, detail, body = null) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
  }
  /** True when the request never reached the server (offline, connection refused). */
  get isNetwork() {
    return this.status === 0;
  }
}

/** Called with no argument when the session has ended (refresh refused, logout). */
export function onSessionEnded(listener) {
  sessionEndedListeners.add(listener);
  return () => sessionEndedListeners.delete(listener);
}

function endSession() {
  accessToken = null;
  expiresAt = 0;
  forgetAttachmentUrls();
  for (const listener of [...sessionEndedListeners]) listener();
}

export const hasAccessToken = () => accessToken !== null;

function keepToken(body) {
  accessToken = body.access_token;
  expiresAt = Date.now() + body.expires_in * 1000;
}

/** A readable message for an error answer (the API's `{error, detail}` shape). */
export function errorMessage(error) {
  if (!(error instanceof ApiError)) return t('error.unexpected');
  if (error.isNetwork) return t('error.network');
  const fields = Array.isArray(error.detail) && error.detail.length > 0;
  // A validation error names its fields when it can: that says more than the generic text.
  const known = error.code === 'validation_error' && fields ? null : t(`error.code.${error.code}`, {}, null);
  if (known) return known;
  if (fields) {
    return error.detail.map((p) => `${(p.loc || []).slice(1).join('.') || p.field || ''} ${p.msg || p.message || ''}`.trim()).join('; ');
  }
  return typeof error.detail === 'string' && error.detail ? error.detail : t('error.status', { status: error.status });
}

async function toError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status alone
  }
  const code = (body && body.error) || `http_${response.status}`;
  const detail = body && body.detail;
  return new ApiError(response.status, code, detail, body);
}

async function send(path, { method = 'GET', json, body, headers = {}, signal, auth = true } = {}) {
  const finalHeaders = { Accept: 'application/json', ...headers };
  if (json !== undefined) {
    finalHeaders['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  if (auth && accessToken) finalHeaders.Authorization = `Bearer ${accessToken}`;
  try {
    return await fetch(path, { method, body, headers: finalHeaders, signal, credentials: 'same-origin' });
  } catch (error) {
    if (error.name === 'AbortError') throw error; // (a TimeoutError counts as a network error)
    throw new ApiError(0, 'network', t('error.network'));
  }
}

/** Trade the refresh cookie for a new access token; one refresh at a time across tabs
 * (the cookie rotates, so a second tab must wait and then use the new one). */
export function refresh() {
  if (!refreshing) {
    const run = async () => {
      if (loggingOut) {
        // (e.g. the event stream ended by this logout): no refresh of the session being ended.
        await loggingOut;
        if (!accessToken) throw new ApiError(401, 'session_ended', 'the session has ended');
      }
      const signal = AbortSignal.timeout(REFRESH_TIMEOUT_MS); // a timeout is a network error
      const response = await send('/api/v1/auth/session/refresh', { method: 'POST', auth: false, signal });
      if (!response.ok) {
        const error = await toError(response);
        if (response.status === 401 || response.status === 403) endSession();
        throw error;
      }
      let body;
      try {
        body = await response.json();
      } catch {
        throw new ApiError(0, 'network', t('error.network')); // cut off (or timed out) mid-answer
      }
      keepToken(body);
    };
    const locked = navigator.locks ? navigator.locks.request('jilu-refresh', run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function ensureFresh() {
  if (accessToken && Date.now() > expiresAt - REFRESH_MARGIN_MS) {
    try {
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.isNetwork) return; // try with what we have
      throw error;
    }
  }
}

/** The raw Response of an authenticated request, refreshed and retried once on a 401. */
export async function fetchAuthed(path, options = {}) {
  if (options.auth !== false && loggingOut) {
    // Not sent with the token being logged out (it would come back 401 once the session is
    // gone); after a logout that ended the session, not sent at all.
    await loggingOut;
    if (!accessToken) throw new ApiError(401, 'session_ended', 'the session has ended');
  }
  if (options.auth !== false) await ensureFresh();
  const sent = accessToken;
  let response = await send(path, options);
  if (response.status === 401 && options.auth !== false && accessToken) {
    // Refresh only if the token refused is still the current one: another request may have
    // refreshed meanwhile, and then a retry with the new token is enough.
    if (accessToken === sent) await refresh();
    response = await send(path, options);
  }
  if (!response.ok) throw await toError(response);
  return response;
}

/** JSON request; answers the parsed body (null for 204). */
export async function request(path, options = {}) {
  const response = await fetchAuthed(path, options);
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

export const api = {
  get: (path, options) => request(path, options),
  post: (path, json, options = {}) => request(path, { ...options, method: 'POST', json }),
  put: (path, json, options = {}) => request(path, { ...options, method: 'PUT', json }),
  patch: (path, json, options = {}) => request(path, { ...options, method: 'PATCH', json }),
  del: (path, options = {}) => request(path, { ...options, method: 'DELETE' }),
};

/** Log in: the refresh token becomes an HttpOnly cookie, the access token stays here. */
export async function login(username, password) {
  const response = await send('/api/v1/auth/session', { method: 'POST', json: { username, password }, auth: false });
  if (!response.ok) throw await toError(response);
  keepToken(await response.json());
}

/** Log out. Offline (or when the server fails) the session is NOT ended, since the refresh
 * cookie would still open it again: the ApiError is thrown for the caller to show. */
export async function logout() {
  let finished;
  loggingOut = new Promise((resolve) => {
    finished = resolve;
  });
  try {
    const response = await send('/api/v1/auth/session', { method: 'DELETE' }); // throws a network ApiError
    if (!response.ok && response.status !== 401) throw await toError(response);
    endSession();
  } finally {
    loggingOut = null;
    finished(); // after endSession: the requests that waited see the session ended
  }
}

/** A query string from an object, leaving out empty values; arrays repeat the key. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * Upload `formData` with progress. Answers `{promise, abort}`; `onProgress(fraction)`.
 * XMLHttpRequest, because fetch() reports no upload progress.
 */
export function upload(path, formData, { onProgress, method = 'POST' } = {}) {
  const xhr = new XMLHttpRequest();
  let aborted = false; // abort() before the request opened (while a refresh is awaited)
  const promise = (async () => {
    await ensureFresh();
    if (aborted) throw new DOMException('aborted', 'AbortError');
    return new Promise((resolve, reject) => {
      xhr.open(method, path);
      xhr.setRequestHeader('Accept', 'application/json');
      if (accessToken) xhr.setRequestHeader('Authorization', `Bearer ${accessToken}`);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          // leave it null
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new ApiError(xhr.status, (body && body.error) || `http_${xhr.status}`, body && body.detail, body));
      };
      xhr.onerror = () => reject(new ApiError(0, 'network', t('error.network')));
      xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
      xhr.send(formData);
    });
  })();
  return {
    promise,
    abort: () => {
      aborted = true;
      xhr.abort();
    },
  };
}

/**
 * Read a Server-Sent Events response (POST or GET) and call `onEvent(name, data, id)` for
 * each event, `data` parsed as JSON when it is. Resolves when the stream ends; an
 * AbortSignal in `options.signal` stops it.
 */
export async function stream(path, options, onEvent) {
  const response = await fetchAuthed(path, { ...options, headers: { Accept: 'text/event-stream', ...(options.headers || {}) } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      let id = null;
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
      if (!data.length && name === 'message') continue;
      let parsed = data.join('\n');
      try {
        parsed = JSON.parse(parsed);
      } catch {
        // plain text data
      }
      onEvent(name, parsed, id);
    }
  }
}

/**
 * The path and query of an attachment's `url` / `thumbnail_url`. The API makes them absolute
 * for its public base URL (JILU_PUBLIC_WEB_URL), which need not be the origin this page was
 * opened on (a proxy, another host name); on this origin they are same-origin requests, which
 * `img-src 'self'` allows and which may carry the bearer token.
 */
export function attachmentPath(url) {
  const parsed = new URL(url, location.origin);
  return parsed.pathname + parsed.search;
}

/**
 * blob: URLs of attachments fetched so far, by attachment id and content (sha256): the
 * signed URL changes every few minutes, the file behind it does not.
 */
const blobUrls = new Map();

/** When the session ends: the cached files are let go (revoked, even those still loading). */
function forgetAttachmentUrls() {
  for (const pending of blobUrls.values()) pending.then((blobUrl) => URL.revokeObjectURL(blobUrl), () => {});
  blobUrls.clear();
}

/** A blob: URL of `attachment`'s file ({id, sha256, url}), fetched once per content. */
export async function attachmentUrl(attachment) {
  const key = `${attachment.id}:${attachment.sha256}`;
  if (!blobUrls.has(key)) {
    const pending = fetchAuthed(attachmentPath(attachment.url), { headers: { Accept: '*/*' } })
      .then((response) => response.blob())
      .then((blob) => URL.createObjectURL(blob));
    pending.catch(() => {
      if (blobUrls.get(key) === pending) blobUrls.delete(key);
    });
    blobUrls.set(key, pending);
  }
  return blobUrls.get(key);
}
