// Leases: every live lease with a live countdown; admins may force-release one (after naming its holder).
// The list is read once (every page of it), then kept current from lease events (granted, renewed, ended)
// without re-reading it, so 10,000 leases and a stream of events cost one read and a Map update per event.

import { call, live, me } from "../api.js";
import { html, useState, useEffect, useMemo, useNow, Countdown, VirtualTable, Action, Loaded, contains } from "../ui.js";

const ENDED = ["lease.released", "lease.expired", "lease.revoked", "lease.stale_takeover"];

class LeaseStore {
  constructor() {
    this.byId = new Map();
    this.state = { loading: true, error: null };
    this.listeners = new Set();
    this.started = false;
    this.loaded = false;  // a read was begun since the last sign-in
    this.generation = 0;  // bumped by reset(): a read begun before it is dropped
    this.version = 0;
  }

  start() {
    if (!this.started) {
      this.started = true;
      live.on(["lease."], (e) => this.apply(e));
      live.onStatus((s) => { if (s === "live" && this.was === "reconnecting") this.load(); this.was = s; });
    }
    if (!this.loaded) {
      this.loaded = true;
      this.load();
    }
  }

  /** Forget every lease (sign-out): the stream stops while signed out, so what the store holds goes stale, and the
   * next sign-in on this page reads the list again when a view first asks for it. */
  reset() {
    this.generation += 1;
    this.byId = new Map();
    this.state = { loading: true, error: null };
    this.loaded = false;
    this.changed();
  }

  async load() {
    const generation = this.generation;
    try {
      // The hub answers 500 leases a request, oldest grant first: read on from the last fence until a page
      // comes back empty (the fence strictly grows, so this ends; the Coord-Next-After-Fence header says the
      // same, but call() gives the body alone).
      const rows = [];
      for (let after = 0; ;) {
        const page = await call("GET", "/locks?after_fence=" + after);
        rows.push(...page);
        const last = page.length ? page[page.length - 1].fence : after;
        if (!page.length || !(last > after)) break;
        after = last;
      }
      if (generation !== this.generation) return;
      this.byId = new Map(rows.map((l) => [l.id, l]));
      this.state = { loading: false, error: null };
    } catch (err) {
      if (generation !== this.generation) return;
      this.state = { loading: false, error: err };
    }
    this.changed();
  }

  apply(e) {
    const p = e.payload || {};
    if (e.kind === "lease.granted") {
      this.byId.set(e.subject_id, { id: e.subject_id, fence: p.fence, project_key: e.project_key,
        resource: p.resource, session_id: e.session_id, description: p.description || null, acquired_at: e.created_at,
        expires_at: p.expires_at || null, state: "active" });
    } else if (e.kind === "lease.renewed") {
      const l = this.byId.get(e.subject_id);
      if (l) {
        const ttl = Number(p.ttl_hours || 0);
        this.byId.set(l.id, { ...l, expires_at: ttl ? new Date(Date.parse(e.created_at) + ttl * 3600e3).toISOString() : null });
      }
    } else if (ENDED.includes(e.kind)) {
      this.byId.delete(e.subject_id);
    }
    this.changed();
  }

  changed() {
    this.version += 1;
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; for (const fn of this.listeners) fn(this.version); });
  }

  subscribe(fn) { this.start(); this.listeners.add(fn); return () => this.listeners.delete(fn); }

  list() { return [...this.byId.values()]; }
}

export const leaseStore = new LeaseStore();

/** Re-render the caller when the lease store changes; returns the store. */
export function useLeases() {
  const [, setVersion] = useState(0);
  useEffect(() => leaseStore.subscribe(setVersion), []);
  return leaseStore;
}

export function LeasesView() {
  const store = useLeases();
  const now = useNow();
  const [project, setProject] = useState("");
  const [holder, setHolder] = useState("");
  const [text, setText] = useState("");
  const rows = useMemo(() => store.list().filter((l) => (!project || contains(l.project_key, project)) &&
      (!holder || contains(l.session_id, holder)) && (!text || contains(l.resource, text)))
    .sort((a, b) => (a.project_key || "").localeCompare(b.project_key || "") || a.fence - b.fence),
    [store.version, project, holder, text]);
  const res = { data: store.state.loading ? null : rows, error: store.state.error,
                loading: store.state.loading, reload: () => store.load() };
  const head = ["Project", "Resource", "Holder", "Fence", "Description", "Expires in", ...(me.admin ? ["Admin"] : [])];
  return html`<section aria-labelledby="leases-h">
    <h2 id="leases-h">Leases</h2>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Project <input name="project" value=${project} onInput=${(e) => setProject(e.currentTarget.value)} /></label>
      <label>Holder <input name="holder" value=${holder} onInput=${(e) => setHolder(e.currentTarget.value)} /></label>
      <label>Resource <input name="resource" value=${text} onInput=${(e) => setText(e.currentTarget.value)} /></label>
    </form>
    <${Loaded} res=${res} empty=${store.byId.size ? "No lease matches the filters." : "No live leases."}>${(shown) => {
      return html`<p class="count">${shown.length} of ${store.byId.size} live leases</p>
        <${VirtualTable} label="Live leases" items=${shown} keyOf=${(l) => l.id} head=${head}
          cols=${["10%", "", "16%", "5rem", "14%", "9.5rem", ...(me.admin ? ["10rem"] : [])]}
          row=${(l) => html`<td>${l.project_key}</td><td class="mono" title=${l.resource}>${l.resource}</td>
            <td title=${l.session_id}>${l.session_id}</td><td class="num">${l.fence}</td>
            <td title=${l.description || ""}>${l.description || ""}</td>
            <td><${Countdown} iso=${l.expires_at} now=${now} /></td>
            ${me.admin ? html`<td><${Action} kind="danger" label=${"Force-release " + l.resource}
              confirmText=${`Force-release ${l.resource} held by ${l.session_id} (fence ${l.fence})? ` +
                            "The holder is fenced out and loses the lease."}
              run=${() => call("DELETE", `/locks/${encodeURIComponent(l.id)}?force=true&reason=` +
                               encodeURIComponent("force-released from the dashboard by " + me.sessionId))}
              >Force-release</${Action}></td>` : null}`} />`;
    }}</${Loaded}>
  </section>`;
}
