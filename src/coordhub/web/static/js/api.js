// The page's link to the hub: REST calls with the web-session cookie and its secret, and the live event stream.
//
// The token never reaches this code: the browser holds an HttpOnly cookie, and the sign-in answer gives the
// web session's secret once. The page keeps that secret in localStorage and sends it in X-CSRF-Token with EVERY
// call and with the event stream: cookies ignore ports, so any server on this host (an agent's dev server on
// another port) receives the cookie, but localStorage belongs to this origin (scheme, host and port) alone, and
// the hub refuses the cookie without the secret. localStorage (not sessionStorage) so that a reload or a new tab
// stays signed in; sign-out, or the hub refusing the pair, removes it.
// On a --no-auth hub there is no cookie; calls name the acting session in X-Coord-Session.

export const API = "/api/coord";
const SECRET_KEY = "coord.web.secret";

export const me = { signedIn: false, sessionId: null, admin: false, noAuth: false, lastEventId: 0, presenceSeconds: null };

function secret() {
  try { return localStorage.getItem(SECRET_KEY); } catch { return null; }
}
function keepSecret(value) {
  try { if (value) localStorage.setItem(SECRET_KEY, value); else localStorage.removeItem(SECRET_KEY); } catch { /* none */ }
}

/** The headers that authenticate a request besides the cookie: the web session's secret, or the --no-auth session. */
function authHeaders() {
  const headers = {};
  if (me.noAuth) {
    if (me.sessionId) headers["X-Coord-Session"] = me.sessionId;
  } else {
    const s = secret();
    if (s) headers["X-CSRF-Token"] = s;
  }
  return headers;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Call the REST API: `call("POST", "/messages", {…})` → parsed JSON; throws ApiError with the envelope's message. */
export async function call(method, path, body, { signal } = {}) {
  return (await answer(method, path, body, { signal })).data;
}

/** One GET → `{ data, headers }`: for a view that follows a paging header itself. */
export function getPage(path, { signal } = {}) {
  return answer("GET", path, undefined, { signal });
}

/** A GET of a list the hub answers in pages (about 4 MiB each): every page, following the `header` the hub sends
 * while more follow into the `param` of the next request, up to `maxPages`. → `{ rows, more }` (more: pages were
 * left unread). `merge(page)` picks the rows out of an answer that is an object (a workflow's work_items). */
export async function pages(path, { header = "Coord-Next-Cursor", param = "cursor", maxPages = 25,
                                    merge = (page) => page } = {}) {
  const rows = [];
  let first = null;
  let next = null;
  for (let n = 0; n < maxPages; n++) {
    const sep = path.includes("?") ? "&" : "?";
    const got = await answer("GET", next === null ? path : path + sep + param + "=" + encodeURIComponent(next));
    if (first === null) first = got.data;
    rows.push(...merge(got.data));
    next = got.headers.get(header);
    if (next === null) return { first, rows, more: false };
  }
  return { first, rows, more: true };
}

async function answer(method, path, body, { signal } = {}) {
  const headers = { Accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path.startsWith("/api/") ? path : API + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", cache: "no-store", signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", "the hub did not answer (" + err.message + ")");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || {};
    if (response.status === 401 && me.signedIn && !me.noAuth) signedOut();
    throw new ApiError(response.status, err.code || "http_" + response.status,
                       err.message || response.statusText || "request failed");
  }
  return { data, headers: response.headers };
}

let onSignedOut = () => {};
export function whenSignedOut(fn) { onSignedOut = fn; }
function signedOut() {
  const was = me.signedIn;
  me.signedIn = false;
  if (!me.noAuth) keepSecret(null);
  if (was) onSignedOut();
}

// Another tab of this origin signed out (or in as someone else): this one follows.
addEventListener("storage", (e) => {
  if (e.key === SECRET_KEY && me.signedIn && !me.noAuth) {
    if (e.newValue) location.reload(); else signedOut();
  }
});

/** Read the browser's web session (never 401; signed in only with the secret this origin keeps) and fill `me`. */
export async function loadSession() {
  const s = await call("GET", "/web/session");
  Object.assign(me, { signedIn: !!s.signed_in, sessionId: s.session_id || me.sessionId, admin: !!s.admin,
                      noAuth: !!s.no_auth, lastEventId: s.last_event_id || 0, presenceSeconds: s.presence_seconds || null });
  if (me.noAuth) { me.admin = true; me.sessionId = sessionStorage.getItem("coord.noauth.session"); me.signedIn = !!me.sessionId; }
  else if (!me.signedIn) keepSecret(null);
  return me;
}

export async function signIn(token) {
  const s = await call("POST", "/web/session", { token });
  keepSecret(s.csrf_token);  // given out once, in this answer: never readable with the cookie alone
  Object.assign(me, { signedIn: true, sessionId: s.session_id, admin: !!s.admin });
}

/** --no-auth: act as the named session (not a secret: kept for this tab only). */
export function actAs(sessionId) {
  sessionStorage.setItem("coord.noauth.session", sessionId);
  Object.assign(me, { signedIn: true, sessionId, admin: true });
}

export async function signOut() {
  if (me.noAuth) { sessionStorage.removeItem("coord.noauth.session"); signedOut(); return; }
  try { await call("DELETE", "/web/session"); } finally { signedOut(); }
}

// ---- the live event stream -------------------------------------------------------------------------------
// Read with fetch() and a ReadableStream, not EventSource: EventSource cannot send a header, and the secret must
// go with the stream too (a query parameter would write it into access logs). The page parses the SSE frames
// itself and resumes from the last id it saw with ?after= on every reconnect.
const RETRY_MS = [500, 1000, 2000, 4000, 8000];

/** The one stream the page holds; views subscribe with `live.on(prefixes, fn)`. */
class Live {
  constructor() {
    this.handlers = new Set();
    this.statusHandlers = new Set();
    this.lastId = 0;
    this.status = "idle";  // idle | connecting | live | reconnecting
    this.abort = null;  // the open stream's AbortController
    this.failures = 0;
    this.timer = null;
    this.recent = [];  // the newest events, for the events view (bounded)
  }

  on(prefixes, fn) {
    const entry = { prefixes, fn };
    this.handlers.add(entry);
    return () => this.handlers.delete(entry);
  }

  onStatus(fn) { this.statusHandlers.add(fn); fn(this.status); return () => this.statusHandlers.delete(fn); }

  setStatus(status) { this.status = status; for (const fn of this.statusHandlers) fn(status); }

  start(after) {
    this.lastId = after;
    this.open();
  }

  open() {
    this.close();
    this.setStatus(this.failures ? "reconnecting" : "connecting");
    const abort = new AbortController();
    this.abort = abort;
    this.follow(abort.signal).then((again) => {
      if (abort.signal.aborted || !again) return;
      this.setStatus("reconnecting");
      const wait = this.failures ? RETRY_MS[Math.min(this.failures - 1, RETRY_MS.length - 1)] : 0;
      this.timer = setTimeout(() => this.open(), wait);
    });
  }

  /** Read one stream until it ends; whether to reconnect (counting a failure in `failures`). */
  async follow(signal) {
    let response;
    const opened = performance.now();
    try {
      response = await fetch(API + "/events?checkpoints=1&after=" + this.lastId, {
        headers: { Accept: "text/event-stream", ...authHeaders() }, credentials: "same-origin", cache: "no-store",
        signal,
      });
    } catch {
      this.failures += 1;
      return true;
    }
    if (response.status === 401 && !me.noAuth) { signedOut(); return false; }  // signed out, revoked, expired
    if (!response.ok || !response.body) { this.failures += 1; return true; }
    this.failures = 0;
    this.setStatus("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          this.frame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      if (signal.aborted) return false;
      this.failures += 1;  // the connection dropped
      return true;
    }
    // The hub ended the stream (its maximum life, a restart): again at once, unless it keeps ending at once.
    if (performance.now() - opened < 1000) this.failures += 1;
    return true;
  }

  /** One SSE frame (its lines): an event with `id`, `event` and `data`; comments and `retry` are skipped.
   *  A frame with an `id` and no `data` is a checkpoint, no event (the SSE spec): the stream resumes after it. */
  frame(text) {
    let id = "", kind = "message", data = [];
    for (const line of text.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) this.deliver({ data: data.join("\n"), lastEventId: id, type: kind });
    else if (/^\d+$/.test(id) && Number(id) > this.lastId) this.lastId = Number(id);
  }

  close() {
    clearTimeout(this.timer);
    if (this.abort) this.abort.abort();
    this.abort = null;
  }

  stop() { this.close(); this.setStatus("idle"); }

  /** Drop what the stream delivered (sign-out): the next session to sign in on this page may see less, and must
   * not find the previous one's events in the events view. */
  forget() { this.recent = []; this.lastId = 0; this.failures = 0; }

  deliver(e) {
    let event;
    try { event = JSON.parse(e.data); } catch { return; }
    const id = Number(e.lastEventId || event.id);
    if (id <= this.lastId) return;  // a replay after a reconnect overlapping what we had
    this.lastId = id;
    event.received_at = performance.now();
    this.recent.push(event);
    if (this.recent.length > 5000) this.recent.splice(0, this.recent.length - 4000);
    for (const { prefixes, fn } of this.handlers) {
      if (!prefixes || prefixes.some((p) => event.kind.startsWith(p))) fn(event);
    }
  }
}

export const live = new Live();
