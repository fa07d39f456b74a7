"""``coord conv sync``: the hub's turns for this machine's projects, written into their seed-004 inbox folders.

Agents whose polling loop still reads ``inbox/from-agents/`` and runs seed
004's ``cross-agent-recv`` on each file keep working: every accepted turn
addressed to a project on this machine becomes one ``.org`` file (and its
``.asc``) in that project's folder (:mod:`coordhub.compat.inboxes`), written
by :func:`coordhub.compat.orgfiles.place_all`.

Turns are read in pages of at most :data:`PAGE` and about 4 MiB
(``GET …/turns?after=&limit=``, oldest first), until a page is empty. A
cursor (the id of the last turn placed) is kept per hub, machine and set of
inbox folders in ``$XDG_STATE_HOME/coordhub/conv-sync/``, saved after each page, so
a second sync asks only for newer turns; without it (or with ``--from-start``)
every file is looked at again and an identical one is left alone. ``follow``
keeps going: the hub's event stream (kind ``conversation.turn``) wakes it, and
it also reads a page every ``poll`` seconds, so a turn recorded while the
stream was reconnecting is not left waiting. A folder it wrote into that is
removed meanwhile makes its next round start over, as a new sync would.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordhub.client import project as places
from coordhub.compat.inboxes import Inboxes
from coordhub.compat.orgfiles import place_all

PAGE = 1000  # the hub's largest page of turns


@dataclass
class Tally:
    """What a sync did: turns ``written``, already ``present``, written under another name (``renamed``)."""

    written: int = 0
    present: int = 0
    renamed: int = 0
    cursor: int = 0
    files: list[str] = field(default_factory=list)  # paths written, in order (for --json)

    def as_json(self) -> dict[str, Any]:
        return {"written": self.written, "present": self.present, "renamed": self.renamed, "cursor": self.cursor,
                "files": self.files}


def cursor_file(url: str, machine: str, inboxes: Inboxes) -> Path:
    """Where the cursor of this hub, machine and set of inbox folders is kept (another ``--inbox-root`` or
    configured folder starts from the beginning, since its folders hold none of the turns yet)."""
    where = "\n".join([str(inboxes.root), *(f"{p}={d}" for p, d in sorted(inboxes.explicit.items()))])
    key = hashlib.sha256(f"{url.rstrip('/')}\n{machine}\n{where}".encode()).hexdigest()[:16]
    return places.state_dir() / "conv-sync" / f"{machine}-{key}.json"


def load_cursor(path: Path) -> int:
    """The saved cursor (0 when none, or when a folder it wrote into is gone).

    A folder removed or moved away (an inbox cleaned by hand, a project folder recreated) lost the files the
    cursor says are written: a sync past it wrote nothing there, ever again, and said ``0 turns written`` (review,
    seed-004 user run). It counts as a lost cursor: every turn is looked at again, and identical files elsewhere are
    left alone (:func:`gone` is the rule; :meth:`Syncer.run_once` applies it again each round of ``follow``). A
    cursor saved before the folders were kept with it cannot say, and counts as lost once."""
    saved = places.read_json_object(path)
    value = saved.get("after", 0)
    if "folders" not in saved or gone(_folders(saved)):
        return 0
    return value if isinstance(value, int) and value >= 0 else 0


def gone(folders: Iterable[str]) -> set[str]:
    """The ``folders`` (inbox folders a sync wrote into) that are no longer directories: removed or moved away,
    with the files written there. Empty when every one is still there; any makes the cursor count as lost."""
    return {folder for folder in folders if not Path(folder).is_dir()}


def _folders(saved: dict[str, Any]) -> list[str]:
    """The folders a saved cursor's syncs wrote into (none in a cursor saved before they were kept)."""
    folders = saved.get("folders")
    return [f for f in folders if isinstance(f, str)] if isinstance(folders, list) else []


def save_cursor(path: Path, url: str, machine: str, after: int, folders: list[str] | None = None) -> None:
    """Save the cursor atomically (the state dir is created 0700), with the ``folders`` written into so far."""
    places.private_dir(path.parent)
    places.write_private(path, json.dumps({"url": url, "machine": machine, "after": after,
                                           "folders": sorted(folders or [])}) + "\n")


class Syncer:
    """Writes the turns of one machine into its projects' inbox folders.

    ``fetch(after, limit)`` returns the next page of turns (the client's
    ``turns``); ``progress`` is told after each page with a non-empty page.
    """

    def __init__(self, fetch: Callable[[int, int], list[dict[str, Any]]], machine: str, inboxes: Inboxes,
                 cursor_path: Path | None, url: str, after: int = 0,
                 progress: Callable[[Tally], None] | None = None) -> None:
        self.fetch = fetch
        self.machine = machine
        self.inboxes = inboxes
        self.cursor_path = cursor_path
        self.url = url
        self.tally = Tally(cursor=after)
        self.progress = progress
        # the folders written into, kept with the cursor so that one gone makes it count as lost (load_cursor):
        # at most one per project of this machine
        self.folders = set(_folders(places.read_json_object(cursor_path))) if cursor_path is not None else set()

    def run_once(self) -> Tally:
        """Page until the hub has nothing newer (an empty page); returns the running tally.

        A page shorter than :data:`PAGE` is not the end: the hub also cuts a
        page at about 4 MiB of text (``Coord-Next-After``), so the cursor is
        followed until a page comes back empty.

        Each page is written with :func:`~coordhub.compat.orgfiles.place_all`
        and the cursor saved after it. ``OSError`` when a folder is unwritable:
        the cursor then stays before that page (a rerun finds what was written).

        A folder written into that is :func:`gone` since (as :func:`load_cursor`
        finds at the start) makes this run start over from the first turn, so a
        ``follow`` notices it at its next round; the gone folders are forgotten
        until written into again, so the next round does not start over again
        for a folder no turn names any more.
        """
        lost = gone(self.folders)
        if lost:
            self.tally.cursor = 0
            self.folders -= lost
        while True:
            page = self.fetch(self.tally.cursor, PAGE)
            if not page:
                return self.tally
            mine = []
            for turn in page:
                machine, _, project = str(turn.get("to", "")).partition(".")
                if machine == self.machine and project and turn.get("content") is not None:
                    mine.append((self.inboxes.path_for(project), turn))
            for (folder, _), placed in zip(mine, place_all(mine), strict=True):
                self.folders.add(str(folder))
                if placed.written:
                    self.tally.written += 1
                    self.tally.files.append(str(folder / placed.name))
                else:
                    self.tally.present += 1
                self.tally.renamed += placed.renamed
            self.tally.cursor = max(self.tally.cursor, *(int(t["id"]) for t in page))
            if self.cursor_path is not None:
                save_cursor(self.cursor_path, self.url, self.machine, self.tally.cursor, list(self.folders))
            if self.progress is not None:
                self.progress(self.tally)

    def follow(self, wakeups: queue.Queue[object], poll: float, stop: threading.Event | None = None) -> None:
        """Sync, then again on each wake-up (an event) or every ``poll`` seconds, until ``stop`` is set."""
        while stop is None or not stop.is_set():
            self.run_once()
            try:
                wakeups.get(timeout=poll)
                while True:  # a burst of events is one more page read, not one per event
                    wakeups.get_nowait()
            except queue.Empty:
                pass
