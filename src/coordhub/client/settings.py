"""Where a client finds its hub and its identity.

Precedence, highest first: explicit arguments (CLI flags), ``COORD_URL`` /
``COORD_TOKEN`` / ``COORD_SESSION`` / ``COORD_QUEUE_FILE`` /
``COORD_TIMEOUT``, then ``.claude/identity.json`` (seed 000: ``coord_api``,
``machine``, ``user``; ours may also carry ``token`` and ``session``), found
in the working directory or the nearest parent that has one, else
``~/.claude/identity.json``. With no URL anywhere the hub is
``http://127.0.0.1:8001``. With no token and a hub on this machine, the local
hub's ``admin.token`` is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from coordhub import config
from coordhub.errors import Invalid

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ClientSettings(NamedTuple):
    """Resolved client settings."""

    url: str
    token: str | None
    session: str | None
    user: str | None
    machine: str | None
    queue_file: Path
    timeout: float
    identity_file: Path | None = None


def find_identity(start: Path | None = None) -> Path | None:
    """The nearest ``.claude/identity.json`` from ``start`` upwards, else the home one, else None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ".claude" / "identity.json"
        if candidate.is_file():
            return candidate
    home = Path.home() / ".claude" / "identity.json"
    return home if home.is_file() else None


def load_identity(path: Path) -> dict[str, Any]:
    """Read an identity.json; raise ``Invalid`` with the file name when it is not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise Invalid(f"{path}: expected a JSON object")
    return data


def _api_base(url: str) -> str:
    url = url.rstrip("/")
    # seed 000's coord_api is the server root; tolerate one that already ends in /api/coord
    return url.removesuffix("/api/coord")


def _local_admin_token(url: str) -> str | None:
    if urlsplit(url).hostname not in LOCAL_HOSTS:
        return None
    path = config.default_data_dir() / "admin.token"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def resolve(url: str | None = None, token: str | None = None, session: str | None = None,
            queue_file: str | None = None, timeout: float | None = None,
            identity_file: Path | None = None) -> ClientSettings:
    """Resolve every client setting by the precedence in the module docstring."""
    ident_path = identity_file or find_identity()
    ident = load_identity(ident_path) if ident_path else {}
    machine = ident.get("machine")
    base = _api_base(url or config.env_value("url") or ident.get("coord_api") or f"http://127.0.0.1:{config.DEFAULT_PORT}")
    session = session or config.env_value("session") or ident.get("session") or (
        f"{machine}/claude-main" if machine else None)
    token = token or config.env_value("token") or ident.get("token") or _local_admin_token(base)
    return ClientSettings(
        url=base, token=token, session=session, user=ident.get("user"), machine=machine,
        queue_file=Path(queue_file or config.env_value("queue_file") or config.setting("queue_file").default),
        timeout=float(timeout or config.env_value("timeout") or config.setting("timeout").default),
        identity_file=ident_path,
    )
