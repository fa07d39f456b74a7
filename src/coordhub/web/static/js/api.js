// The page's link to the hub: REST calls with the web-session cookie and CSRF token, and the live event stream.
//
// The token never reaches this code: the browser holds an HttpOnly cookie, and every state-changing
// call echoes the web session's CSRF token in X-CSRF-Token (the hub refuses it otherwise).
// On a --no-auth hub there is no cookie; calls name the acting session in X-Coord-Session.

export const API = "/api/coord";

export const me = { signedIn: false, sessionId: null, admin: false, csrf: null, noAuth: false, lastEventId: 0 };

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const SAFE = new Set(["GET", "HEAD"]);

/** Call the REST API: `call("POST", "/messages", {…})` → parsed JSON; throws ApiError with the envelope's message. */
export async function call(method, path, body, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method) && me.csrf) headers["X-CSRF-Token"] = me.csrf;
  if (me.noAuth && me.sessionId) headers["X-Coord-Session"] = me.sessionId;
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
  return data;
}

let onSignedOut = () => {};
export function whenSignedOut(fn) { onSignedOut = fn; }
function signedOut() { me.signedIn = false; me.csrf = null; onSignedOut(); }

/** Read the browser's web session (never 401) and fill `me`. */
export async function loadSession() {
  const s = await call("GET", "/web/session");
  Object.assign(me, { signedIn: !!s.signed_in, sessionId: s.session_id || me.sessionId, admin: !!s.admin,
                      csrf: s.csrf_token || null, noAuth: !!s.no_auth, lastEventId: s.last_event_id || 0 });
  if (me.noAuth) { me.admin = true; me.sessionId = sessionStorage.getItem("coord.noauth.session"); me.signedIn = !!me.sessionId; }
  return me;
}

export async function signIn(token) {
  const s = await call("POST", "/web/session", { token });
  Object.assign(me, { signedIn: true, sessionId: s.session_id, admin: !!s.admin, csrf: s.csrf_token });
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
// Every event kind the hub emits, as the SSE `event:` field (EventSource delivers named events only to
// listeners of that name). Kinds not listed still reach the events view through its audit reads.
export const KINDS = [
  "lease.granted", "lease.renewed", "lease.released", "lease.expired", "lease.revoked", "lease.stale_takeover",
  "message.sent", "message.read", "message.acked", "message.redelivered", "message.dead_lettered",
  "todo.added", "todo.done", "workflow.created", "workflow.updated", "work_item.created", "work_item.updated",
  "component.set", "halt.set", "halt.lifted", "session.paused", "session.engaged", "token.created",
  "token.revoked", "presence.registered", "presence.deregistered", "conversation.turn", "conversation.released",
  "conversation.refused", "conversation.profile", "conversation.key_added", "conversation.key_deleted",
  "assignment.queued", "assignment.dispatched", "assignment.running", "assignment.done", "assignment.failed",
  "assignment.stuck", "assignment.needs_input", "assignment.cancelled", "assignment.telemetry",
  "assignment.adopted", "host.registered", "host.stale", "host.back", "orchestrator.config_applied",
  "orchestrator.paused", "import.applied", "web.signed_in", "web.signed_out", "guard.bypassed",
  "hook.blocked", "message", "heartbeat",
];

const RETRY_MS = [500, 1000, 2000, 4000, 8000];

/** The one stream the page holds; views subscribe with `live.on(prefixes, fn)`. */
class Live {
  constructor() {
    this.handlers = new Set();
    this.statusHandlers = new Set();
    this.lastId = 0;
    this.status = "idle";  // idle | connecting | live | reconnecting
    this.source = null;
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
    // A new EventSource sends no Last-Event-ID: resume from the last id seen with ?after=. The browser's own
    // reconnects (after a dropped connection) send Last-Event-ID by themselves.
    const source = new EventSource(API + "/events?after=" + this.lastId);
    this.source = source;
    source.addEventListener("open", () => { this.failures = 0; this.setStatus("live"); });
    const deliver = (e) => this.deliver(e);
    for (const kind of KINDS) source.addEventListener(kind, deliver);
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {  // the browser gave up (the hub answered an error): retry
        this.failures += 1;
        this.setStatus("reconnecting");
        this.close();
        const wait = RETRY_MS[Math.min(this.failures - 1, RETRY_MS.length - 1)];
        this.timer = setTimeout(() => this.open(), wait);
      } else {
        this.failures += 1;
        this.setStatus("reconnecting");
      }
    });
  }

  close() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  stop() { this.close(); this.setStatus("idle"); }

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
