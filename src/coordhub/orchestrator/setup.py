"""``coord init``: find the git repositories a machine works on and write a first ``coordinator.yml``.

Seed 003's wizard looked in the working directory and ``~/src/``; so does
this. Each repository found becomes a repo entry (its name from the
directory, ``github`` from an ``origin`` on GitHub, ``default_branch`` from
``origin/HEAD``, else the checked-out branch) given to this one machine.
The text written is validated with the same model the hub uses before it is
written, so ``coord init`` never leaves an invalid file (the seed wrote one
when it found no repository).
"""

from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from coordhub.core.orchestrator_config import validate

_GITHUB = re.compile(r"github\.com[:/]+([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Found:
    """A repository found on this machine."""

    name: str
    path: Path
    github: str | None
    default_branch: str


def _git(path: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _name(text: str) -> str:
    """A directory or host name as a config name: other characters become ``-``, at most 64."""
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "-", text).strip("-")[:64] or "repo"


def inspect(path: Path) -> Found:
    """What the config needs to know of the repository at ``path``."""
    url = _git(path, "remote", "get-url", "origin") or ""
    match = _GITHUB.search(url)
    head = _git(path, "symbolic-ref", "--short", "refs/remotes/origin/HEAD")
    branch = head.split("/", 1)[1] if head and "/" in head else _git(path, "branch", "--show-current")
    return Found(_name(path.name), path, f"{match.group(1)}/{match.group(2)}" if match else None, branch or "main")


def detect(places: list[Path]) -> list[Found]:
    """Git working trees at each place or one level below it, in order, without duplicates (by path or name)."""
    out: list[Found] = []
    seen: set[Path] = set()
    names: set[str] = set()
    for place in places:
        if not place.is_dir():
            continue
        candidates = [place, *sorted(p for p in place.iterdir() if p.is_dir() and not p.name.startswith("."))]
        for path in candidates:
            real = path.resolve()
            if real in seen or not (path / ".git").exists():
                continue
            seen.add(real)
            found = inspect(path)
            if found.name not in names:
                names.add(found.name)
                out.append(found)
    return out


def machine_name() -> str:
    """This machine's default name: its host name (seed 003 matched ``gethostname()`` against the config)."""
    return _name(socket.gethostname().split(".")[0])


def render(found: list[Found], machine: str, max_workers: int) -> str:
    """The text of a coordinator.yml for ``found`` on ``machine``; ``ValueError`` if it would not be valid."""
    import yaml

    home = Path.home()

    def shown(path: Path) -> str:
        real = path.resolve()
        return "~/" + str(real.relative_to(home)) if real.is_relative_to(home) else str(real)

    data = {
        "repos": [{"name": f.name, **({"github": f.github} if f.github else {}), "default_branch": f.default_branch}
                  for f in found],
        "machines": [{"name": _name(machine), "host": "localhost", "capabilities": [],
                      "repos": [f.name for f in found], "repo_paths": {f.name: shown(f.path) for f in found}}],
        "concurrency": {"max_workers": max_workers, "stagger_seconds": 30, "backoff_base": 60, "max_retries": 3,
                        "auto_reassign": False, "stale_threshold": 3},
        "models": {"default": "sonnet", "escalation": ["haiku", "sonnet", "opus"], "labels": {}},
    }
    validate(data)  # raises ConfigError (a ValueError) naming what is wrong
    header = ("# coordinator.yml, written by `coord init` (seed 003's schema; see docs/orchestrator.md).\n"
              "# Check it with `coord config`; make it the hub's with `coord config apply`.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
