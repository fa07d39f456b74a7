// The orchestrator board: machines and slots, the queue, assignments by state with model, cost, last tool
// and progress, stuck and needs-input ones first with their question, and a live log of one assignment.

import { call, live } from "../api.js";
import { html, useState, useEffect, useRef, useNow, useResource, Loaded, Time, Badge } from "../ui.js";

const WAITING = ["stuck", "needs_input"];
const STATE_ORDER = ["stuck", "needs_input", "running", "dispatched", "done", "failed", "cancelled"];
const LOG_CAP = 200_000;  // characters of log the view keeps

/** What runs on machine `m` (every machine when none): its workers (the hub's `running`: assignments holding a
 * slot), its smoke tests and reviews (`busy_slots` less those: the stage runs holding one, as dispatch counts them)
 * and the merges the merge queue runs there. The column counted the workers alone, so a machine busy with a test
 * or a merge said "0 running" next to "0 free". → `{total, workers, stages, merges}`. */
function running(s, m = null) {
  const of = m ? [m] : s.machines;
  const workers = m ? m.running : s.totals.running;
  const stages = of.reduce((n, x) => n + Math.max(0, (x.busy_slots ?? x.running) - x.running), 0);
  const merges = (s.merges || []).filter((e) => e.state === "running" && (!m || e.machine === m.machine)).length;
  return { total: workers + stages + merges, workers, stages, merges };
}

function detail(r) {
  return r.workers + " worker" + (r.workers === 1 ? "" : "s") + ", " + r.stages + " test/review run" +
    (r.stages === 1 ? "" : "s") + ", " + r.merges + " merge" + (r.merges === 1 ? "" : "s");
}

export function BoardView() {
  // stage runs and merges too: they hold slots (Running, free) and fill the pipeline list; the board read nothing on
  // stage_run.dispatched, so a machine that took a test showed its slot free until some assignment moved
  const res = useResource("/orchestrator/status", ["assignment.", "host.", "orchestrator.", "stage_run.", "stage.",
                                                   "merge."]);
  const [logOf, setLogOf] = useState(null);
  const now = useNow();
  return html`<section aria-labelledby="board-h">
    <h2 id="board-h">Orchestrator</h2>
    <${Loaded} res=${res} isEmpty=${(s) => !s.configured} empty="No orchestrator config applied (coord config apply).">${(s) => html`
      ${s.paused ? html`<p class="banner warn" role="status">Dispatch paused: ${s.paused.reason || ""}</p>` : null}
      <p class="count">${running(s).total} running (${detail(running(s))}) · ${s.totals.queued} queued · $${s.totals.cost_usd.toFixed(2)} spent</p>
      ${s.assignments.filter((a) => WAITING.includes(a.state)).map((a) => html`<div class="banner warn" key=${"w" + a.id}>
        <strong>${a.state === "stuck" ? "Stuck" : "Needs input"}: ${a.repo}#${a.issue}</strong> ${a.title || ""}${" "}
        <q>${a.reason || a.status_line || "no question recorded"}</q>${" "}
        <button type="button" class="link" onClick=${() => setLogOf(a.id)}>Log</button></div>`)}
      <h3>Machines</h3>
      <div class="scroll"><table class="grid"><thead><tr><th scope="col">Machine</th><th scope="col">State</th><th scope="col">Slots</th>
        <th scope="col">Running</th><th scope="col">Heartbeat</th><th scope="col">Cost today</th></tr></thead>
      <tbody>${s.machines.map((m) => html`<tr key=${m.machine}><td>${m.machine}</td>
        <td><${Badge} kind=${m.state}>${m.state}</${Badge}></td><td class="num">${m.free_slots} free of ${m.slots}</td>
        <td class="num" title=${detail(running(s, m))}>${running(s, m).total}</td><td><${Time} iso=${m.last_heartbeat} now=${now} /></td>
        <td class="num">$${m.cost_today_usd.toFixed(2)}</td></tr>`)}</tbody></table></div>
      <h3>Queue (${s.queue.length})</h3>
      ${s.queue.length ? html`<ol class="list">${s.queue.map((a) => html`<li key=${a.id}>${a.repo}#${a.issue} ${a.title || ""}
        <span class="meta">${a.model} · ${a.machine || "any machine"} · queued <${Time} iso=${a.queued_at} now=${now} /></span></li>`)}</ol>`
        : html`<p class="state empty">Nothing queued.</p>`}
      <h3>Tests, reviews and merges (${(s.stage_runs || []).length + (s.merges || []).length})</h3>
      <${Pipeline} s=${s} now=${now} />
      <h3>Assignments</h3>
      <${Assignments} rows=${s.assignments} now=${now} onLog=${setLogOf} />
      ${logOf ? html`<${Log} id=${logOf} onClose=${() => setLogOf(null)} />` : null}`}</${Loaded}>
  </section>`;
}

/** The smoke tests and reviews queued or running, and the merge queue's live entries: a done assignment waits in
 * them, and the board showed neither (a lead saw "api#1 done" and nothing of the test it waited on). */
function Pipeline({ s, now }) {
  const runs = s.stage_runs || [];
  const merges = s.merges || [];
  if (!runs.length && !merges.length) return html`<p class="state empty">Nothing being tested, reviewed or merged.</p>`;
  const work = new Map(s.assignments.map((a) => [a.id, a]));  // a run names its assignment: shown as a merge is
  return html`<div class="scroll"><table class="grid"><thead><tr><th scope="col">Issue</th><th scope="col">Stage</th>
    <th scope="col">State</th><th scope="col">Machine</th><th scope="col">Why</th><th scope="col">Since</th></tr></thead>
  <tbody>${runs.map((r) => html`<tr key=${"r" + r.id}><td>${work.has(r.assignment_id) ? html`${work.get(r.assignment_id).repo}#${
      work.get(r.assignment_id).issue} <span class="meta">${work.get(r.assignment_id).title || ""}</span>` : r.assignment_id}</td>
      <td>${r.stage}</td><td><${Badge} kind=${r.state}>${r.state}</${Badge}></td><td>${r.machine || ""}</td>
      <td>${r.reason || ""}</td><td><${Time} iso=${r.state === "queued" ? r.created_at : r.started_at || r.dispatched_at} now=${now} /></td></tr>`)}
    ${merges.map((e) => html`<tr key=${"m" + e.id}><td>${e.repo}#${e.issue} <span class="meta">${e.title || ""}</span></td>
      <td>merge into ${e.target}${e.position ? " (#" + e.position + " in line)" : ""}</td>
      <td><${Badge} kind=${e.state}>${e.state}</${Badge}></td><td>${e.machine || ""}</td><td>${e.reason || ""}</td>
      <td><${Time} iso=${e.started_at || e.created_at} now=${now} /></td></tr>`)}</tbody></table></div>`;
}

function Assignments({ rows, now, onLog }) {
  if (!rows.length) return html`<p class="state empty">No assignments yet.</p>`;
  const sorted = [...rows].sort((a, b) => STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state));
  return html`<div class="scroll"><table class="grid"><thead><tr><th scope="col">Issue</th><th scope="col">State</th><th scope="col">Machine</th>
    <th scope="col">Model</th><th scope="col">Cost</th><th scope="col">Last tool</th><th scope="col">Progress</th>
    <th scope="col">Updated</th><th scope="col">Log</th></tr></thead>
  <tbody>${sorted.map((a) => html`<tr key=${a.id} class=${WAITING.includes(a.state) ? "attention" : ""}>
    <td>${a.repo}#${a.issue} <span class="meta">${a.title || ""}</span></td>
    <td><${Badge} kind=${a.state}>${a.state}</${Badge}>${a.stage && a.stage !== "work" && a.stage !== a.state
      ? html` <span class="meta" title="its pipeline stage">→ ${a.stage}</span>` : null}</td><td>${a.ran_on || a.machine || ""}</td>
    <td>${a.model}</td><td class="num">$${Number(a.total_cost_usd || 0).toFixed(2)}</td>
    <td class="mono">${a.last_tool || ""}${a.last_file ? " " + a.last_file : ""}</td>
    <td>${a.progress || a.status_line || ""}</td><td><${Time} iso=${a.updated_at} now=${now} /></td>
    <td><button type="button" class="link" onClick=${() => onLog(a.id)} aria-label=${"Log of " + a.repo + "#" + a.issue}>Log</button></td>
  </tr>`)}</tbody></table></div>`;
}

/** The relayed log of one assignment, read on from its offset whenever that assignment reports. */
function Log({ id, onClose }) {
  const [text, setText] = useState("");
  const [error, setError] = useState(null);
  const offset = useRef(0);
  const busy = useRef(false);
  const box = useRef(null);
  useEffect(() => {
    offset.current = 0;
    setText("");
    const read = async () => {
      if (busy.current) return;
      busy.current = true;
      try {
        for (;;) {
          const page = await call("GET", `/orchestrator/assignments/${encodeURIComponent(id)}/log?offset=${offset.current}`);
          if (page.offset > offset.current && offset.current === 0) setText("[… older text dropped by the hub]\n");
          offset.current = page.offset + page.text.length;
          if (page.text) setText((t) => (t + page.text).slice(-LOG_CAP));
          if (offset.current >= page.size || !page.text) break;
        }
        setError(null);
      } catch (err) { setError(err.message); } finally { busy.current = false; }
    };
    read();
    return live.on(["assignment."], (e) => { if (e.subject_id === id) read(); });
  }, [id]);
  useEffect(() => { if (box.current) box.current.scrollTop = box.current.scrollHeight; }, [text]);
  return html`<article class="card" aria-label="Assignment log">
    <header><h3>Log of ${id}</h3><button type="button" class="link" onClick=${onClose} aria-label="Close log">×</button></header>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    <pre class="log" ref=${box} tabindex="0">${text || "(no log yet)"}</pre>
  </article>`;
}
