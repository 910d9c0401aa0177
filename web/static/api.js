// api.js: the HTTP/JSON API of groupgate, as the explorer uses it. Every call is POST /v1/{rpc} with the
// request as protobuf JSON; server streams answer newline-delimited JSON ({"result": …} per line, or
// {"error": …}). The bearer token lives in sessionStorage only, never in a URL.

const TOKEN_KEY = 'groupgate.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// ApiError is a failed call: the gRPC code name (UNAUTHENTICATED, NOT_FOUND, …), the HTTP status and the
// google.rpc.Status message and details.
export class ApiError extends Error {
  constructor(code, httpStatus, message, details) {
    super(message);
    this.code = code;
    this.httpStatus = httpStatus;
    this.details = details || [];
  }
  // fieldViolations lists google.rpc.BadRequest's field violations, if any.
  get fieldViolations() {
    const out = [];
    for (const d of this.details) for (const v of d.fieldViolations || []) out.push(v);
    return out;
  }
}

const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

const HTTP_CODES = {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  409: 'ABORTED', 412: 'FAILED_PRECONDITION', 429: 'RESOURCE_EXHAUSTED', 501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED'};

function codeName(code, httpStatus) {
  if (typeof code === 'number' && CODE_NAMES[code]) return CODE_NAMES[code];
  if (typeof code === 'string' && code) return code;
  return HTTP_CODES[httpStatus] || 'UNKNOWN';
}

function statusError(st, httpStatus) {
  st = st || {};
  return new ApiError(codeName(st.code, httpStatus), httpStatus, st.message || `HTTP ${httpStatus}`, st.details);
}

async function errorFrom(resp) {
  let body = null;
  const text = await resp.text();
  try { body = JSON.parse(text); } catch { /* not JSON: a proxy's page, say */ }
  if (body && body.error && typeof body.error === 'object') body = body.error;
  if (!body || typeof body !== 'object') body = {message: text.trim().slice(0, 300) || resp.statusText};
  return statusError(body, resp.status);
}

function request(rpc, body, signal) {
  const headers = {'Content-Type': 'application/json', Accept: 'application/json'};
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  return fetch('/v1/' + rpc, {method: 'POST', headers, body: JSON.stringify(body || {}), signal,
    credentials: 'omit', cache: 'no-store'}).catch((e) => {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('UNAVAILABLE', 0, 'cannot reach the groupgate server: ' + e.message);
  });
}

// call makes a unary call and returns the response message.
export async function call(rpc, body, signal) {
  const resp = await request(rpc, body, signal);
  if (!resp.ok) throw await errorFrom(resp);
  return resp.json();
}

// stream makes a server-streaming call and yields each response message. Breaking out of the loop (or
// aborting signal) cancels the call, so reading the first page of a million-member answer costs one page.
export async function* stream(rpc, body, signal) {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  if (signal) signal.addEventListener('abort', abort, {once: true});
  const resp = await request(rpc, body, ctl.signal);
  if (!resp.ok) throw await errorFrom(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (value) buf += decoder.decode(value, {stream: true});
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield parseLine(line, resp.status);
      }
      if (done) break;
    }
    if (buf.trim()) yield parseLine(buf.trim(), resp.status);
  } finally {
    ctl.abort();
    if (signal) signal.removeEventListener('abort', abort);
  }
}

// collect reads the items (each message's field) of a server-streaming call, at most max of them: reading
// stops, and the call is cancelled, at the first item past max, which more reports. revision is the last
// message's.
export async function collect(rpc, body, field, max, signal) {
  const items = [];
  let revision = 0;
  for await (const msg of stream(rpc, body, signal)) {
    revision = msg.revision;
    for (const item of list(msg[field])) {
      if (items.length === max) return {items, revision, more: true};
      items.push(item);
    }
  }
  return {items, revision, more: false};
}

function parseLine(line, httpStatus) {
  const msg = JSON.parse(line);
  if (msg.error) throw statusError(msg.error, msg.error.httpCode || httpStatus);
  return msg.result !== undefined ? msg.result : msg;
}

// Protobuf JSON writes int64 as strings and leaves zero values out: these read them back.
export const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));
export const list = (v) => (Array.isArray(v) ? v : []);
