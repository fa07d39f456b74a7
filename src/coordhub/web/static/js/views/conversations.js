// Conversations (seed 004's typed turns): open conversations, pending turns per project address,
// the turns of one conversation (org-mode text shown as text), and release.

import { call } from "../api.js";
import { html, useState, useNow, useResource, Loaded, Time, Badge, Action } from "../ui.js";

export function ConversationsView() {
  const [state, setState] = useState("open");
  const [open, setOpen] = useState(null);
  const now = useNow();
  // each read on the events that change it: a turn or a release changes the list and the pending counts, a profile
  // the addresses; signing keys neither
  const list = useResource(() => call("GET", "/conversations?limit=200" + (state ? "&state=" + state : "")),
                           ["conversation.turn", "conversation.released"], [state]);
  const addresses = useResource("/conversations/addresses",
                                ["conversation.turn", "conversation.released", "conversation.profile"]);
  return html`<section aria-labelledby="conv-h" class="split">
    <div>
      <h2 id="conv-h">Conversations</h2>
      <form class="filters" onSubmit=${(e) => e.preventDefault()}>
        <label>Show <select name="state" onChange=${(e) => setState(e.currentTarget.value)}>
          <option value="open" selected=${state === "open"}>open</option>
          <option value="released" selected=${state === "released"}>released</option>
          <option value="" selected=${state === ""}>all</option></select></label>
      </form>
      <${Loaded} res=${list} empty="No conversations.">${(rows) => html`<div class="scroll"><table class="grid">
        <thead><tr><th scope="col">Title</th><th scope="col">Project</th><th scope="col">Participants</th>
          <th scope="col">Seq</th><th scope="col">Pending</th><th scope="col">Updated</th></tr></thead>
        <tbody>${rows.map((c) => html`<tr key=${c.conversation_id}>
          <td><button type="button" class="link" onClick=${() => setOpen(c.conversation_id)}>${c.title || c.conversation_id}</button></td>
          <td>${c.project}</td><td>${(c.participants || []).join(", ")}</td><td class="num">${c.last_sequence}</td>
          <td>${c.pending ? html`<${Badge} kind="high">${c.pending}</${Badge}>` : "0"}</td>
          <td><${Time} iso=${c.updated_at} now=${now} /></td></tr>`)}</tbody></table></div>`}</${Loaded}>
      ${open ? html`<${Turns} id=${open} now=${now} onClose=${() => setOpen(null)} />` : null}
    </div>
    <div>
      <h3>Pending turns per project</h3>
      <${Loaded} res=${addresses} empty="No project has declared a conversation address.">${(rows) => html`<div class="scroll"><table class="grid">
        <thead><tr><th scope="col">Address</th><th scope="col">Sessions</th><th scope="col">Pending</th></tr></thead>
        <tbody>${rows.map((a) => html`<tr key=${a.address}><td>${a.address}</td>
          <td>${(a.sessions || []).map((s) => s.session_id).join(", ")}</td>
          <td>${a.pending === null ? html`<span title="another machine's: seen by its sessions and admins">—</span>`
            : a.pending ? html`<${Badge} kind="high">${a.pending}</${Badge}>` : "0"}</td></tr>`)}</tbody></table></div>`}</${Loaded}>
    </div>
  </section>`;
}

function Turns({ id, now, onClose }) {
  // one page of turns at a time (the hub answers at most 100 and about 4 MiB): `after` is the page's cursor
  const [after, setAfter] = useState(0);
  // this conversation's events only: an admin's stream carries every conversation's turns, and each read this page
  // of turns (up to about 4 MiB) again
  const res = useResource(() => call("GET", "/conversations/" + encodeURIComponent(id) + "?after=" + after),
                          ["conversation."], [id, after], (e) => e.subject_id === id);
  return html`<article class="card" aria-label="Conversation">
    <header><h3>${res.data ? res.data.title || id : id}</h3>
      <button type="button" class="link" onClick=${onClose} aria-label="Close conversation">×</button></header>
    <${Loaded} res=${res} isEmpty=${(c) => !c.turns || !c.turns.length} empty="No turns.">${(c) => html`
      <p class="meta">${c.state} · ${(c.participants || []).join(", ")}
        ${c.state === "open" ? html` <${Action} run=${() => call("POST", `/conversations/${encodeURIComponent(id)}/release`, {})}
          confirmText=${"Release conversation " + (c.title || id) + "? Every earlier turn stops being pending."}
          >Release</${Action}>` : null}</p>
      <ol class="turns">${c.turns.map((t) => html`<li key=${t.id}>
        <p class="meta"><strong>#${t.sequence ?? "—"} ${t.type}</strong> ${t.from} → ${t.to} <${Time} iso=${t.created_at}
          now=${now} />
          ${t.pending ? html` <${Badge} kind="high">pending</${Badge}>` : null}
          ${t.verified ? html` <${Badge} kind="ok">signed</${Badge}>` : null}
          ${t.decision === "reject" ? html` <${Badge} kind="danger">refused: ${t.reason}</${Badge}>` : null}</p>
        ${t.title ? html`<p>${t.title}</p>` : null}
        <pre class="body">${t.body || t.content}</pre></li>`)}</ol>
      <p class="meta">${after ? html`<button type="button" class="link" onClick=${() => setAfter(0)}>First turns</button> ` : null}
        ${c.next_after ? html`<button type="button" class="link" onClick=${() => setAfter(c.next_after)}>Next turns</button>` : null}</p>`}</${Loaded}>
  </article>`;
}
