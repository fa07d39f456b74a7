"""The guard's memory of the committer's own leases, so a lease that ended is still known.

Why: a commit touching paths of one's own lease is accepted only while that
lease's fence is current (``GET /locks/check``). The hub's list of live
leases no longer shows a lease that expired or was force-released, so the
guard records every own live lease it sees (per worktree, in
``<git-dir>/coordhub/leases.json``) and, for a staged path under a recorded
lease that is no longer live, asks the hub about its fence. An entry is
dropped when its lease was released by its holder, when a run that touched
its paths was accepted or bypassed (the committer re-claimed or chose to go
on), or :data:`KEEP_SECONDS` after it was last seen live.

The file maps lease id to ``{"fence", "resource", "project_key",
"session_id", "seen"}`` (``seen``: epoch seconds, local clock). A missing or
unreadable file is an empty ledger; writing is atomic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coordhub.client.project import read_json_object, real_dir, write_private

KEEP_SECONDS = 7 * 86400.0

Entry = dict[str, Any]


def load(path: Path) -> dict[str, Entry]:
    """The recorded leases by id (``{}`` when there is no readable ledger); entries not of the shape :func:`record`
    writes are left out (:func:`_well_formed`)."""
    leases = read_json_object(path).get("leases")
    if not isinstance(leases, dict):
        return {}
    return {k: v for k, v in leases.items() if _well_formed(v)}


def _well_formed(entry: Any) -> bool:
    """Whether ``entry`` has the fields :func:`record` writes, of their types: the file may have come with the
    repository (an archive brings its own ``.git``), and ``"seen": "x"`` ended the guard in a traceback, refusing
    every commit. A bool is no fence or time, though Python counts it as an int."""
    if not isinstance(entry, dict):
        return False
    fence, seen = entry.get("fence"), entry.get("seen") or 0
    return (isinstance(fence, int) and not isinstance(fence, bool) and isinstance(seen, int | float)
            and not isinstance(seen, bool)
            and all(isinstance(entry.get(k), str) for k in ("resource", "project_key", "session_id")))


def save(path: Path, leases: dict[str, Entry]) -> None:
    """Replace the ledger atomically; ``OSError`` if it cannot be written.

    Also ``OSError`` when its directory is a symlink: a repository that
    came as an archive brings its own ``.git``, and ``.git/coordhub`` linked
    elsewhere would take the write out of it.
    """
    if not real_dir(path.parent):
        raise OSError(f"{path.parent} is a symlink or not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps({"leases": leases}, indent=1, sort_keys=True))


def record(leases: dict[str, Entry], live_own: list[dict[str, Any]], now: float) -> None:
    """Add or refresh every own live lease (in place), and forget entries not seen for :data:`KEEP_SECONDS`."""
    for lease in live_own:
        leases[str(lease["id"])] = {"fence": lease["fence"], "resource": lease["resource"],
                                    "project_key": lease["project_key"], "session_id": lease["session_id"],
                                    "seen": now}
    for lease_id in [k for k, v in leases.items() if now - float(v.get("seen") or 0) > KEEP_SECONDS]:
        del leases[lease_id]
