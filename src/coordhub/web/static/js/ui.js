// Shared pieces of the views: data loading tied to the event stream, states, times, and a virtual list.
// Everything renders through Preact, which sets text as text: nothing from the hub is ever parsed as HTML.

import { html, useState, useEffect, useRef, useCallback, useMemo } from "../vendor/preact-htm.js";
import { call, live } from "./api.js";

export { html, useState, useEffect, useRef, useCallback, useMemo };

// ---- time ------------------------------------------------------------------------------------------------

let clockListeners = new Set();
setInterval(() => { for (const fn of clockListeners) fn(Date.now()); }, 1000);  // display only: never a fetch

/** The current time in ms, re-rendering the caller once a second (for countdowns and "3 min ago"). */
export function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => { clockListeners.add(setNow); return () => clockListeners.delete(setNow); }, []);
  return now;
}

export function ago(seconds) {
  const s = Math.round(Math.abs(seconds));
  if (s < 5) return "now";
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d";
}

/** A time shown relative ("3 min ago"), the exact ISO time on hover and in `datetime`. */
export function Time({ iso, now }) {
  if (!iso) return html`<span class="muted">—</span>`;
  const then = Date.parse(iso);
  const delta = ((now || Date.now()) - then) / 1000;
  const text = delta >= 0 ? ago(delta) + (ago(delta) === "now" ? "" : " ago") : "in " + ago(delta);
  return html`<time datetime=${iso} title=${new Date(then).toLocaleString() + " (" + iso + ")"}>${text}</time>`;
}

/** A live countdown to `iso` ("12 min 03 s"), "expired" after it, "never" without one. */
export function Countdown({ iso, now }) {
  if (!iso) return html`<span class="muted" title="no expiry">never</span>`;
  const left = (Date.parse(iso) - now) / 1000;
  if (left <= 0) return html`<time class="expired" datetime=${iso} title=${iso}>expired</time>`;
  const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = Math.floor(left % 60);
  const text = (h ? h + " h " : "") + (h || m ? String(m).padStart(h ? 2 : 1, "0") + " min " : "") +
               String(s).padStart(2, "0") + " s";
  return html`<time class=${left < 60 ? "soon" : ""} datetime=${iso} title=${"expires " + iso}>${text}</time>`;
}

// ---- loading with empty / loading / error states -----------------------------------------------------------

const GAP_MS = 200;

/**
 * Load `path` (or run `load()`), and again whenever an event whose kind starts with one of `prefixes` arrives
 * and `accept(event)` (when given) says it concerns what was read (coalesced: at most one read in flight, one more
 * queued) and after the stream reconnects.
 * Returns {data, error, loading, reload, setData}.
 */
export function useResource(load, prefixes, deps = [], accept = null) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const busy = useRef(false);
  const again = useRef(false);
  const alive = useRef(true);
  const reload = useCallback(async () => {
    if (busy.current) { again.current = true; return; }
    busy.current = true;
    try {
      do {
        if (again.current) await new Promise((r) => setTimeout(r, GAP_MS));  // a burst of events: one read per gap
        again.current = false;
        try {
          const data = typeof load === "string" ? await call("GET", load) : await load();
          if (alive.current) setState({ data, error: null, loading: false });
        } catch (err) {
          if (alive.current) setState((s) => ({ ...s, error: err, loading: false }));
        }
      } while (again.current && alive.current);
    } finally { busy.current = false; }
  }, deps);
  useEffect(() => {
    alive.current = true;
    setState((s) => ({ ...s, loading: true }));
    reload();
    const offEvents = prefixes ? live.on(prefixes, (e) => { if (!accept || accept(e)) reload(); }) : () => {};
    let was = live.status;
    const offStatus = live.onStatus((status) => { if (status === "live" && was === "reconnecting") reload(); was = status; });
    return () => { alive.current = false; offEvents(); offStatus(); };
  }, [reload]);
  const setData = (fn) => setState((s) => ({ ...s, data: fn(s.data) }));
  return { ...state, reload, setData };
}

/** The loading, error and empty states every view shares; renders `children(data)` otherwise. */
export function Loaded({ res, empty, children, isEmpty }) {
  if (res.error && res.data === null) {
    return html`<p class="state error" role="alert">Could not load: ${res.error.message}
      <button type="button" onClick=${() => res.reload()}>Retry</button></p>`;
  }
  if (res.loading && res.data === null) return html`<p class="state loading" role="status">Loading…</p>`;
  const none = isEmpty ? isEmpty(res.data) : Array.isArray(res.data) && res.data.length === 0;
  return html`${res.error ? html`<p class="state error" role="alert">Update failed: ${res.error.message}</p>` : null}
    ${none ? html`<p class="state empty">${empty}</p>` : children(res.data)}`;
}

// ---- a virtual list: only the rows in view are in the DOM --------------------------------------------------

/**
 * A scrolling table of fixed-height rows, of which only those in view (plus a margin) are rendered,
 * so 10,000 rows cost what 30 do. `row(item)` returns the cells of one <tr>.
 */
export function VirtualTable({ items, head, row, rowHeight = 34, height = 520, label, keyOf, cols }) {
  const [top, setTop] = useState(0);
  const box = useRef(null);
  const visible = Math.ceil(height / rowHeight) + 10;
  const first = Math.max(0, Math.floor(top / rowHeight) - 5);
  const last = Math.min(items.length, first + visible);
  const slice = items.slice(first, last);
  return html`<div class="vt" ref=${box} tabindex="0" role="region" aria-label=${label}
      style=${{ maxHeight: height + "px" }} onScroll=${(e) => setTop(e.currentTarget.scrollTop)}>
    <table class="grid">
      ${cols ? html`<colgroup>${cols.map((w) => html`<col style=${{ width: w || "auto" }} />`)}</colgroup>` : null}
      <thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>
        ${first > 0 ? html`<tr class="spacer" aria-hidden="true" style=${{ height: first * rowHeight + "px" }}></tr>` : null}
        ${slice.map((item) => html`<tr key=${keyOf(item)} style=${{ height: rowHeight + "px" }}>${row(item)}</tr>`)}
        ${last < items.length ? html`<tr class="spacer" aria-hidden="true"
            style=${{ height: (items.length - last) * rowHeight + "px" }}></tr>` : null}
      </tbody>
    </table>
  </div>`;
}

// ---- small bits ------------------------------------------------------------------------------------------

export function Badge({ kind, children, title }) {
  return html`<span class=${"badge " + (kind || "")} title=${title}>${children}</span>`;
}

/** A button that runs an async action, shows it running, and reports a failure beside itself. */
export function Action({ run, children, kind, label, confirmText }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const click = async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    setBusy(true); setError(null);
    try { await run(); } catch (err) { setError(err.message); } finally { setBusy(false); }
  };
  return html`<span class="action"><button type="button" class=${kind || ""} aria-label=${label} disabled=${busy}
      onClick=${click}>${children}</button>${error ? html`<span class="error" role="alert">${error}</span>` : null}</span>`;
}

/** Whether `value` contains the filter text `query`, ignoring case, as the hub folds machine names and project
 * keys (machine:hosta halts hostA/…; a lease claimed in "Shop" is in "shop"). */
export function contains(value, query) {
  return String(value || "").toLowerCase().includes(String(query).toLowerCase());
}

/** "host" for a machine's orchestrator host (`<m>/agent`), "worker" for one of its workers (`<m>/worker-<8 hex>`),
 * null for anyone else: the hub's own rule (coordhub.core.identity.orchestrator_role), which reserves these ids. */
export function roleOf(sessionId) {
  const m = /^[^/]+\/(?:(agent)|worker-[0-9a-f]{8})$/i.exec(String(sessionId || ""));
  return m === null ? null : m[1] ? "host" : "worker";
}

export function machineOf(sessionId) {
  const parts = String(sessionId || "").split("/");
  return parts.length > 1 ? parts[0] : "";
}
