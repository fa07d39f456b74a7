// Events: the audit feed, newest first, live, filterable by kind (prefix), session and project.
//
// Unfiltered, the view holds the newest BACKLOG events read at opening and what the stream brings. A filter asks the
// hub (GET /audit?kinds=&session_prefix=&project_key=, which the database applies): it searched only the events the
// page had loaded, so an older match, or one past the 5,000 it kept, was "No event matches". The hub pages forward
// from an id, so the search reads windows of ids back from the newest, each ten times the last, until it holds
// BACKLOG matches or has looked through SEARCH_IDS ids; "Search older" goes on from there.

import { call, getPage, live, me } from "../api.js";
import { html, useState, useEffect, useMemo, useRef, useNow, Time, VirtualTable, Badge } from "../ui.js";

const BACKLOG = 500;  // events read from the audit log when the view opens, and matches a search stops at
const KEEP = 5000;    // events the view holds (older ones scroll away)
const FIRST_SPAN = 1000;  // ids the first window of a search covers
const MAX_SPAN = 100000;  // ids one window covers at most (the ids one filtered /audit answer looks through)
const SEARCH_IDS = 300000;  // ids one search (or one "Search older") looks through at most
const SEARCH_PAGES = 50;  // /audit answers one window reads at most (1,000 events each)
const TYPING_MS = 300;  // a search starts once the filter has not changed for this long

function summary(e) {
  const p = e.payload || {};
  const parts = [];
  for (const k of ["subject", "resource", "to_session", "reason", "state", "scope", "name", "component"]) {
    if (p[k] !== undefined && p[k] !== null && p[k] !== "") parts.push(k + ": " + p[k]);
  }
  if (parts.length) return parts.join(" · ");
  const text = JSON.stringify(p);
  return text === "{}" ? "" : text.slice(0, 200);
}

/** The filter as the hub applies it: a kind prefix, a session id's prefix ignoring case ("host-a/": a machine's
 * sessions) and a project key (which the hub folds). null when no field is set. */
function asked(kind, session, project) {
  const f = { kind: kind.trim().toLowerCase(), session: session.trim(), project: project.trim() };
  return f.kind || f.session || f.project ? f : null;
}

function matches(e, f) {
  return (!f.kind || e.kind.startsWith(f.kind)) &&
    (!f.session || String(e.session_id || "").toLowerCase().startsWith(f.session.toLowerCase())) &&
    (!f.project || String(e.project_key || "").toLowerCase() === f.project.toLowerCase());
}

function query(f) {
  return (f.kind ? "&kinds=" + encodeURIComponent(f.kind) : "") +
    (f.session ? "&session_prefix=" + encodeURIComponent(f.session) : "") +
    (f.project ? "&project_key=" + encodeURIComponent(f.project) : "");
}

/** The matches of `f` with ids in (lo, hi], oldest first, read forward from `lo` a page at a time. */
async function readWindow(f, lo, hi, signal) {
  const found = [];
  let after = lo;
  for (let n = 0; n < SEARCH_PAGES && after < hi; n++) {
    const got = await getPage("/audit?limit=1000&after=" + after + query(f), { signal });
    for (const e of got.data) if (e.id <= hi) found.push(e);
    const next = got.headers.get("Coord-Next-After");
    if (next === null) break;
    after = Number(next);
  }
  return found;
}

/** Search back from id `hi`: → `{found (newest first), searchedTo (the lowest id looked at, 0: the log's start)}`. */
async function search(f, hi, signal) {
  let found = [];
  let span = FIRST_SPAN;
  let looked = 0;
  while (hi > 0 && found.length < BACKLOG && looked < SEARCH_IDS) {
    const lo = Math.max(0, hi - span);
    found = found.concat((await readWindow(f, lo, hi, signal)).reverse());
    looked += hi - lo;
    hi = lo;
    span = Math.min(span * 10, MAX_SPAN);
  }
  return { found: found.slice(0, KEEP), searchedTo: hi };
}

export function EventsView() {
  const [rows, setRows] = useState(() => [...live.recent].reverse().slice(0, KEEP));
  const [state, setState] = useState({ loading: true, error: null });
  const [kind, setKind] = useState("");
  const [session, setSession] = useState("");
  const [project, setProject] = useState("");
  const filter = useMemo(() => asked(kind, session, project), [kind, session, project]);
  // what the hub answered for the filter: {filter, rows (newest first), searchedTo, searching, error}
  const [found, setFound] = useState(null);
  const abort = useRef(null);
  const now = useNow();
  useEffect(() => {
    let buffer = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const add = buffer.reverse();
      buffer = [];
      setRows((r) => [...add, ...r].slice(0, KEEP));
      setFound((s) => {  // a live event that matches the filter joins what the hub answered
        if (!s) return s;
        const more = add.filter((e) => matches(e, s.filter) && !s.rows.some((x) => x.id === e.id));
        return more.length ? { ...s, rows: [...more, ...s.rows].slice(0, KEEP) } : s;
      });
    };
    const off = live.on(null, (e) => {  // applied in the next animation frame: a burst costs one render
      buffer.push(e);
      if (!frame) frame = requestAnimationFrame(flush);
    });
    const start = Math.max(0, Math.min(live.lastId || me.lastEventId, me.lastEventId) - BACKLOG);
    call("GET", "/audit?limit=" + BACKLOG + "&after=" + start).then((page) => {
      setRows((r) => {
        const have = new Set(r.map((e) => e.id));
        return [...r, ...page.filter((e) => !have.has(e.id)).reverse()].sort((a, b) => b.id - a.id).slice(0, KEEP);
      });
      setState({ loading: false, error: null });
    }, (err) => setState({ loading: false, error: err }));
    return () => { off(); if (frame) cancelAnimationFrame(frame); if (abort.current) abort.current.abort(); };
  }, []);

  /** Ask the hub for the filter's matches back from id `hi` (below what `kept` already holds). */
  const ask = (f, hi, kept) => {
    if (abort.current) abort.current.abort();
    const controller = new AbortController();
    abort.current = controller;
    setFound({ filter: f, rows: kept, searchedTo: hi, searching: true, error: null });
    search(f, hi, controller.signal).then(({ found: more, searchedTo }) => {
      if (controller.signal.aborted) return;
      setFound((s) => ({ filter: f, rows: [...(s ? s.rows : kept), ...more].slice(0, KEEP), searchedTo,
                         searching: false, error: null }));
    }, (err) => {
      if (controller.signal.aborted) return;
      setFound((s) => ({ ...s, searching: false, error: err }));
    });
  };
  useEffect(() => {
    if (abort.current) abort.current.abort();
    if (!filter) { setFound(null); return undefined; }
    const timer = setTimeout(() => ask(filter, Math.max(live.lastId, me.lastEventId), []), TYPING_MS);
    return () => clearTimeout(timer);
  }, [filter && query(filter)]);

  const shown = filter ? (found ? found.rows : []) : rows;
  const searching = filter && (!found || found.searching);
  return html`<section aria-labelledby="events-h">
    <h2 id="events-h">Events</h2>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Kind <input name="kind" list="event-kinds" placeholder="lease." value=${kind}
        onInput=${(e) => setKind(e.currentTarget.value)} /></label>
      <label>Session <input name="session" placeholder="host-a/" value=${session}
        onInput=${(e) => setSession(e.currentTarget.value)} /></label>
      <label>Project <input name="project" value=${project} onInput=${(e) => setProject(e.currentTarget.value)} /></label>
      <datalist id="event-kinds">${["lease.", "message.", "halt.", "presence.", "todo.", "workflow.", "work_item.",
        "component.", "conversation.", "assignment.", "host.", "token.", "session.", "web."].map((k) => html`<option value=${k} />`)}</datalist>
    </form>
    ${filter ? html`<p class="meta" role="status">${searching ? "Asking the hub…" : found.searchedTo > 0
      ? html`${shown.length} matching events from the newest back to event ${found.searchedTo + 1}.
          <button type="button" onClick=${() => ask(found.filter, found.searchedTo, found.rows)}>Search older</button>`
      : shown.length + " matching events: the whole log searched."}
      <span class="muted"> Kind and session match from their start (<code>host-a/</code>: a machine's sessions), the project
        as a whole name; case is ignored.</span></p>` : null}
    ${state.error ? html`<p class="state error" role="alert">Could not read the audit log: ${state.error.message}</p>` : null}
    ${filter && found && found.error ? html`<p class="state error" role="alert">The hub's search failed: ${found.error.message}</p>` : null}
    ${(filter ? searching && !shown.length : state.loading && !rows.length) ? html`<p class="state loading" role="status">Loading…</p>`
      : !shown.length ? html`<p class="state empty">${filter ? "No event matches the filters." : "No events yet."}</p>`
      : html`<${VirtualTable} label="Events" items=${shown} keyOf=${(e) => e.id}
          head=${["#", "Kind", "Session", "Project", "What", "When"]} cols=${["5rem", "13rem", "14%", "10%", "", "7rem"]}
          row=${(e) => html`<td class="num" data-event-id=${e.id}>${e.id}</td><td><${Badge} kind=${e.kind.split(".")[0]}>${e.kind}</${Badge}></td>
            <td title=${e.session_id || ""}>${e.session_id || ""}</td><td>${e.project_key || ""}</td>
            <td title=${summary(e)}>${summary(e)}</td><td><${Time} iso=${e.created_at} now=${now} /></td>`} />`}
  </section>`;
}
