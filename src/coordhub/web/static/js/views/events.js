// Events: the audit feed, newest first, live, filterable by kind (prefix), session and project.

import { call, live, me } from "../api.js";
import { html, useState, useEffect, useMemo, useNow, Time, VirtualTable, Badge, contains } from "../ui.js";

const BACKLOG = 500;  // events read from the audit log when the view opens
const KEEP = 5000;    // events the view holds (older ones scroll away)

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

export function EventsView() {
  const [rows, setRows] = useState(() => [...live.recent].reverse().slice(0, KEEP));
  const [state, setState] = useState({ loading: true, error: null });
  const [kind, setKind] = useState("");
  const [session, setSession] = useState("");
  const [project, setProject] = useState("");
  const now = useNow();
  useEffect(() => {
    let buffer = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const add = buffer.reverse();
      buffer = [];
      setRows((r) => [...add, ...r].slice(0, KEEP));
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
    return () => { off(); if (frame) cancelAnimationFrame(frame); };
  }, []);
  const shown = useMemo(() => rows.filter((e) => (!kind || e.kind.startsWith(kind.toLowerCase())) &&
    (!session || contains(e.session_id, session)) && (!project || contains(e.project_key, project))),
    [rows, kind, session, project]);
  return html`<section aria-labelledby="events-h">
    <h2 id="events-h">Events</h2>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Kind <input name="kind" list="event-kinds" placeholder="lease." value=${kind}
        onInput=${(e) => setKind(e.currentTarget.value)} /></label>
      <label>Session <input name="session" value=${session} onInput=${(e) => setSession(e.currentTarget.value)} /></label>
      <label>Project <input name="project" value=${project} onInput=${(e) => setProject(e.currentTarget.value)} /></label>
      <datalist id="event-kinds">${["lease.", "message.", "halt.", "presence.", "todo.", "workflow.", "work_item.",
        "component.", "conversation.", "assignment.", "host.", "token.", "session.", "web."].map((k) => html`<option value=${k} />`)}</datalist>
    </form>
    ${state.error ? html`<p class="state error" role="alert">Could not read the audit log: ${state.error.message}</p>` : null}
    ${state.loading && !rows.length ? html`<p class="state loading" role="status">Loading…</p>`
      : !shown.length ? html`<p class="state empty">${rows.length ? "No event matches the filters." : "No events yet."}</p>`
      : html`<${VirtualTable} label="Events" items=${shown} keyOf=${(e) => e.id}
          head=${["#", "Kind", "Session", "Project", "What", "When"]} cols=${["5rem", "13rem", "14%", "10%", "", "7rem"]}
          row=${(e) => html`<td class="num" data-event-id=${e.id}>${e.id}</td><td><${Badge} kind=${e.kind.split(".")[0]}>${e.kind}</${Badge}></td>
            <td title=${e.session_id || ""}>${e.session_id || ""}</td><td>${e.project_key || ""}</td>
            <td title=${summary(e)}>${summary(e)}</td><td><${Time} iso=${e.created_at} now=${now} /></td>`} />`}
  </section>`;
}
