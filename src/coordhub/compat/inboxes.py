"""Where each project's seed-004 inbox folder is on this machine.

Seed 004 delivered every message into ``~/projects/<project>/inbox/from-agents/``
unless ``~/.config/cross-agent-comms/peers.toml`` gave the project an
``inbox_path``. ``coord conv sync`` writes turns there and ``coord conv
import`` reads from there, so both use one rule, highest first:

1. ``inbox_path`` of ``[projects.<project>]`` in
   ``$XDG_CONFIG_HOME/coordhub/conversations.toml`` (else
   ``~/.config/coordhub/conversations.toml``);
2. ``inbox_path`` of ``[projects.<project>]`` in the seed's own
   ``~/.config/cross-agent-comms/peers.toml`` (a migrated machine keeps its
   layout without a second file);
3. ``<root>/<project>/inbox/from-agents``, where ``<root>`` is the
   ``--inbox-root`` flag, else ``projects_root`` in ``conversations.toml``,
   else ``~/projects``.

``~`` is expanded in every path. ``conversations.toml``::

    projects_root = "~/projects"

    [projects.career]
    inbox_path = "~/work/career/inbox/from-agents"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from coordhub.client import project as places

CONFIG_NAME = "conversations.toml"
INBOX_TAIL = ("inbox", "from-agents")


def config_file() -> Path:
    """``conversations.toml`` in the user's coordhub config dir."""
    return places.config_dir() / CONFIG_NAME


def seed_peers_file() -> Path:
    """Seed 004's ``peers.toml`` (it lived under ``~/.config`` whatever ``XDG_CONFIG_HOME`` said)."""
    return Path.home() / ".config" / "cross-agent-comms" / "peers.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    """The table in ``path``; ``{}`` when missing; ``ValueError`` naming the file when it is not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None


def _project_paths(table: dict[str, Any], source: Path) -> dict[str, Path]:
    projects = table.get("projects", {})
    if not isinstance(projects, dict):
        raise ValueError(f"{source}: [projects] must be a table of [projects.<name>] tables")
    out = {}
    for name, entry in projects.items():
        path = entry.get("inbox_path") if isinstance(entry, dict) else None
        if path is not None:
            if not isinstance(path, str) or not path.strip():
                raise ValueError(f"{source}: projects.{name}.inbox_path must be a path")
            out[name.lower()] = Path(os.path.expanduser(path))
    return out


class Inboxes:
    """The inbox folder of each project on this machine (see the module docstring for the rule)."""

    def __init__(self, root: Path | None = None, config: Path | None = None, seed_peers: Path | None = None) -> None:
        """``root``: the ``--inbox-root`` flag. Raises ``ValueError`` when a config file cannot be used."""
        ours = _read_toml(config or config_file())
        seed = _read_toml(seed_peers or seed_peers_file())
        self.explicit = {**_project_paths(seed, seed_peers or seed_peers_file()),
                         **_project_paths(ours, config or config_file())}
        configured = ours.get("projects_root")
        if configured is not None and not isinstance(configured, str):
            raise ValueError(f"{config or config_file()}: projects_root must be a path")
        base = root or (Path(os.path.expanduser(configured)) if configured else Path.home() / "projects")
        self.root = Path(os.path.abspath(base))

    def path_for(self, project: str) -> Path:
        """The inbox folder of ``project``."""
        return self.explicit.get(project.lower()) or self.root.joinpath(project.lower(), *INBOX_TAIL)

    def project_of(self, folder: Path) -> str | None:
        """The project whose inbox ``folder`` is: a configured path, else ``…/<project>/inbox/from-agents``; or None."""
        here = Path(os.path.abspath(folder))
        for name, path in self.explicit.items():
            if Path(os.path.abspath(path)) == here:
                return name
        if here.parts[-2:] == INBOX_TAIL and len(here.parts) > 3:
            return here.parts[-3]
        return None
