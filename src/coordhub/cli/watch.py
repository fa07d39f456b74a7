"""``coord watch`` and ``coord presence``: the fleet, live."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import typer

from coordhub.cli.common import EXIT_UNREACHABLE, EXIT_USAGE, JSON_OPT, call, client, fail, hub_envelope, show
from coordhub.cli.exits import EXIT_TIMEOUT
from coordhub.cli.output import console, table, verbatim
from coordhub.cli.views import shown_time
from coordhub.client import HubError, Unreachable
from coordhub.core.vocab import PresenceState
from coordhub.hooks.untrusted import one_line

NOTIFY_KINDS = ("message.sent", "message.redelivered", "message.dead_lettered", "halt.set")


def describe(event: dict[str, Any]) -> str:
    """One readable line for an event (sender-written fields escaped: :func:`coordhub.hooks.untrusted.one_line`)."""
    p = event.get("payload", {})
    who = event.get("session_id") or "hub"
    message = p.get("origin_id") or event.get("subject_id")  # an imported seed-002 message: the id its users know
    detail = {
        "message.sent": lambda: f"{who} → {p.get('to_session')}: {p.get('subject')}",
        "message.read": lambda: f"{who} read {message}",
        "message.acked": lambda: f"{who} acked {message} from {p.get('from_session')}",
        "message.redelivered": lambda: f"{event.get('target')} redelivered: {p.get('subject')} "
                                       f"(delivery {p.get('deliveries')}, not acked)",
        "message.dead_lettered": lambda: f"to {p.get('recipient')} never acked: {p.get('subject')}",
        "todo.added": lambda: f"{who} added todo {event.get('subject_id')}: {p.get('text')}",
        "todo.done": lambda: f"{who} did todo {event.get('subject_id')}",
        "component.set": lambda: f"{who} set {event.get('subject_id')} {p.get('state')}"
                                 + (f" {p['version']}" if p.get("version") else ""),
        "presence.registered": lambda: f"{who} started (incarnation {p.get('incarnation')}"
                                       + (f", {p['client']})" if p.get("client") else ")"),
        "presence.deregistered": lambda: f"{who} ended (incarnation {p.get('incarnation')})",
        "token.created": lambda: f"{who} created a{'n admin' if p.get('admin') else ''} token for {p.get('name')}",
        "token.revoked": lambda: f"{who} revoked {p.get('count')} token(s) of {p.get('name')}",
        "lease.granted": lambda: f"{who} leased {p.get('resource')} (fence {p.get('fence')})",
        "lease.renewed": lambda: f"{who} renewed lease {event.get('subject_id')} (fence {p.get('fence')})",
        "lease.released": lambda: f"{who} released {p.get('resource')}",
        "lease.expired": lambda: f"lease of {who} on {p.get('resource')} expired",
        "lease.revoked": lambda: f"lease of {who} on {p.get('resource')} force-released by {p.get('by')}",
        "halt.set": lambda: f"{_halted(p.get('scope'))} by {who}: {p.get('reason')}"
                            + (f" (said anew; was: {p.get('previous_reason')})" if p.get("refreshed") else ""),
        "halt.lifted": lambda: f"{p.get('scope') or 'fleet'} resumed by {who}",
        "session.paused": lambda: f"{p.get('paused_session')} paused (active under the halt of {p.get('scope')}); "
                                  "it writes again after `coord engage`",
        "session.engaged": lambda: f"{p.get('engaged_session')} engaged by {who}",
        "assignment.queued": lambda: _assignment(p, f"queued: {p['reason']}" if p.get("reason") else "queued"),
        "assignment.dispatched": lambda: _assignment(p, f"dispatched to {p.get('machine')} "
                                                        f"(attempt {p.get('attempt')})"),
        "assignment.running": lambda: _assignment(p, f"running on {p.get('machine')}"),
        "assignment.done": lambda: _assignment(p, f"done on {p.get('machine')}, ${p.get('cost_usd') or 0:.2f}"),
        "assignment.failed": lambda: _assignment(p, f"failed: {p.get('reason')}"),
        "assignment.stuck": lambda: _assignment(p, f"stuck: {p.get('reason')}"),
        "assignment.needs_input": lambda: _assignment(p, f"needs input: {p.get('reason')}"),
        "assignment.cancelled": lambda: _assignment(p, f"cancelled: {p.get('reason')}"),
        "import.applied": lambda: f"{who} imported from {p.get('source')}: {p.get('imported')} imported, "
                                  f"{p.get('already')} there already, {p.get('skipped')} left out",
        "host.stale": lambda: f"host {p.get('machine')} stale (no heartbeat): its work is re-queued",
        "host.stopped": lambda: f"host {p.get('machine')} stopped (it said so, then went silent): "
                                "what it still ran is re-queued",
        "host.stopping": lambda: f"host {p.get('machine')} stopping: it takes no more work",
        "host.registered": lambda: f"host {p.get('machine')} registered (incarnation {p.get('incarnation')}, "
                                   f"{p.get('slots')} slots)",
    }.get(event["kind"], lambda: _pipeline(event["kind"], p) or f"{who} {event.get('subject_id') or ''}".rstrip())()
    project = f"[{event['project_key']}] " if event.get("project_key") else ""
    return one_line(f"{shown_time(event['created_at'])}  #{event['id']}  {event['kind']:<22} {project}{detail}")


def _assignment(p: dict[str, Any], what: str) -> str:
    return f"{p.get('assignment_id')} {p.get('repo')} #{p.get('issue')} [{p.get('model')}] {what}"


def _pipeline(kind: str, p: dict[str, Any]) -> str | None:
    """A stage run's or merge entry's event (``stage_run.<state>``, ``merge.<state>``) with its reason, or None for
    another kind. They showed only the subject's id, so a run or entry queued again after its host stopped, or
    one that failed, said nothing of why in ``coord watch``."""
    why = f": {p['reason']}" if p.get("reason") else ""
    where = f" on {p['machine']}" if p.get("machine") else ""
    if kind.startswith("stage_run."):
        return f"{p.get('stage')} run {p.get('run_id')} of {p.get('assignment_id')} {p.get('state')}{where}{why}"
    if kind.startswith("merge.") and p.get("entry_id"):
        merged = f" as {str(p['merged_sha'])[:12]}" if p.get("merged_sha") else ""
        return (f"merge entry {p['entry_id']} {p.get('repo')} #{p.get('issue')} {p.get('branch')} → "
                f"{p.get('target')} {p.get('state')}{merged}{why}")
    return None


def _halted(scope: Any) -> str:
    return "FLEET HALTED" if scope in (None, "fleet") else f"HALTED {scope}"


def _desktop(event: dict[str, Any]) -> None:
    if event["kind"] not in NOTIFY_KINDS:
        return
    p = event.get("payload", {})
    title = "coord: " + one_line(p.get("subject") or p.get("reason") or event["kind"])
    subprocess.run(["notify-send", title, describe(event)], check=False, timeout=5)


def watch(
    ctx: typer.Context,
    assignment_id: str | None = typer.Argument(None, metavar="[ID]", help="An assignment: follow its worker's "
                                                                          "filtered log until it ends (seed 003 "
                                                                          "`watch`; `coord log ID -f`)."),
    project: str | None = typer.Option(None, "--project", help="Only events of this project."),
    kinds: str | None = typer.Option(None, "--kinds", help="Comma-separated kind prefixes, e.g. message.,lease."),
    after: int | None = typer.Option(None, "--after", help="Start after this event id (default: from now)."),
    notify: bool = typer.Option(False, "--notify", help="Also raise a desktop notification (notify-send) for "
                                                         "messages and halts."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: each event; with an ID, each "
                                                       "line of its log as `coord log ID --json` prints it."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, max=60.0, help="With an ID: seconds between "
                                                                              "checks of its log."),
    timeout: float = typer.Option(1800.0, "--timeout", min=0.0, help="With an ID: give up after this many "
                                                                     "seconds (exit 124, as `coord wait`; exit 3 "
                                                                     "is an unreachable hub)."),
    every_event: bool = typer.Option(False, "--all", help="Seed 003's flag (every stream-json event, the "
                                                          "worker's prose included): refused, exit 2, naming what "
                                                          "shows it here (docs/cli.md)."),
) -> None:
    """Tail the hub's events live (Ctrl-C to stop); reconnects and resumes without gaps. With an assignment id,
    follow that worker's filtered log instead (\\[init], \\[tool], \\[stuck], \\[result] …)."""
    # \\[: help is Rich markup (cli/output.py help_text), where a bare [init] is a style tag and is dropped
    if every_event:
        # Seed 003's --all rendered every event of the raw stream, assistant text and tool results included. The
        # hub holds only the log the worker's host filtered from it, so nothing here can show the rest: say where
        # it is rather than print less than was asked for with exit 0.
        fail("--all (seed 003: every stream-json event, the worker's own text and tool results included) cannot be "
             "shown through the hub, which keeps only the filtered log its machine relays. `coord watch ID` prints "
             "all of that log ([init], [tool], [tool-error], [status], [stuck], [result] …: more than seed 003's "
             "watch without --all); the unfiltered stream-json stays on the machine that ran the worker, in "
             "<coord agent --state-dir>/workers/ID/stream.ATTEMPT.jsonl (docs/agent.md)", EXIT_USAGE)
    if assignment_id is not None:
        _follow_worker(ctx, assignment_id, interval, timeout, as_json)
    if notify and not shutil.which("notify-send"):
        typer.echo("coord: warning: --notify needs notify-send (libnotify), which is not on PATH; "
                   "events are printed without desktop notifications", err=True)
        notify = False
    with client(ctx) as c:
        try:
            for event in c.events(after=after, kinds=kinds, project_key=project):
                if as_json:
                    verbatim(json.dumps(event, ensure_ascii=False))
                else:
                    console.print(describe(event))
                if notify:
                    _desktop(event)
        except HubError as err:
            fail(f"{err.message} [{err.status} {err.code}]", 1, hub_envelope(err))
        except Unreachable as err:
            fail(str(err), EXIT_UNREACHABLE)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None


def _follow_worker(ctx: typer.Context, assignment_id: str, interval: float, timeout: float, as_json: bool) -> None:
    """Follow an assignment's filtered log until it ends (``as_json``: one JSON object per line, as ``coord log
    --json``), then exit as ``coord wait`` does: 0 when its worker's run succeeded (``done``), 1 when it did not
    (failed, cancelled, stuck, needs input), :data:`~coordhub.cli.exits.EXIT_TIMEOUT` (124) when ``timeout``
    seconds passed first; a hub that cannot be asked is 3 (:func:`~coordhub.cli.common.call`), as for every read.

    Seed 003 names no exit code for its ``watch``; 3 for both a timeout and an unreachable hub left a script unable
    to tell "still running" from "could not ask"."""
    from coordhub.cli.orchestrator import follow_log

    state = follow_log(ctx, assignment_id, follow=True, interval=interval, deadline=time.monotonic() + timeout,
                       as_json=as_json)
    if state is None:
        fail(f"timed out after {timeout:g}s waiting for {assignment_id} to end (`coord wait {assignment_id}` waits "
             "on; `coord watch ID --timeout S` waits longer)", EXIT_TIMEOUT)
    raise typer.Exit(0 if state == "done" else 1)


def presence(
    ctx: typer.Context,
    state: PresenceState | None = typer.Option(None, "--state", help="Only this state."),
    as_json: bool = JSON_OPT,
) -> None:
    """Sessions, whether they are online (active, idle, stale, offline) and whether a resume paused them."""
    rows = call(ctx, lambda c: c.presence(state))
    if rows.more:
        typer.echo(f"coord: more sessions follow these {len(rows)}: narrow the list with --state", err=True)
    show(rows, as_json, lambda r: table(r, [("session_id", "session"), ("state", "state"), ("paused", "paused"),
                                            ("incarnation", "inc"), ("last_heartbeat", "last heartbeat"),
                                            ("client", "client"), ("cwd", "cwd")], "no sessions"))
