"""``coord conv sync`` and ``coord conv import``: the org-file inbox of seed 004's agents, kept in step with the hub.

Agents that poll files keep working: ``sync`` writes the turns addressed to
this machine's projects into their ``inbox/from-agents/`` folders as seed-004
message files, and ``import`` sends such files to the hub (docs/conversations.md).
The commands are registered on ``coord conv`` by :mod:`coordhub.cli.conversations`.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import typer

from coordhub.cli import exits
from coordhub.cli.common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    JSON_OPT,
    call,
    client,
    fail,
    hub_envelope,
    show,
)
from coordhub.cli.output import console, print_json
from coordhub.cli.signedturns import me
from coordhub.cli.views import seq_text
from coordhub.client import CoordClient, HubError, Unreachable
from coordhub.hooks.untrusted import one_line


def written_text(written: int) -> str:
    """``1 turn written``, ``N turns written``: what ``coord conv sync`` says it wrote."""
    return f"{written} turn{'' if written == 1 else 's'} written"


def sync(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "--follow", help="Keep going: write new turns as they arrive (Ctrl-C to "
                                                        "stop)."),
    inbox_root: Path | None = typer.Option(None, "--inbox-root", help="Write to DIR/<project>/inbox/from-agents "
                                           "instead of ~/projects/… (a project's inbox_path in "
                                           "~/.config/coordhub/conversations.toml still wins)."),
    from_start: bool = typer.Option(False, "--from-start", help="Ignore the saved cursor: look at every turn "
                                                                "again (files already there are left alone)."),
    poll: float = typer.Option(30.0, "--poll", min=0.1, help="With --follow: also check every this many seconds."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write the turns addressed to this machine's projects into their inbox folders as seed-004 files.

    Each turn becomes inbox/from-agents/<file_name> (its .asc first when signed), so agents that poll the folder and
    run cross-agent-recv keep working. A file already there is never overwritten: an identical one is left alone,
    a different one makes the turn take another name. A cursor per hub and machine (~/.local/state/coordhub/
    conv-sync/) makes the next run read only newer turns. Folders: see docs/conversations.md.
    """
    from coordhub.compat import orgsync
    from coordhub.compat.inboxes import Inboxes

    try:
        inboxes = Inboxes(root=inbox_root)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with client(ctx) as c:
        try:
            declared = c.profile().get("machine")
            machine = declared or me(c)[0]
            if declared is None:  # the hub serves a session the turns of its own declared machine only
                c.set_profile(machine=machine)
            path = orgsync.cursor_file(c.settings.url, machine, inboxes)
            after = 0 if from_start else orgsync.load_cursor(path)

            def progress(t: orgsync.Tally) -> None:
                # following, each page is said as it is written; once, the summary below says it (it was said
                # twice in a terminal, on stderr and stdout: review, seed-004 user run)
                if follow:
                    typer.echo(written_text(t.written) + (f" ({t.present} already there)" if t.present else ""))

            syncer = orgsync.Syncer(lambda a, n: c.turns(machine, a, n), machine, inboxes, path, c.settings.url,
                                    after, progress)
            if follow:
                _follow(ctx, syncer, poll)
            tally = syncer.run_once()
        except HubError as err:
            fail(exits.refusal(err.message, err.status, err.code), exits.exit_code(err.status), hub_envelope(err))
        except Unreachable as err:
            fail(f"hub at {c.settings.url} is unreachable: {err}", EXIT_UNREACHABLE)
        except OSError as err:
            fail(f"cannot write the inbox: {err}", EXIT_REFUSED)
    show(tally.as_json(), as_json, lambda t: console.print(
        written_text(t["written"]) + (f", {t['present']} already there" if t["present"] else "") +
        (f", {t['renamed']} under another name (the usual one held a different file)" if t["renamed"] else "")))


def _follow(ctx: typer.Context, syncer: Any, poll: float) -> None:
    """Run the syncer forever, woken by the hub's conversation events (on a second client) and every ``poll`` s.

    The stream opens while the first sync runs: a turn sent between that sync's read and the hub accepting the
    stream would raise no event here, and wait for the poll. So each time the stream is accepted the syncer
    runs once more: every turn before it is read by that run, every turn after it wakes the syncer.
    """
    wakeups: queue.Queue[object] = queue.Queue()

    def listen() -> None:
        with client(ctx) as events:
            try:
                for _ in events.events(kinds="conversation.turn", on_connect=lambda: wakeups.put(None)):
                    wakeups.put(None)
            except (HubError, Unreachable):  # the poll keeps the sync going
                return

    threading.Thread(target=listen, daemon=True, name="conv-sync-events").start()
    try:
        syncer.follow(wakeups, poll)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def import_(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A message file, or a folder of them (e.g. a project's "
                                          "inbox/from-agents/)."),
    to: str | None = typer.Option(None, "--to", help="Import to this address (default: this machine's address of "
                                                     "the folder's project)."),
    unsigned: bool = typer.Option(False, "--unsigned", help="Leave the .asc signatures out (their keys are not "
                                                            "registered for you)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Send seed-004 message files to the hub and report a decision per file (process, dedup, query, reject, error).

    Files are checked first: a file that is not a valid message is an error and is not sent. Importing the same
    files again answers dedup. Exit 1 when any file was an error.
    """
    from coordhub.compat import orgimport
    from coordhub.compat.inboxes import Inboxes

    try:
        paths = orgimport.files_in(path)
        inboxes = Inboxes()
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)

    def go(c: CoordClient) -> Any:
        machine, project = me(c)
        return orgimport.import_files(
            paths, lambda dest, text, sig: c.send_turn(dest, text, signature=sig, queue=False, from_machine=machine,
                                                       from_project=project),
            lambda p: orgimport.destination(p, inboxes, machine, project, to), unsigned,
            orgimport.HubTurns(c.conversation_turns))

    outcomes = call(ctx, go)
    counts = {d: sum(o.decision == d for o in outcomes) for d in orgimport.DECISIONS}
    if as_json:
        print_json({"files": [o.as_json() for o in outcomes], "counts": counts})
    else:
        for o in outcomes:
            where = f" (turn {o.turn_id}: {o.conversation_id} {seq_text(o.sequence)} → {o.to})" if o.turn_id else ""
            console.print(one_line(f"{o.file}: {o.decision}{where}" + (f" — {o.reason}" if o.reason else "")))
        console.print(f"{len(outcomes)} file(s): " + ", ".join(f"{n} {d}" for d, n in counts.items() if n))
    if counts["error"]:
        raise typer.Exit(EXIT_REFUSED)
