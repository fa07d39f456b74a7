"""The orchestrator's part of ``coord status``: machines and slots, the queue, assignments, costs, a pause and
the freshness of dependency repos."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from coordhub.cli.output import console, heading, table
from coordhub.cli.views import shown_time
from coordhub.client import CoordClient, HubError
from coordhub.client.orchestrator import OrchestratorClient
from coordhub.hooks.leases import when
from coordhub.hooks.untrusted import one_line


def orchestrator_view(c: CoordClient, machine: str | None) -> dict[str, Any] | None:
    """The hub's orchestrator status, or None from a hub that has no orchestrator (an older one: 404)."""
    try:
        view: dict[str, Any] = OrchestratorClient(c).status(machine)
    except HubError as err:
        if err.status == 404:
            return None
        raise
    return view


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def freshness_rows(assignments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per machine and dependency repo, the newest note its freshness checks left: ``{machine, repo, note,
    assignment, checked}`` (``checked``: when that attempt started), in machine and repo order; ``repo`` is ``-``
    for a note naming none (an approval's ``--skip-freshness``). ``assignments`` as ``GET …/status`` lists them."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for a in sorted(assignments, key=lambda a: a.get("started_at") or ""):
        for note in (a.get("freshness") or {}).get("notes") or []:
            repo, sep, said = str(note).partition(": ")
            repo, said = (repo, said) if sep else ("-", str(note))
            machine = a.get("ran_on") or "?"
            newest[(machine, repo)] = {"machine": machine, "repo": repo, "note": said, "assignment": a["id"],
                                       "checked": a.get("started_at")}
    return [newest[k] for k in sorted(newest)]


def assignment_note(a: dict[str, Any]) -> str | None:
    """The status column of an assignment in ``coord status``: for one that ended other than ``done`` (failed,
    cancelled, stuck, needs input) why it ended (``reason``), the thing to act on; for a done one where its
    pipeline stands (``stage_reason``); else the worker's last ``STATUS:`` line, the reason, or the last tool.

    Before, an ended assignment showed its worker's last ``STATUS:`` line ("reading the issue and the code" on one
    that failed ``host_stopped``, or that ``coord stop`` cancelled), and the reason only when there was none."""
    if a["state"] in ("failed", "cancelled", "stuck", "needs_input") and a["reason"]:
        return str(a["reason"])
    first = a.get("stage_reason") if a["state"] == "done" else None
    note = first or a["status_line"] or a["reason"] or a["last_tool"]
    return None if note is None else str(note)


def queue_wait(a: dict[str, Any], stagger: dict[str, Any] | None) -> dict[str, Any]:
    """The "not before" and "why" columns of a queued assignment in ``coord status``: ``{not_before, why}``.

    ``stagger`` is the hub's ``{until, seconds}`` while ``concurrency.stagger_seconds`` since the last dispatch
    holds every queued assignment back (``GET …/status``). A backoff ending later (a re-queued one's
    ``not_before``) is what it waits for, with why it was re-queued; else the stagger, when it holds; else the
    re-queue reason, if any. Before, a queue waiting out the stagger with a free slot showed both columns blank."""
    requeued = f"re-queued: {a['reason']}" if a.get("reason") else None
    backoff = a.get("not_before")
    if stagger and (backoff is None or _ts(backoff) < _ts(stagger["until"])):
        why = f"stagger: {stagger['seconds']:g} s between dispatches (concurrency.stagger_seconds)"
        return {"not_before": stagger["until"], "why": why + (f"; {requeued}" if requeued else "")}
    return {"not_before": backoff, "why": requeued}


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def show_orchestrator(view: dict[str, Any] | None, freshness: bool = False) -> None:
    """Print the orchestrator's sections (nothing before a coordinator.yml is applied); with ``freshness``, also
    what each machine's freshness checks last found (seed 003's ``status --freshness``)."""
    if not view or not view.get("configured"):
        return
    if view.get("paused"):
        p = view["paused"]
        console.print(one_line(f"DISPATCH PAUSED until {when(p['paused_until'])}: {p['reason']}"), style="bold yellow")
    heading("machines")
    # busy_slots: workers and the smoke tests and reviews that share their slots (a machine running a test showed
    # 0/2 beside the test's row in "smoke tests and reviews"); a hub from before it sent only workers
    rows = [{**m, "slots": f"{m.get('busy_slots', m['running'])}/{m['slots']}",
             "heartbeat": _age(m["seconds_since_heartbeat"]),
             "cost": f"${m['cost_today_usd']:.2f}"} for m in view["machines"]]
    table(rows, [("machine", "machine"), ("state", "state"), ("slots", "running/slots"), ("heartbeat", "heartbeat"),
                 ("cost", "cost today")], "  none")
    for m in view["machines"]:
        for problem in m.get("problems") or []:
            console.print(one_line(f"  {m['machine']}: {problem}"), style="bold red")
    heading("queue")
    waits = [queue_wait(a, view.get("stagger")) for a in view["queue"]]
    queue = [{**a, "what": f"{a['repo']} #{a['issue']}", "where": a["machine"] or "any", **wait,
              "not_before": shown_time(wait["not_before"])} for a, wait in zip(view["queue"], waits, strict=True)]
    table(queue, [("position", "#"), ("id", "id"), ("what", "issue"), ("where", "machine"), ("model", "model"),
                  ("not_before", "not before"), ("why", "why")], "  empty")
    if view.get("stage_runs"):
        heading("smoke tests and reviews")
        runs = [{**r, "where": r["machine"] or "waiting", "needs": ", ".join(r["requires"]) or "-"}
                for r in view["stage_runs"]]
        table(runs, [("id", "id"), ("stage", "stage"), ("assignment_id", "assignment"), ("state", "state"),
                     ("where", "machine"), ("needs", "needs"), ("attempt", "try")], "  none")
    if view.get("merges"):
        heading("merge queue")
        merges = [{**e, "what": f"{e['repo']}#{e['issue']}", "into": f"{e['repo']} → {e['target']}",
                   "pos": str(e["position"]) if e.get("position") else "-",
                   "note": f"on {e['machine']}" if e["state"] == "running" else e.get("reason")}
                  for e in view["merges"]]
        table(merges, [("into", "queue"), ("pos", "#"), ("id", "entry"), ("what", "issue"), ("branch", "branch"),
                       ("state", "state"), ("note", "note")], "  empty")
    heading("assignments")
    shown = [{**a, "what": f"{a['repo']} #{a['issue']}", "where": a["ran_on"] or a["machine"] or "any",
              "cost": f"${a['total_cost_usd']:.2f}", "stage": a.get("stage") or "work",
              "note": assignment_note(a)}
             for a in view["assignments"]]
    table(shown, [("id", "id"), ("state", "state"), ("stage", "stage"), ("attempt", "try"), ("what", "issue"),
                  ("where", "machine"), ("model", "model"), ("cost", "cost"), ("note", "status")], "  none")
    if freshness:
        # seed 003 asked each agent and GitHub when asked; here a machine's host checks the repos a worker depends
        # on just before it starts (the hub never reaches into a machine), so this is the newest such check
        heading("freshness of dependency repos (each machine's last check, made as a worker started)")
        checks = [{**r, "checked": shown_time(r["checked"])} for r in freshness_rows(view["assignments"])]
        table(checks, [("machine", "machine"), ("repo", "repo"), ("note", "freshness"),
                       ("assignment", "checked for"), ("checked", "at")],
              "  no check yet: a repo's depends_on are checked on its machine when a worker starts")
    t = view["totals"]
    today = list(t["by_day"].items())[-1:] if t["by_day"] else []
    merging = f"; merge queue: {len(view['merges'])}" if view.get("merges") else ""
    console.print(f"workers running: {t['running']}, queued: {t['queued']}{merging}; cost: ${t['cost_usd']:.2f} in all"
                  + (f", ${today[0][1]:.2f} on {today[0][0]}" if today else ""))
