"""The orchestrator's endpoints for the client: one method per endpoint, for the CLI and ``coord agent``.

Nothing here is softfail-queued (``queue=False``): an assignment queued
later is not one queued now, and a host's calls are about the present.
Errors are :class:`~coordhub.client.outcomes.HubError` (the hub refused) and
:class:`~coordhub.client.outcomes.Unreachable`, as for every client call.
"""

from __future__ import annotations

from typing import Any

from coordhub.client.calls import MAX_ROWS
from coordhub.client.client import CoordClient

BASE = "/api/coord/orchestrator"


class OrchestratorClient:
    """Wraps a :class:`CoordClient` (which keeps its credential and connection) with the orchestrator's calls."""

    def __init__(self, client: CoordClient) -> None:
        self.client = client

    def _post(self, path: str, body: Any = None) -> Any:
        return self.client.call("POST", BASE + path, body=body, queue=False)

    # -- users --------------------------------------------------------------------------

    def assign(self, repo: str, issue: int, *, machine: str | None = None, **fields: Any) -> Any:
        """Queue an issue (``machine`` None: any capable machine); fields as ``POST /assignments`` takes them."""
        target: dict[str, Any] = {"machine": machine} if machine else {"any": True}
        return self._post("/assignments", {**target, "repo": repo, "issue": issue,
                                           **{k: v for k, v in fields.items() if v is not None}})

    def assignments(self, state: str | None = None, machine: str | None = None, repo: str | None = None,
                    limit: int | None = None) -> Any:
        """Assignments, newest first."""
        return self.client.call("GET", BASE + "/assignments",
                                params={"state": state, "machine": machine, "repo": repo, "limit": limit})

    def assignment(self, assignment_id: str) -> Any:
        """One assignment with its briefing and attempts."""
        return self.client.call("GET", f"{BASE}/assignments/{assignment_id}")

    def stop(self, assignment_id: str) -> Any:
        """Cancel a live assignment."""
        return self._post(f"/assignments/{assignment_id}/stop")

    def retry(self, assignment_id: str, model: str | None = None) -> Any:
        """Queue a failed, cancelled, stuck or needs-input assignment again."""
        return self._post(f"/assignments/{assignment_id}/retry", {"model": model} if model else None)

    def resume_stuck(self, assignment_id: str, guidance: str) -> Any:
        """Resume a stuck or needs-input worker's session with guidance."""
        return self._post(f"/assignments/{assignment_id}/resume-stuck", {"guidance": guidance})

    def test(self, assignment_id: str, verdict: str | None = None, reason: str | None = None) -> Any:
        """Run the smoke test now (``verdict`` None), or record ``passed``/``failed``; the stage run."""
        body = {"verdict": verdict, **({"reason": reason} if reason else {})} if verdict else None
        return self._post(f"/assignments/{assignment_id}/test", body)

    def review(self, assignment_id: str) -> Any:
        """Run a review of the branch now; the stage run."""
        return self._post(f"/assignments/{assignment_id}/review")

    def fix(self, assignment_id: str, guidance: str | None = None) -> Any:
        """Dispatch a fix worker with the last failure's findings; the assignment."""
        return self._post(f"/assignments/{assignment_id}/fix", {"guidance": guidance} if guidance else None)

    def accept(self, assignment_id: str) -> Any:
        """Pass the approval gate; the assignment."""
        return self._post(f"/assignments/{assignment_id}/accept")

    def stages(self, assignment_id: str) -> Any:
        """The assignment's stage, gates and stage runs."""
        return self.client.call("GET", f"{BASE}/assignments/{assignment_id}/stages")

    def summary(self) -> Any:
        """What ran, passed and merged since the last ``coord done``; cost per model and machine."""
        return self.client.call("GET", f"{BASE}/summary")

    def done(self) -> Any:
        """Close the session: ``{hooks, summary}``."""
        return self._post("/done")

    def log(self, assignment_id: str, offset: int = 0) -> Any:
        """The relayed log from a character offset: ``{text, offset, size, truncated, state}``."""
        return self.client.call("GET", f"{BASE}/assignments/{assignment_id}/log", params={"offset": offset})

    def status(self, machine: str | None = None) -> Any:
        """Machines, queue, assignments, pause and costs."""
        return self.client.call("GET", BASE + "/status", params={"machine": machine})

    def config(self) -> Any:
        """The hub's active configuration and its version."""
        return self.client.call("GET", BASE + "/config")

    def apply_config(self, config: dict[str, Any]) -> Any:
        """Make ``config`` (coordinator.yml parsed to JSON) the hub's active configuration (admin)."""
        return self.client.call("PUT", BASE + "/config", body=config, queue=False)

    def unpause(self) -> Any:
        """Lift the fleet-wide dispatch pause (admin): ``{was}``, the pause lifted or None."""
        return self.client.call("DELETE", BASE + "/pause", queue=False)

    def reconcile(self) -> Any:
        """Run a reconciliation pass now."""
        return self._post("/reconcile")

    def merges(self, repo: str | None = None) -> Any:
        """The merge queue: ``{queue, fixing, needs_input, recent}``."""
        return self.client.call("GET", BASE + "/merges", params={"repo": repo})

    def merge(self, ids: list[str] | None = None, *, repo: str | None = None, method: str | None = None,
              order: list[str] | None = None, dry_run: bool = False) -> Any:
        """Enter or re-queue ``ids``, reorder, or (``dry_run``) only look; what was done and the queue."""
        body = {"ids": ids or [], "repo": repo, "method": method, "order": order or [], "dry_run": dry_run}
        return self._post("/merges", {k: v for k, v in body.items() if v is not None})

    def merge_entry(self, entry_id: str) -> Any:
        """One merge entry with its reason and evidence."""
        return self.client.call("GET", f"{BASE}/merges/{entry_id}")

    def pr(self, assignment_id: str, review: bool = True) -> Any:
        """Queue opening the PR of a done assignment (a host with capability ``github`` opens it)."""
        return self._post(f"/assignments/{assignment_id}/pr", {"review": review})

    def notify(self) -> Any:
        """Make the audit-trail posts the new events call for now: ``{made, pending}``."""
        return self._post("/notify")

    def trail(self, assignment_id: str) -> Any:
        """The audit trail of one assignment: ``{posts}``."""
        return self.client.call("GET", f"{BASE}/assignments/{assignment_id}/trail")

    def cancel_merge(self, entry_id: str) -> Any:
        """Take an entry out of the merge queue."""
        return self._post(f"/merges/{entry_id}/cancel")

    def propose(self, proposals: list[dict[str, Any]], dry_run: bool = False) -> Any:
        """Store a plan's proposals (``dry_run``: only check them); ``{plan_id, proposals, superseded}``."""
        return self._post("/proposals", {"proposals": proposals, "dry_run": dry_run})

    def proposals(self, state: str | None = None, repo: str | None = None, most: int = MAX_ROWS) -> Any:
        """Proposals, newest first: every page of them up to ``most`` (the hub answers about 4 MiB a page)."""
        return self.client.pages(BASE + "/proposals", most, state=state, repo=repo)

    def proposal(self, proposal_id: int) -> Any:
        """One proposal."""
        return self.client.call("GET", f"{BASE}/proposals/{proposal_id}")

    def approve(self, ids: list[int], *, auto_pull: bool = False, skip_freshness: bool = False,
                dry_run: bool = False) -> Any:
        """Queue assign proposals through the assign path (``dry_run``: only check); ``{results, dry_run}``."""
        return self._post("/proposals/approve", {"ids": ids, "auto_pull": auto_pull, "skip_freshness": skip_freshness,
                                                 "dry_run": dry_run})

    def record_split(self, proposal_id: int, created: list[dict[str, Any]], done: bool = False) -> Any:
        """Record sub-issues created for a split proposal; ``done`` closes it."""
        return self._post(f"/proposals/{proposal_id}/split", {"created": created, "done": done})

    # -- hosts (coord agent) ---------------------------------------------------------------

    def register(self, machine: str, *, slots: int, capabilities: list[str] | None = None,
                 repos: dict[str, str] | None = None, agent_version: str | None = None) -> Any:
        """Register this machine's host: a new incarnation; answers timing and the active config."""
        return self._post("/hosts/register", {"machine": machine, "slots": slots,
                                              "capabilities": capabilities or [], "repos": repos or {},
                                              "agent_version": agent_version})

    def heartbeat(self, machine: str, incarnation: int, *, free_slots: int, running: list[str]) -> Any:
        """Heartbeat; the answer says what to cancel and whether to pause."""
        return self._post("/hosts/heartbeat", {"machine": machine, "host_incarnation": incarnation,
                                               "free_slots": free_slots, "running": running})

    def next(self, machine: str, incarnation: int, wait: float = 0.0) -> Any:
        """Long-poll for the next assignment (``{"assignment": … | None}``).

        The client's timeout must exceed ``wait``: give the ``CoordClient`` a
        timeout of at least ``wait + 10`` seconds.
        """
        return self._post("/hosts/next", {"machine": machine, "host_incarnation": incarnation, "wait": wait})

    def report(self, assignment_id: str, attempt: int, host_incarnation: int | None = None, **fields: Any) -> Any:
        """Report on an attempt as host incarnation ``host_incarnation`` (what ``register`` answered; a replaced one
        is refused 409 ``stale_incarnation``); fields: state, reason, telemetry, worktree, branch, pushed,
        wip_commit. Without ``host_incarnation`` (deprecated, as callers before it did) none is sent: the hub
        takes the machine's current incarnation and adopts nothing."""
        body: dict[str, Any] = {"attempt": attempt}
        if host_incarnation is not None:
            body["host_incarnation"] = host_incarnation
        return self._post(f"/assignments/{assignment_id}/report",
                          {**body, **{k: v for k, v in fields.items() if v is not None}})

    def append_log(self, assignment_id: str, attempt: int, offset: int, text: str) -> Any:
        """Append filtered log text at a character offset; answers ``{size}``."""
        return self._post(f"/assignments/{assignment_id}/log", {"attempt": attempt, "offset": offset, "text": text})
