// The dashboard's shell: sign-in, navigation, every standing halt and the page's pause on every view,
// halt (fleet, project, machine) and resume of each, the stream status.

import { render } from "../vendor/preact-htm.js";
import { call, live, me, loadSession, signIn, signOut, actAs, whenSignedOut } from "./api.js";
import { html, useState, useEffect, useNow, useResource, Time, Badge, Action } from "./ui.js";
import { FleetView } from "./views/fleet.js";
import { MessagesView } from "./views/messages.js";
import { ConversationsView } from "./views/conversations.js";
import { LeasesView, leaseStore } from "./views/leases.js";
import { WorkView } from "./views/work.js";
import { BoardView } from "./views/board.js";
import { EventsView } from "./views/events.js";

const VIEWS = [
  ["fleet", "Fleet", FleetView],
  ["messages", "Messages", MessagesView],
  ["conversations", "Conversations", ConversationsView],
  ["leases", "Leases", LeasesView],
  ["work", "Work", WorkView],
  ["board", "Orchestrator", BoardView],
  ["events", "Events", EventsView],
];

function currentView() {
  const name = location.hash.replace(/^#\/?/, "");
  return VIEWS.find(([key]) => key === name) ? name : "fleet";
}

function SignIn({ onDone }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const field = e.currentTarget.elements.secret;
    setBusy(true); setError(null);
    try {
      if (me.noAuth) actAs(field.value.trim()); else await signIn(field.value.trim());
      field.value = "";  // the token leaves the page: only the HttpOnly cookie stays
      onDone();
    } catch (err) { setError(err.message); } finally { setBusy(false); }
  };
  return html`<main class="signin">
    <h1>coordhub</h1>
    ${me.noAuth ? html`<${NoAuthBanner} />` : null}
    <form class="card" onSubmit=${submit} aria-labelledby="signin-h">
      <h2 id="signin-h">${me.noAuth ? "Act as a session" : "Sign in"}</h2>
      ${me.noAuth ? html`<label>Session id <input name="secret" required autocomplete="off" placeholder="MACHINE/overseer" autofocus /></label>`
        : html`<label>Token <input name="secret" type="password" required autocomplete="off" autofocus
            placeholder="coord_…" /></label>
          <p class="meta">Any session's token, or an admin's (coord token create NAME). The page acts as that session.
            The token is exchanged for a browser session and not kept by the page.</p>`}
      <p class="buttons"><button type="submit" class="primary" disabled=${busy}>${me.noAuth ? "Continue" : "Sign in"}</button></p>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    </form>
  </main>`;
}

function NoAuthBanner() {
  return html`<p class="banner danger" role="alert"><strong>This hub runs with --no-auth.</strong>
    Anyone who can reach it may act as any session and as an admin; nothing here proves who you are.</p>`;
}

/** What a halt of `scope` (`fleet`, `machine:<m>`, `project:<p>`) stops, for its confirmation. */
function haltEffect(scope) {
  if (scope === "fleet") return "Every session's writes are refused until resume.";
  if (scope.startsWith("project:")) return "The writes of sessions in the project, and new work in it, are refused until resume.";
  return "The writes of the machine's sessions are refused until resume.";
}

/** Resume one halt (admin): the same confirmation style as halting, naming who halted it and why. */
function ResumeHalt({ h }) {
  const what = h.scope === "fleet" ? "the fleet" : h.scope;
  // Button text "Resume fleet" / "Resume project:web": one button per standing halt, each naming its scope.
  return html`<${Action} kind="primary" label=${"Resume " + h.scope}
      confirmText=${"Resume " + what + "? Halted by " + h.halted_by + ": " + h.reason}
      run=${() => call("POST", "/resume", { scope: h.scope })}>Resume ${h.scope}</${Action}>`;
}

/** Every standing halt (the fleet, machines, projects), each with a resume button for an admin; and the page's
 * own session's pause after a resume, with its re-engage button (the session's own right, as `coord engage`). */
function HaltBanner({ halt, now }) {
  if (!halt) return null;
  const halts = halt.halts || [];
  return html`${halts.length ? html`<div class="banner halt" role="alert" aria-live="assertive">
      ${halts.map((h) => html`<p key=${h.scope} class="halt-row" data-scope=${h.scope}>
        <strong>HALTED (${h.scope})</strong> by ${h.halted_by} <${Time} iso=${h.halted_at} now=${now} />: <q>${h.reason}</q>
        ${h.applies ? html` <${Badge} kind="paused" title="This halt covers the session the page acts as">covers you</${Badge}>` : null}
        ${me.admin ? html` <${ResumeHalt} h=${h} />` : null}</p>`)}
    </div>` : null}
    ${halt.paused ? html`<div class="banner warn paused" role="status"><p>
      <strong>PAUSED</strong>: ${me.sessionId} was active under the halt of ${halt.paused.scope || "a scope"},
      lifted <${Time} iso=${halt.paused.paused_at} now=${now} />; its writes are refused until it re-engages.
      <${Action} label="Re-engage this session" run=${() => call("POST", "/engage")}>Re-engage</${Action}></p>
    </div>` : null}`;
}

const HALT_KINDS = { fleet: "Halt fleet", project: "Halt project", machine: "Halt machine" };

/** The admin's halt form: the fleet, a project or a machine, a reason, then a confirmation. Hidden while the
 * fleet is halted: the hub refuses a second halt from a session a halt covers, and the fleet's covers everyone. */
function HaltControl({ halt }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [kind, setKind] = useState("fleet");
  if (!me.admin) return null;
  const fleet = halt && halt.halts ? halt.halts.find((h) => h.scope === "fleet") : null;
  if (fleet) return null;  // its resume button is in the banner
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const reason = form.elements.reason.value.trim();
    if (!reason) { setError("a reason is required"); return; }
    let scope = "fleet";
    if (kind !== "fleet") {
      const name = form.elements.target.value.trim();
      if (!name) { setError("name the " + kind + " to halt"); return; }
      scope = kind + ":" + name;
    }
    const what = scope === "fleet" ? "the whole fleet" : kind + " " + scope.slice(kind.length + 1);
    if (!window.confirm("Halt " + what + "? " + haltEffect(scope) + "\nReason: " + reason)) return;
    setBusy(true); setError(null);
    try { await call("POST", "/halt", { reason, scope }); form.reset(); setKind("fleet"); }
    catch (err) { setError(err.message); } finally { setBusy(false); }
  };
  return html`<div class="haltctl">
    <form onSubmit=${submit} class="row" aria-label="Halt the fleet, a project or a machine">
      <label class="sr-only" for="halt-scope">What to halt</label>
      <select id="halt-scope" name="kind" value=${kind} onChange=${(e) => { setKind(e.currentTarget.value); setError(null); }}>
        <option value="fleet">fleet</option><option value="project">project</option><option value="machine">machine</option>
      </select>
      ${kind !== "fleet" ? html`<label class="sr-only" for="halt-target">The ${kind}'s name</label>
        <input id="halt-target" name="target" required maxlength="200" autocomplete="off"
          placeholder=${kind === "project" ? "project (e.g. coord-hub)" : "machine (e.g. host-a)"} />` : null}
      <label class="sr-only" for="halt-reason">Reason for the halt</label>
      <input id="halt-reason" name="reason" required maxlength="500" placeholder=${"reason for a " + kind + " halt"} />
      <button type="submit" class="danger" disabled=${busy}>${HALT_KINDS[kind]}</button></form>
    ${error ? html`<span class="error" role="alert">${error}</span>` : null}
  </div>`;
}

function StreamStatus() {
  const [status, setStatus] = useState(live.status);
  useEffect(() => live.onStatus(setStatus), []);
  const text = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…", idle: "offline" }[status];
  return html`<span class=${"stream " + status} role="status" title="The hub's event stream">● ${text}</span>`;
}

function Shell({ onSignOut }) {
  const [view, setView] = useState(currentView());
  const now = useNow();
  const halt = useResource("/halt", ["halt.", "session."]);
  useEffect(() => {
    const go = () => setView(currentView());
    addEventListener("hashchange", go);
    return () => removeEventListener("hashchange", go);
  }, []);
  const View = VIEWS.find(([key]) => key === view)[2];
  return html`<div class="shell">
    <header class="top">
      <h1>coordhub</h1>
      <nav aria-label="Views"><ul>${VIEWS.map(([key, label]) => html`<li key=${key}>
        <a href=${"#/" + key} aria-current=${key === view ? "page" : undefined}>${label}</a></li>`)}</ul></nav>
      <div class="who">
        <${StreamStatus} />
        <span class="identity" title="The page acts as this session">${me.sessionId}${me.admin ? html` <span class="badge admin">admin</span>` : null}</span>
        <button type="button" onClick=${onSignOut}>${me.noAuth ? "Switch" : "Sign out"}</button>
      </div>
    </header>
    ${me.noAuth ? html`<${NoAuthBanner} />` : null}
    <${HaltBanner} halt=${halt.data} now=${now} />
    <${HaltControl} halt=${halt.data} />
    <main id="main" tabindex="-1"><${View} key=${view} /></main>
  </div>`;
}

function App() {
  const [phase, setPhase] = useState("loading");
  const [error, setError] = useState(null);
  const start = async () => {
    try {
      await loadSession();
      setPhase(me.signedIn ? "in" : "out");
      if (me.signedIn) live.start(me.lastEventId);
    } catch (err) { setError(err.message); setPhase("error"); }
  };
  // Signed out (or switched, on a --no-auth hub): what the page kept of the last session goes with it, or the next
  // one to sign in here would see its events (direct messages' subjects among them) and a lease list gone stale.
  useEffect(() => { whenSignedOut(() => { live.stop(); live.forget(); leaseStore.reset(); setPhase("out"); }); start(); }, []);
  if (phase === "loading") return html`<p class="state loading" role="status">Loading the dashboard…</p>`;
  if (phase === "error") return html`<p class="state error" role="alert">The hub did not answer: ${error}
    <button type="button" onClick=${() => { setPhase("loading"); start(); }}>Retry</button></p>`;
  if (phase === "out") return html`<${SignIn} onDone=${() => { setPhase("loading"); start(); }} />`;
  return html`<${Shell} onSignOut=${() => signOut().catch(() => {})} />`;
}

render(html`<${App} />`, document.getElementById("app"));
