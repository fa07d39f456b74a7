"""``cross-agent-watch [--projects-glob G] [--log PATH] [--quiet] [--no-notify]``: notify on new turns.

Seed 004 ran ``inotifywait`` on every ``inbox/from-agents/`` folder. Here the
hub's event stream says when a turn arrives (kind ``conversation.turn``,
followed with resume after a dropped connection, so nothing is missed): each
accepted turn addressed to a project on this machine (matching
``--projects-glob`` by its inbox folder, see ``cross-agent-status``) is logged
as the seed logged it, ``<ISO-8601>\\t<project>\\t<file name>`` (the name
``coord conv sync`` gives the file), echoed unless ``--quiet``, and raised as a
desktop notification with ``notify-send`` where it exists (unless
``--no-notify``). During a halt over this machine or the project (or when
the hub cannot say) the line ends ``\\t(suppressed by HALT)`` and nothing is
notified. Projects declared after start-up are picked up at once.

Exits 1, as the seed's script did, for an unknown flag or argument
(``unknown flag: X``; argparse's 2 was not the seed's) and when
``--projects-glob`` matches nothing at start-up: no existing folder and no
inbox folder of a project of this machine's addresses at the hub (``glob
resolved 0 directories: G``; it waited forever for turns it could never see).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from coordhub.cli.entry import quiet_on_closed_stdout
from coordhub.compat.crossagent.common import Me, connect, die, halt_or_unknown

DEFAULT_LOG = "~/.local/state/cross-agent-comms/watch.log"  # the seed's, so existing log readers keep working


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as the seed's bash script's did (argparse's own exit is 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        die(f"cross-agent-watch: {message}", 1)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cross-agent-watch",
                                description="Log and notify new cross-agent messages for this machine's projects.")
    p.add_argument("--projects-glob", default=None, help="Only projects whose inbox folder matches this glob")
    p.add_argument("--log", default=DEFAULT_LOG, help=f"Log file (default: {DEFAULT_LOG}; /dev/null for none)")
    p.add_argument("--quiet", action="store_true", help="No stdout output")
    p.add_argument("--no-notify", action="store_true", help="No desktop notifications")
    return p


class Watcher:
    """Turns events into log lines and notifications."""

    def __init__(self, args: argparse.Namespace, me: Me, log: Path) -> None:
        from coordhub.compat.inboxes import Inboxes

        self.args = args
        self.me = me
        self.log = log
        self.inboxes = Inboxes()
        self.notify = None if args.no_notify else shutil.which("notify-send")

    def wanted(self, payload: dict[str, Any]) -> str | None:
        """The project of an accepted turn for this machine that passes the glob; else None."""
        machine, _, project = str(payload.get("to", "")).partition(".")
        if machine != self.me.machine or not project or payload.get("decision", "process") != "process":
            return None
        if self.args.projects_glob:
            from coordhub.compat.crossagent.status import glob_match

            if not glob_match(self.inboxes.path_for(project), self.args.projects_glob):
                return None
        return project

    def file_name(self, payload: dict[str, Any]) -> str:
        """The turn's file name: the event carries it; else the hub is asked."""
        if isinstance(payload.get("file_name"), str):
            return str(payload["file_name"])
        from coordhub.client import HubError, Unreachable

        try:
            return str(self.me.client.turn(int(payload["id"]))["file_name"])
        except (HubError, Unreachable, KeyError, TypeError, ValueError):
            return f"turn-{payload.get('id')}.org"

    def handle(self, event: dict[str, Any]) -> None:
        payload = event.get("payload") or {}
        project = self.wanted(payload)
        if project is None:
            return
        name = self.file_name(payload)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found, unknown = halt_or_unknown(self.me.client, self.me.machine, project)
        halted = bool(found or unknown)
        suffix = "\t(suppressed by HALT)" if halted else ""
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"{stamp}\t{project}\t{name}{suffix}\n")
        if not self.args.quiet:
            print(f"[{stamp}] {project}: {name}" + (" (suppressed by HALT)" if halted else ""), flush=True)
        if self.notify and not halted:
            try:
                subprocess.run([self.notify, "Cross-agent message", f"{project}: {name}"], capture_output=True,
                               timeout=5, check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass


def resolves(pattern: str, watcher: Watcher) -> bool:
    """Whether ``--projects-glob`` ``pattern`` matches an existing folder, or the inbox folder of a project at one of
    this machine's addresses at the hub (whose folder ``coord conv sync`` has not made yet).

    Raises what the client raises (``HubError``, ``Unreachable``)."""
    if any(os.path.isdir(d) for d in glob.glob(os.path.expanduser(pattern))):
        return True
    from coordhub.compat.crossagent.status import glob_match

    return any(a.get("machine") == watcher.me.machine and
               glob_match(watcher.inboxes.path_for(str(a.get("project"))), pattern)
               for a in watcher.me.client.addresses() if isinstance(a, dict))


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (runs until interrupted)."""
    args, extra = parser().parse_known_args(argv)
    if extra:  # the seed's words for anything it did not know, flag or not
        die(f"unknown flag: {extra[0]}", 1)
    log = Path(args.log).expanduser()
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        die(f"cross-agent-watch: cannot create the log folder: {exc}", 1)
    try:  # said now, not as a traceback at the first turn (a folder, a file it may not write)
        with open(log, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        die(f"cross-agent-watch: cannot append to the log {log}: {exc.strerror or exc}", 1)
    with connect() as client:
        from coordhub.client import HubError, Unreachable

        me = Me(client)
        try:
            watcher = Watcher(args, me, log)
            me.machine  # noqa: B018 - settle the address now (it may ask the hub), not at the first event
            if args.projects_glob and not resolves(args.projects_glob, watcher):
                die(f"cross-agent-watch: glob resolved 0 directories: {args.projects_glob}", 1)
        except ValueError as exc:
            die(str(exc), 1)
        except (HubError, Unreachable) as exc:
            die(f"cross-agent-watch: {exc}", 1)
        said: list[bool] = []

        def connected() -> None:  # said once the hub streams to us, so a turn sent after it is never missed
            if not args.quiet and not said:
                print(f"cross-agent-watch: following turns for {me.machine} at {client.settings.url}; log: {log}",
                      flush=True)
            said.append(True)

        try:
            for event in client.events(kinds="conversation.turn", on_connect=connected):
                watcher.handle(event)
        except KeyboardInterrupt:
            return 0
        except HubError as exc:
            die(f"cross-agent-watch: the hub refused the event stream: {exc.message}", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
