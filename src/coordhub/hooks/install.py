"""Adding our hooks to a Claude Code settings file, and taking them out again, touching nothing else.

Settings files (ecosystem.md §2.1): ``local`` = ``<project>/.claude/settings.local.json``
(not committed, the default), ``project`` = ``<project>/.claude/settings.json``,
``user`` = ``~/.claude/settings.json``. Shape: ``{"hooks": {EVENT: [{"matcher":
…, "hooks": [{"type": "command", "command": …, "timeout": …}]}]}}``.

A handler is **ours** when its command runs ``coord-hook`` (any path) or
``-m coordhub.hooks.run`` with one of our event names. Installing removes
every handler of ours (wherever it sits), drops matcher groups left empty by
that, and appends one group per event: so installing twice changes nothing
and re-installing from another virtualenv replaces the command. Other keys,
other events and other handlers are kept as they are, in order. A settings
file that is not a JSON object (or whose ``hooks`` is malformed) is refused
with :class:`SettingsError` and left untouched. Files are written atomically.
So is a project's settings file that is not the project's own
(:func:`check_place`): a repository can commit ``.claude -> ~`` or
``.claude/settings.json -> /dev/zero``.

The command is the absolute path of the ``coord-hook`` next to the running
interpreter, because Claude Code runs hooks with a minimal ``PATH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from coordhub.client import project

SCOPES = ("local", "project", "user")
MAX_SETTINGS_BYTES = 4 * 1024 * 1024  # a settings file larger than this is refused, not read

#: (Claude Code event, matcher or None, our event name, timeout in seconds)
HOOK_SET: tuple[tuple[str, str | None, str, int], ...] = (
    ("SessionStart", "startup|resume|clear|compact", "session-start", 15),
    ("UserPromptSubmit", None, "prompt", 5),
    ("PreToolUse", "Edit|Write|MultiEdit|NotebookEdit", "pre-tool-use", 5),
    ("PostToolUse", "*", "post-tool-use", 5),
    ("Stop", None, "stop", 5),
    ("SessionEnd", None, "session-end", 5),
)
OUR_EVENTS = {h[2] for h in HOOK_SET}


class SettingsError(Exception):
    """The settings file cannot be merged (unreadable, not JSON, wrong shape); it was not changed."""


def hook_command() -> list[str]:
    """How to run ``coord-hook``: its absolute path next to ``sys.executable``, else on PATH, else ``python -m``."""
    beside = Path(sys.executable).parent / ("coord-hook.exe" if os.name == "nt" else "coord-hook")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("coord-hook")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "coordhub.hooks.run"]


def settings_path(scope: str, project_dir: Path, home: Path | None = None) -> Path:
    """The settings file of ``scope`` (``local``, ``project`` or ``user``)."""
    if scope == "user":
        return (home or Path.home()) / ".claude" / "settings.json"
    if scope == "project":
        return project_dir / ".claude" / "settings.json"
    if scope == "local":
        return project_dir / ".claude" / "settings.local.json"
    raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")


def check_place(scope: str, path: Path, project_dir: Path) -> None:
    """Raise :class:`SettingsError` unless ``path``, the settings file of ``scope``, may be read and written.

    The ``user`` scope's file is the user's own and not checked. A
    ``local`` or ``project`` one must lie in a ``.claude`` that is a
    directory of ``project_dir`` itself (not a symlink, which would take the
    write outside the repository), and be, if it exists, this user's regular
    file of at most :data:`MAX_SETTINGS_BYTES` (not a symlink or FIFO, which
    would be read from elsewhere or without end).
    """
    if scope == "user":
        return
    folder = path.parent
    if not project.real_dir(folder) or not folder.resolve().is_relative_to(project_dir.resolve()):
        raise SettingsError(f"refusing to write {path}: {folder} is a symlink or not a directory of {project_dir} "
                            "(a repository may have put it there); remove it or use --scope user; nothing was "
                            "changed")
    problem = project.unusable_file(path, MAX_SETTINGS_BYTES)
    if problem is not None:
        raise SettingsError(f"refusing to use {path}: {problem} (a repository may have put it there); nothing was "
                            "changed")


def is_ours(handler: Any) -> bool:
    """Whether a hook handler entry runs one of our events through ``coord-hook``."""
    if not isinstance(handler, dict) or not isinstance(handler.get("command"), str):
        return False
    try:
        argv = shlex.split(handler["command"])
    except ValueError:
        return False
    if len(argv) < 2 or argv[-1] not in OUR_EVENTS:
        return False
    program = argv[0].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".exe")
    return program == "coord-hook" or argv[-3:-1] == ["-m", "coordhub.hooks.run"]


def read(path: Path) -> dict[str, Any]:
    """The settings object in ``path`` (``{}`` when the file does not exist); ``SettingsError`` if malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise SettingsError(f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} holds a JSON {type(data).__name__}, not an object; nothing was changed")
    _check_shape(path, data)
    return data


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise SettingsError(f"{path}: \"hooks\" is not an object; nothing was changed")
    for event, groups in hooks.items():
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise SettingsError(f"{path}: hooks.{event} is not a list of matcher groups; nothing was changed")
        for g in groups:
            if not isinstance(g.get("hooks", []), list):
                raise SettingsError(f"{path}: a hooks.{event} group's \"hooks\" is not a list; nothing was changed")


def without_ours(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with every handler of ours removed, and groups, events and a ``hooks`` left empty by that
    dropped (an event list that was empty before stays)."""
    out = _strip(data)
    hooks = {event: groups for event, groups in out.get("hooks", {}).items()
             if groups or not data["hooks"][event]}
    if hooks:
        out["hooks"] = hooks
    else:
        out.pop("hooks", None)  # only ours were there
    return out


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with every handler of ours and every group left empty by that removed; events stay."""
    out = dict(data)
    if "hooks" not in data:
        return out
    hooks: dict[str, Any] = {}
    for event, groups in data["hooks"].items():
        kept = []
        for group in groups:
            handlers = group.get("hooks", [])
            mine = [h for h in handlers if is_ours(h)]
            if not mine:
                kept.append(group)
            elif len(mine) < len(handlers):
                kept.append({**group, "hooks": [h for h in handlers if not is_ours(h)]})
        hooks[event] = kept
    out["hooks"] = hooks
    return out


def with_ours(data: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """A copy of ``data`` with exactly one group of ours per event of :data:`HOOK_SET`."""
    out = _strip(data)  # event keys keep their place, so a second install changes nothing
    hooks = dict(out.get("hooks", {}))
    prefix = " ".join(shlex.quote(c) for c in command)
    for event, matcher, ours, timeout in HOOK_SET:
        group: dict[str, Any] = {} if matcher is None else {"matcher": matcher}
        group["hooks"] = [{"type": "command", "command": f"{prefix} {ours}", "timeout": timeout}]
        hooks[event] = [*hooks.get(event, []), group]
    out["hooks"] = hooks
    return out


def render(data: dict[str, Any]) -> str:
    """The settings as written: indented JSON, key order kept, a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename), keeping its mode.

    The temp file is made new (``O_EXCL``, without following a symlink
    planted under its name). Where ``path`` may be is :func:`check_place`'s
    to say, before.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = None  # a new file: 0666 less the umask, as any file the user makes
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render(data))
        if mode is not None:
            os.fchmod(f.fileno(), mode)
    os.replace(tmp, path)
