"""Running the real ``coord`` CLI as a subprocess, isolated from the machine's own settings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Result:
    """What one ``coord`` run did."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"coord {' '.join(self.args)} -> exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def isolated_env(root: Path, **extra: str) -> dict[str, str]:
    """Private HOME and XDG data/config/state dirs, no outer COORD_* settings, wide deterministic output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    for name in ("home", "xdg", "xdg-config", "xdg-state"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(root / "home"), XDG_DATA_HOME=str(root / "xdg"), XDG_CONFIG_HOME=str(root / "xdg-config"),
               XDG_STATE_HOME=str(root / "xdg-state"), COLUMNS="250", NO_COLOR="1", TERM="dumb")
    env.pop("FORCE_COLOR", None)
    env.update(extra)
    return env


def git_init(path: Path) -> Path:
    """Make ``path`` a git working tree (identity.json is read only inside one, untracked) and return it."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    return path


@dataclass(frozen=True)
class Coord:
    """Runs ``python -m coordhub [--url U] [--token T] [GLOBALS] ARGS`` in ``cwd`` with ``env``."""

    cwd: Path
    env: dict[str, str]
    url: str | None = None
    token: str | None = None
    globals_: tuple[str, ...] = ()

    def with_(self, **changes: Any) -> Coord:
        return replace(self, **changes)

    def as_token(self, token: str | None) -> Coord:
        return replace(self, token=token)

    def __call__(self, *args: str, stdin: str | None = None) -> Result:
        cmd = [sys.executable, "-m", "coordhub"]
        if self.url is not None:
            cmd += ["--url", self.url]
        if self.token is not None:
            cmd += ["--token", self.token]
        cmd += [*self.globals_, *args]
        p = subprocess.run(cmd, cwd=self.cwd, env=self.env, capture_output=True, text=True, input=stdin,
                           stdin=subprocess.DEVNULL if stdin is None else None, timeout=90)
        r = Result(tuple(args), p.returncode, p.stdout, p.stderr)
        assert "Traceback" not in r.out + r.err, r
        return r

    def ok(self, *args: str, stdin: str | None = None) -> Result:
        r = self(*args, stdin=stdin)
        assert r.code == 0, r
        return r

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return self.ok(*args, "--json", stdin=stdin).json()

    def fails(self, code: int, *args: str) -> Result:
        """Run, expect exit ``code`` with exactly one ``coord: …`` line on stderr."""
        r = self(*args)
        assert r.code == code, r
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("coord: "), r
        return r

    def queued(self, *args: str) -> Result:
        """Run a write against a down hub: exit 0 and a message that it was queued."""
        r = self.ok(*args)
        assert "queued" in r.out, r
        return r

    def unreachable(self, *args: str) -> Result:
        """Run a read (or claim) against a down hub: exit 3 and one line saying so."""
        r = self(*args)
        assert r.code == 3, r
        assert "unreachable" in r.err and len(r.err.strip().splitlines()) == 1, r
        return r


@contextmanager
def hung_hub() -> Iterator[tuple[str, list[socket.socket]]]:
    """A URL whose server accepts every connection and never answers, and the connections it accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()
        for c in accepted:
            c.close()
