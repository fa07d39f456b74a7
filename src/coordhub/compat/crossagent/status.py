"""``cross-agent-status [--json] [--projects-glob G]``: pending turns per project on this machine, from the hub.

The hub answers what the seed computed by parsing every inbox file
(``GET …/conversations/status``): per project the pending count (turns not yet
followed by a ``release`` in their conversation) and the most recent pending
turn with its age, pending-first then by name. The output is the seed's: its
table (or its JSON object), after the halt banner when a halt stands (or a
line saying this session is paused after a resume, and how to re-engage).

``--projects-glob`` keeps the projects whose inbox folder
(:mod:`coordhub.compat.inboxes`) matches the glob, as the seed scanned only
the folders it matched; without it every project of this machine is shown.
Always exits 0 (status is read-only and shows a halt rather than obeying it),
except 1 when the hub cannot be asked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import Any

from coordhub.cli.entry import quiet_on_closed_stdout
from coordhub.compat.crossagent.common import Me, banner, connect, die, halt_state, paused_line

DEFAULT_GLOB = "~/projects/*/inbox/from-agents/"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cross-agent-status",
                                description="Snapshot of pending cross-agent messages across this machine's projects.")
    p.add_argument("--json", action="store_true", help="Emit JSON output")
    p.add_argument("--projects-glob", default=None,
                   help=f"Only projects whose inbox folder matches this glob (seed default: {DEFAULT_GLOB})")
    return p


def glob_match(path: Path, pattern: str) -> bool:
    """Whether ``path`` matches the shell glob ``pattern`` one path component at a time (``*`` never spans ``/``)."""
    want = [p for p in os.path.expanduser(pattern).split("/") if p]
    have = [p for p in str(Path(os.path.abspath(path))).split("/") if p]
    return len(want) == len(have) and all(fnmatch.fnmatchcase(h, w) for h, w in zip(have, want, strict=True))


def fmt_age(seconds: int | None) -> str:
    """An age as the seed wrote it: ``42s ago``, ``3 min ago``, ``2 hr ago``, ``4 day(s) ago``; ``—`` for none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} hr ago"
    return f"{seconds // 86400} day(s) ago"


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The seed's table: ``project``, ``pending``, ``most-recent`` (file name and age)."""
    width = max([len("project"), *(len(r["name"]) for r in rows)])
    lines = [f"{'project':<{width}}  pending  most-recent"]
    for r in rows:
        recent = r.get("most_recent")
        shown = f"{recent['filename']} ({fmt_age(recent.get('age_seconds'))})" if recent else "—"
        lines.append(f"{r['name']:<{width}}  {r['pending_count']:<7}  {shown}")
    return lines


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = parser().parse_args(argv)
    with connect() as client:
        from coordhub.client import HubError, Unreachable

        me = Me(client)
        try:
            data = client.conversation_status(me.machine)
        except (HubError, Unreachable) as exc:
            die(f"cannot read status from the hub at {client.settings.url}: {exc}", 1)
        rows = list(data.get("projects") or [])
        paused = None
        try:
            found, paused = halt_state(client, me.machine, [r["name"] for r in rows])
            unknown = None
        except (HubError, Unreachable) as exc:
            found, unknown = [], str(exc)
        if data.get("halt_active") and not found and unknown is None:
            unknown = "the hub reports a halt over this machine"
    if args.projects_glob:
        from coordhub.compat.inboxes import Inboxes

        try:
            inboxes = Inboxes()
        except ValueError as exc:
            die(str(exc), 1)
        rows = [r for r in rows if glob_match(inboxes.path_for(r["name"]), args.projects_glob)]
    rows.sort(key=lambda r: (-int(r["pending_count"]), r["name"]))
    lines = banner(found, unknown, clear_hint=True)
    if paused and not lines:  # the halt is gone but this session's sends and receives still stop (exit 5)
        lines = [f"⚠ {paused_line(paused)}", ""]
    for line in lines:  # on stderr with --json, so stdout stays one JSON value
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"scanned_at": seed_time(data.get("scanned_at")), "halt_active": bool(found or unknown),
                          "projects": rows}, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("No projects with conversations on this machine — 0 pending.")
        return 0
    print("\n".join(table_lines(rows)))
    return 0


def seed_time(text: Any) -> str:
    """The hub's ``scanned_at`` (RFC 3339, ``Z``) as seed 004 wrote it: ``datetime.isoformat()`` in UTC, which ends
    ``+00:00`` (so does ``cross-agent-discover``'s); this machine's clock when the hub said none or nothing
    readable."""
    try:
        when = dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        when = dt.datetime.now(dt.UTC)
    return when.astimezone(dt.UTC).isoformat()


if __name__ == "__main__":
    sys.exit(main())
