// Work: fleet todos, workflows with their work items, and component states with their history.

import { getPage, me, pages } from "../api.js";
import { html, useRef, useState, useNow, useResource, Loaded, Time, Badge } from "../ui.js";

// the lists ask brief answers: the long text a row may carry (a todo's source, a component's notes, a description;
// up to 512 KiB each) is never shown here, and every event of its kind reads the list again
const HISTORY_WINDOW = 50000;  // component history: component.set events among the newest this many events
const HISTORY_KEPT = 1000;  // … the newest this many of them
const HISTORY_PAGES = 60;  // /audit answers one load follows at most (1,000 events each: past the window's 50,000)

export function WorkView() {
  const now = useNow();
  return html`<section aria-labelledby="work-h">
    <h2 id="work-h">Work</h2>
    <div class="columns">
      <${Todos} now=${now} />
      <${Workflows} now=${now} />
    </div>
    <${Components} now=${now} />
  </section>`;
}

function Todos({ now }) {
  const [status, setStatus] = useState("pending");
  const [shownPages, setShownPages] = useState(1);
  // newest first (the hub's oldest-first page of 500 hid every todo added after the 500th), one page of 500 more per
  // "Show older"; a todo event reads again the pages shown, no more (it read up to 25 pages each time)
  const res = useResource(async () => pages("/todos?brief=true&order=newest&status=" + status,
                                            { maxPages: shownPages }), ["todo."], [status, shownPages]);
  return html`<div class="card"><h3>Todos</h3>
    <label>Status <select onChange=${(e) => { setStatus(e.currentTarget.value); setShownPages(1); }}>
      ${["pending", "done", "all"].map((s) => html`<option value=${s} selected=${s === status}>${s}</option>`)}</select></label>
    <${Loaded} res=${res} isEmpty=${(d) => !d.rows.length} empty="No todos.">${(d) => html`<p class="meta">Newest first.</p>
      <ul class="list">${d.rows.map((t) => html`
      <li key=${t.id}><${Badge} kind=${t.status === "done" ? "ok" : ""}>${t.status}</${Badge}> ${t.text}${" "}
        <span class="meta">${t.project_key || ""} · ${t.created_by} · <${Time} iso=${t.created_at} now=${now} /></span></li>`)}</ul>
      ${d.more ? html`<p class="meta">The newest ${d.rows.length} shown; older ones follow.
        <button type="button" onClick=${() => setShownPages(shownPages + 1)} disabled=${res.loading}>Show older</button></p>` : null}`}</${Loaded}>
  </div>`;
}

function Workflows({ now }) {
  const [open, setOpen] = useState(null);
  // workflow events only: a work item's change leaves its workflow's row as it was (the open one's items read it)
  const res = useResource(async () => (await pages("/workflows?brief=true")).rows, ["workflow."]);
  return html`<div class="card"><h3>Workflows</h3>
    <${Loaded} res=${res} empty="No workflows.">${(rows) => html`<ul class="list">${rows.map((w) => html`
      <li key=${w.id}><button type="button" class="link" aria-expanded=${open === w.id}
          onClick=${() => setOpen(open === w.id ? null : w.id)}>${w.name}</button>${" "}
        <${Badge} kind=${w.status}>${w.status}</${Badge}> <span class="meta">${w.project_key} · <${Time} iso=${w.updated_at} now=${now} /></span>
        ${open === w.id ? html`<${Items} id=${w.id} />` : null}</li>`)}</ul>`}</${Loaded}>
  </div>`;
}

function Items({ id }) {
  const shown = useRef(new Set());  // the ids of the items read last
  const res = useResource(async () => {
    const got = await pages("/workflows/" + encodeURIComponent(id) + "?brief=true", { merge: (w) => w.work_items });
    shown.current = new Set(got.rows.map((i) => i.id));
    return { ...got.first, work_items: got.rows };
  }, ["work_item.", "workflow."], [id], (e) => e.subject_id === id || shown.current.has(e.subject_id) ||
     (e.kind === "work_item.created" && (e.payload || {}).workflow_id === id));  // this workflow's, not every one's
  return html`<${Loaded} res=${res} isEmpty=${(w) => !w.work_items.length} empty="No work items.">${(w) => html`
    <div class="scroll"><table class="grid"><thead><tr><th scope="col">Item</th><th scope="col">Status</th><th scope="col">Priority</th>
      <th scope="col">Assigned to</th></tr></thead>
    <tbody>${w.work_items.map((i) => html`<tr key=${i.id}><td>${i.title}</td>
      <td><${Badge} kind=${i.status}>${i.status}</${Badge}></td><td class="num">${i.priority}</td>
      <td>${i.assigned_to || ""}</td></tr>`)}</tbody></table></div>`}</${Loaded}>`;
}

function Components({ now }) {
  const [open, setOpen] = useState(null);
  const res = useResource(async () => (await pages("/components?brief=true")).rows, ["component."]);
  const history = useComponentHistory();
  return html`<div class="card"><h3>Components</h3>
    <${Loaded} res=${res} empty="No component states recorded.">${(rows) => html`<div class="scroll"><table class="grid">
      <thead><tr><th scope="col">Project</th><th scope="col">Component</th><th scope="col">State</th>
        <th scope="col">Version</th><th scope="col">By</th><th scope="col">Updated</th></tr></thead>
      <tbody>${rows.map((c) => {
        const key = c.project_key + "/" + c.component;
        const past = (history.data || []).filter((e) => e.project_key === c.project_key &&
                                                      e.subject_id === c.component).reverse();
        return html`<tr key=${key}><td>${c.project_key}</td>
          <td><button type="button" class="link" aria-expanded=${open === key}
            onClick=${() => setOpen(open === key ? null : key)}>${c.component}</button></td>
          <td><${Badge} kind=${c.state}>${c.state}</${Badge}></td><td>${c.version || ""}</td>
          <td>${c.updated_by}</td><td><${Time} iso=${c.updated_at} now=${now} /></td></tr>
          ${open === key ? html`<tr key=${key + "/history"} class="history"><td colspan="6"><ol class="history">
            ${past.length ? past.map((e) => html`<li key=${e.id}><${Badge} kind=${e.payload.state}>${e.payload.state}</${Badge}> ${e.payload.version || ""} by ${e.session_id}, <${Time} iso=${e.created_at} now=${now} /></li>`)
              : html`<li class="muted">No recent history.</li>`}</ol></td></tr>` : null}`;
      })}</tbody></table></div>`}</${Loaded}>
  </div>`;
}

/** The newest `HISTORY_KEPT` component.set events, oldest first. The log answers oldest first, so the first load
 * pages from the window's start to the log's end and keeps the tail (one answer of the oldest 1,000 hid every later
 * change once a window held more); each reload reads on from the last event it kept. */
function useComponentHistory() {
  const kept = useRef({ after: null, rows: [] });
  return useResource(async () => {
    const s = kept.current;
    let after = s.after ?? Math.max(0, me.lastEventId - HISTORY_WINDOW);
    for (let n = 0; n < HISTORY_PAGES; n++) {
      const got = await getPage("/audit?kinds=component.set&limit=1000&after=" + after);
      if (got.data.length) s.rows = s.rows.concat(got.data).slice(-HISTORY_KEPT);
      const next = got.headers.get("Coord-Next-After");
      if (next === null) {
        if (got.data.length) after = got.data[got.data.length - 1].id;
        break;
      }
      after = Number(next);
    }
    s.after = after;
    return s.rows;
  }, ["component."]);
}
