// Fleet: every session with its presence, incarnation, machine, project, last heartbeat and what it holds.

import { call, me, pages } from "../api.js";
import { html, useState, useEffect, useMemo, useNow, useResource, Loaded, Time, VirtualTable, Badge, machineOf, contains, roleOf } from "../ui.js";
import { useLeases } from "./leases.js";

const ORDER = { active: 0, idle: 1, stale: 2, offline: 3 };
// A session's state follows from the time since its last heartbeat on the hub's clock (coordhub.core.presence.tiers),
// and a heartbeat is no event (an agent beats on every tool call): read only on events, a session that went quiet
// stayed "active" here for good. So the view reads again when the soonest row's state is due to change, timed from
// the answer's own seconds_since_heartbeat (no clock skew), at most once per TIER_READ_FLOOR_MS: one read per tier
// passed, not a polling loop. The tiers are the hub's, read with the web session (me.presenceSeconds), never a copy.
const TIER_READ_FLOOR_MS = 5000;

/** Milliseconds until the soonest state change among `rows` (a presence answer), or null when none is due (or the
 * hub told no tiers). Exported for its browser test. */
export function nextTier(rows) {
  const t = me.presenceSeconds;
  if (!t) return null;
  const tiers = [t.active, t.idle, t.stale];
  let soonest = Infinity;
  for (const s of rows) {
    const age = s.seconds_since_heartbeat;
    if (s.state === "offline" || typeof age !== "number") continue;
    const tier = tiers.find((x) => x >= age);
    if (tier !== undefined) soonest = Math.min(soonest, tier - age);
  }
  return soonest === Infinity ? null : Math.max(soonest * 1000 + 500, TIER_READ_FLOOR_MS);
}

const PAGES = 5;  // presence answers (1,000 sessions each) one read follows at most

/** The sessions the view shows: those not offline, or every one with `offline` (the hub filters: every orchestrator
 * worker is a session of its own, so the sessions that ever registered grow without end, and the view read them all
 * on every presence event). → `{rows, more}` (more: pages were left unread). */
async function loadSessions(offline) {
  const got = await pages("/presence" + (offline ? "" : "?state=live"), { maxPages: PAGES });
  return { rows: got.rows, more: got.more };
}

/** session id → the project it declared (its conversation address), from `/conversations/addresses`. */
async function loadProjects() {
  const project = new Map();
  try {
    for (const a of await call("GET", "/conversations/addresses")) {
      for (const s of a.sessions || []) project.set(s.session_id, a.project);
    }
  } catch { /* optional: projects are declared there */ }
  return project;
}

export function FleetView() {
  const [offline, setOffline] = useState(false);
  // presence and pauses change the rows; a token minted or revoked changes neither (each worker attempt mints one)
  const res = useResource(() => loadSessions(offline), ["presence.", "session."], [offline]);
  const projects = useResource(loadProjects, ["conversation.profile"]);  // declared projects: only when one changes
  const leases = useLeases();
  const now = useNow();
  const [filter, setFilter] = useState("");
  useEffect(() => {
    const wait = res.data ? nextTier(res.data.rows) : null;
    if (wait === null) return undefined;
    const timer = setTimeout(() => res.reload(), wait);
    return () => clearTimeout(timer);
  }, [res.data]);
  const sessions = useMemo(() => {
    if (!res.data) return null;
    const project = projects.data || new Map();
    return res.data.rows.map((s) => ({ ...s, machine: machineOf(s.session_id), project: project.get(s.session_id) || "" }))
      .sort((a, b) => (ORDER[a.state] ?? 9) - (ORDER[b.state] ?? 9) || a.session_id.localeCompare(b.session_id));
  }, [res.data, projects.data]);
  const held = useMemo(() => {
    const by = new Map();
    for (const l of leases.byId.values()) {
      const list = by.get(l.session_id) || [];
      list.push(l.resource);
      by.set(l.session_id, list);
    }
    return by;
  }, [leases.version]);
  // A session that went offline still holding leases blocks whoever needs them: say so, though it is not listed.
  // An orchestrator worker registers no presence: its machine's agent keeps its lease while it runs (and the hub
  // ends it with the attempt), so it is named apart, as what it is, not as a session gone missing. With offline
  // sessions included, a holder still not listed never registered presence (a REST script, seed 001's clients).
  const unlisted = useMemo(() => {
    if (!sessions || res.data.more) return { missing: [], workers: [] };
    const listed = new Set(sessions.map((s) => s.session_id));
    const ids = [...held.keys()].filter((id) => !listed.has(id)).sort();
    return { missing: ids.filter((id) => roleOf(id) !== "worker"), workers: ids.filter((id) => roleOf(id) === "worker") };
  }, [sessions, held, offline]);
  const named = (ids) => ids.map((id, i) => html`${i ? ", " : ""}<strong>${id}</strong>${" "}(${held.get(id).length})`);
  return html`<section aria-labelledby="fleet-h">
    <h2 id="fleet-h">Fleet</h2>
    ${unlisted.missing.length ? html`<p class="banner warn unlisted" role="status">${offline
      ? "Holding leases, never registered presence: " : "Holding leases but not online (offline, or never registered presence): "
      }${named(unlisted.missing)}</p>` : null}
    ${unlisted.workers.length ? html`<p class="meta workers" role="status">Orchestrator workers holding leases (a worker
      registers no presence: its machine's agent keeps the lease while it runs; see Orchestrator): ${
      named(unlisted.workers)}</p>` : null}
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Session, machine or project <input name="filter" value=${filter}
        onInput=${(e) => setFilter(e.currentTarget.value)} /></label>
      <label><input type="checkbox" name="offline" checked=${offline}
        onChange=${(e) => setOffline(e.currentTarget.checked)} /> Include offline sessions</label>
    </form>
    <${Loaded} res=${{ ...res, data: sessions }} empty=${offline ? "No session has registered its presence yet."
      : "No session is online (active, idle or stale). Include offline sessions to see the others."}>${(rows) => {
      const shown = filter ? rows.filter((s) => [s.session_id, s.machine, s.project].some((v) => contains(v, filter))) : rows;
      const counts = {};
      for (const s of rows) counts[s.state] = (counts[s.state] || 0) + 1;
      return html`<p class="count">${rows.length}${res.data.more ? "+" : ""} ${offline ? "" : "online "}sessions:
          ${Object.entries(counts).map(([k, n]) => html` <${Badge} kind=${k}>${n} ${k}</${Badge}>`)}
          ${res.data.more ? html` <span class="meta">(the first ${rows.length} by id)</span>` : null}</p>
        <${VirtualTable} label="Sessions" items=${shown} keyOf=${(s) => s.session_id}
          head=${["Session", "State", "Incarnation", "Machine", "Project", "Last heartbeat", "Holds"]}
          row=${(s) => {
            const holds = held.get(s.session_id) || [];
            return html`<td title=${s.session_id}>${s.session_id}</td>
              <td><${Badge} kind=${s.state}>${s.state}</${Badge}>${s.paused ? html` <${Badge} kind="paused">paused</${Badge}>` : null}</td>
              <td class="num">${s.incarnation}</td><td>${s.machine}</td><td>${s.project}</td>
              <td><${Time} iso=${s.last_heartbeat} now=${now} /></td>
              <td title=${holds.join("\n")}>${holds.length ? holds.length + ": " + holds.slice(0, 3).join(", ") +
                (holds.length > 3 ? " …" : "") : html`<span class="muted">nothing</span>`}</td>`;
          }} />`;
    }}</${Loaded}>
  </section>`;
}
