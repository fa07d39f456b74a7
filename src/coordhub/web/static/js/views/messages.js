// Messages: the signed-in session's inbox (unread and acked state, importance, threads), mark read, ack,
// and compose as the overseer: direct or broadcast, importance, ack required, reply in thread.

import { call, me, pages } from "../api.js";
import { html, useState, useNow, useResource, Loaded, Time, VirtualTable, Badge, Action } from "../ui.js";

const IMPORTANCE = ["low", "normal", "high", "urgent"];
const PAGE = 200;
/** Whether a message event concerns the page's own session: sent to it, by it (its reads and acks too) or to
 * everyone. An admin's stream carries every session's message events; each one re-read the whole inbox (200
 * messages, up to about 4 MiB) though none of them could change it. */
function mine(e) {
  const self = String(me.sessionId || "").toLowerCase();
  return e.target === "*" || String(e.target || "").toLowerCase() === self ||
    String(e.session_id || "").toLowerCase() === self;
}
const THREAD_PAGES = 5;  // a thread shows at most this many answers of PAGE messages (about 4 MiB each)

export function MessagesView() {
  const [older, setOlder] = useState([]);
  const [open, setOpen] = useState(null);
  const [reply, setReply] = useState(null);
  const [sent, setSent] = useState(null);  // kept here: a reply's form is replaced by a new one once sent
  const [more, setMore] = useState(null);  // null: as the first page says; false: no older page
  // A page ends at PAGE messages or about 4 MiB of them: Coord-Next-Before-Seq says older ones follow.
  const inbox = (before) => pages("/messages?limit=" + PAGE + "&to_session=" + encodeURIComponent(me.sessionId) +
                                  (before ? "&before_seq=" + before : ""),
                                  { header: "Coord-Next-Before-Seq", maxPages: 1 });
  const res = useResource(async () => inbox(0), ["message."], [], mine);
  const now = useNow();
  const first = res.data ? res.data.rows : [];
  const seen = new Set(first.map((m) => m.id));
  const all = [...first, ...older.filter((m) => !seen.has(m.id))];
  const loadOlder = async () => {
    const last = all[all.length - 1];
    const page = await inbox(last.seq);
    setOlder((o) => [...o, ...page.rows]);
    setMore(page.more);
  };
  const selected = open && all.find((m) => m.id === open);
  const unread = all.filter((m) => !m.read).length;
  return html`<section aria-labelledby="messages-h" class="split">
    <div>
      <h2 id="messages-h">Inbox of ${me.sessionId} ${unread ? html`<${Badge} kind="unread">${unread} unread</${Badge}>` : null}</h2>
      <${Loaded} res=${res} isEmpty=${(d) => !d.rows.length} empty="No messages yet.">${() => html`
        <${VirtualTable} label="Inbox" items=${all} keyOf=${(m) => m.id} rowHeight=${38} cols=${["1.6rem", "22%", "", "7rem", "7rem", "8rem"]}
          head=${[html`<span class="sr-only">Unread</span>`, "From", "Subject", "Importance", "Sent",
                  html`<span class="sr-only">Acknowledgement</span>`]}
          row=${(m) => html`<td>${m.read ? "" : html`<span class="dot" role="img" title="unread" aria-label="unread"></span>`}</td>
            <td title=${m.from_session}>${m.broadcast ? html`<${Badge} kind="bc" title="Broadcast to every session">all</${Badge}> ` : null}${m.from_session}</td>
            <td><button type="button" class="link msg-subject" onClick=${() => setOpen(m.id)}
              aria-label=${"Open message " + m.subject}>${m.subject}</button></td>
            <td><${Badge} kind=${m.importance}>${m.importance}</${Badge}></td>
            <td><${Time} iso=${m.created_at} now=${now} /></td>
            <td>${m.requires_ack ? (m.acked_at ? html`<${Badge} kind="ok">acked</${Badge}>`
              : html`<${Badge} kind="high">ack required</${Badge}>`) : null}</td>`} />
        ${(more === null ? res.data && res.data.more : more) ? html`<button type="button" onClick=${loadOlder}>Load older</button>` : null}`}</${Loaded}>
      ${selected ? html`<${MessageDetail} key=${selected.id} m=${selected} now=${now}
          onReply=${() => setReply(selected)} onClose=${() => setOpen(null)} />` : null}
    </div>
    <${Compose} key=${reply ? reply.id : "new"} reply=${reply} sent=${sent} onSent=${setSent}
      onDone=${() => setReply(null)} />
  </section>`;
}

function MessageDetail({ m, now, onReply, onClose }) {
  return html`<article class="card" aria-label="Message">
    <header><h3>${m.subject}</h3><button type="button" class="link" onClick=${onClose} aria-label="Close message">×</button></header>
    <p class="meta">From <strong>${m.from_session}</strong> to ${m.broadcast ? "everyone" : m.to_session},${" "}
      <${Time} iso=${m.created_at} now=${now} />${m.project_key ? " · " + m.project_key : ""}
      ${m.message_type ? html` · <${Badge}>${m.message_type}</${Badge}>` : null}</p>
    <pre class="body">${m.body}</pre>
    <p class="buttons">
      ${m.read ? null : html`<${Action} run=${() => call("PUT", `/messages/${m.id}/read`)}>Mark read</${Action}>`}
      ${m.requires_ack && !m.acked_at ? html`<${Action} run=${() => call("POST", `/messages/${m.id}/ack`)}>Ack</${Action}>` : null}
      <button type="button" onClick=${onReply}>Reply in thread</button>
    </p>
    <${Thread} m=${m} now=${now} />
  </article>`;
}

/** The open message's thread as the hub keeps it (`GET /messages?thread_id=`): what this session sent in it too,
 * which its inbox never holds, so a thread built from the inbox showed one side of the exchange. Read again on
 * every message event while the message is open; at most THREAD_PAGES answers of PAGE messages. */
function Thread({ m, now }) {
  const id = m.thread_id || m.id;
  const res = useResource(() => pages("/messages?limit=" + PAGE + "&to_session=" + encodeURIComponent(me.sessionId) +
                                      "&thread_id=" + encodeURIComponent(id),
                                      { header: "Coord-Next-After-Seq", param: "after_seq", maxPages: THREAD_PAGES }),
                          ["message."], [id], mine);
  if (!res.data) return res.error ? html`<p class="error" role="alert">Could not read the thread: ${res.error.message}</p>` : null;
  const thread = res.data.rows;
  if (thread.length < 2) return null;
  return html`<h4>Thread (${thread.length}${res.data.more ? "+" : ""})</h4><ol class="thread">
    ${thread.map((t) => html`<li key=${t.id} class=${t.id === m.id ? "current" : ""}>
      <strong>${t.from_session}</strong> → ${t.broadcast ? "everyone" : t.to_session}${" "}
      <${Time} iso=${t.created_at} now=${now} />: ${t.subject}
      ${t.id === m.id ? null : html`<details><summary aria-label=${"Body of " + t.from_session + "’s " + t.subject}>Body</summary>
        <pre class="body">${t.body}</pre></details>`}</li>`)}</ol>
    ${res.data.more ? html`<p class="meta">Later messages of the thread follow: coord msg thread ${id}</p>` : null}`;
}

function Compose({ reply, sent, onSent, onDone }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // A broadcast has no recipient: the Session field is disabled (its label stays, a screen reader says "dimmed")
  // rather than left to be filled in and silently ignored.
  const [broadcast, setBroadcast] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = e.currentTarget;
    const broadcast = f.elements.mode.value === "broadcast";
    const body = { subject: f.elements.subject.value, body: f.elements.body.value,
                   importance: f.elements.importance.value, requires_ack: f.elements.ack.checked };
    if (!broadcast) body.to_session = f.elements.to.value.trim();
    if (f.elements.project.value.trim()) body.project_key = f.elements.project.value.trim();
    if (reply) { body.thread_id = reply.thread_id || reply.id; body.reply_to = reply.id; }
    setBusy(true); setError(null); onSent(null);
    try {
      const out = await call("POST", "/messages", body);
      onSent(out); f.reset(); setBroadcast(false); onDone();
    } catch (err) { setError(err.message); } finally { setBusy(false); }
  };
  return html`<form class="card compose" onSubmit=${submit} aria-labelledby="compose-h">
    <h3 id="compose-h">${reply ? "Reply in thread: " + reply.subject : "Compose as " + me.sessionId}</h3>
    <fieldset onChange=${(e) => { if (e.target.name === "mode") setBroadcast(e.target.value === "broadcast"); }}><legend>To</legend>
      <label><input type="radio" name="mode" value="direct" defaultChecked=${true} /> One session</label>
      <label><input type="radio" name="mode" value="broadcast" /> Broadcast to all</label>
    </fieldset>
    <label>Session <input name="to" defaultValue=${reply ? reply.from_session : ""} placeholder="MACHINE/name"
      autocomplete="off" disabled=${broadcast} /></label>
    <label>Subject <input name="subject" required maxlength="500" defaultValue=${reply ? "Re: " + reply.subject : ""} /></label>
    <label>Body <textarea name="body" rows="5" maxlength="524288"></textarea></label>
    <label>Project <input name="project" placeholder="optional" /></label>
    <div class="row">
      <label>Importance <select name="importance">${IMPORTANCE.map((i) => html`<option value=${i} selected=${i === "normal"}>${i}</option>`)}</select></label>
      <label><input type="checkbox" name="ack" /> Ack required</label>
    </div>
    <p class="buttons"><button type="submit" class="primary" disabled=${busy}>Send</button>
      ${reply ? html`<button type="button" onClick=${onDone}>Cancel reply</button>` : null}</p>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${sent ? html`<p class="ok" role="status">Sent “${sent.subject}” (#${sent.seq}).</p>` : null}
  </form>`;
}
