"""What one hook run leaves for the next: the incarnation the session registered, per hub identity.

Each hook is its own process, so the incarnation returned by
``POST /presence/register`` at SessionStart is kept in a small JSON file and
sent with later heartbeats and the deregistration. That is what lets the hub
refuse (409 ``stale_incarnation``) a heartbeat or SessionEnd from a Claude
Code process that a newer one has superseded, instead of taking the newer one
offline. The file is keyed by hub URL and token (or session), lives in
``$XDG_STATE_HOME/coordhub/hooks`` (else ``~/.local/state/coordhub/hooks``),
and holds ``{"session_id", "incarnation", "client_session"}``:
``client_session`` is the Claude Code session that registered last, the only
one whose SessionEnd deregisters when several share one token. A missing or
unreadable file only means "unknown": heartbeats are then sent without an
incarnation.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from coordhub.client import project


def state_dir() -> Path:
    """``hooks`` in the client's state directory (``$XDG_STATE_HOME/coordhub``, see :mod:`coordhub.client.project`)."""
    return project.state_dir() / "hooks"


def path_for(url: str, credential: str | None) -> Path:
    """The state file of one identity on one hub (the credential is hashed, never stored)."""
    digest = hashlib.sha256(f"{url}\0{credential or ''}".encode()).hexdigest()[:24]
    return state_dir() / f"{digest}.json"


def load(path: Path) -> dict[str, Any]:
    """The saved state, or ``{}`` when there is none or it is unreadable."""
    return project.read_json_object(path)


def save(path: Path, data: dict[str, Any]) -> None:
    """Replace the state atomically (write a temp file, then rename); errors are raised as ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def forget(path: Path) -> None:
    """Delete the state (nothing happens when there is none)."""
    try:
        path.unlink()
    except OSError:
        pass
