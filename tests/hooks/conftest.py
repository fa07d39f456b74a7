"""Fixtures for the hook tests: a live hub, two sessions, a project directory and a hook runner.

Every hook runs as a real subprocess (``python -m coordhub.hooks.run EVENT``)
with a private HOME and XDG dirs and no outer ``COORD_*`` (see
``tests/coordcli.py``), fed a payload shaped like Claude Code's
(ecosystem.md §2.2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub, free_port
from tests.coordcli import isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
PROJECT = "gururmm"


@dataclass
class HookResult:
    """What one hook run did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout as the one JSON object Claude Code reads."""
        assert self.out.strip(), f"no output; stderr: {self.err}"
        return json.loads(self.out)

    def context(self, event: str) -> str:
        """The ``additionalContext`` of a ``hookSpecificOutput`` answer for ``event``."""
        data = self.json()
        assert set(data) == {"hookSpecificOutput"}, data
        assert data["hookSpecificOutput"]["hookEventName"] == event, data
        return str(data["hookSpecificOutput"]["additionalContext"])

    def silent(self) -> None:
        """Exit 0 and nothing on stdout: Claude Code carries on unchanged."""
        assert self.code == 0 and self.out == "", self


def run_hook(event: str, payload: Any, env: dict[str, str], cwd: Path) -> HookResult:
    """Run ``coord-hook EVENT`` with ``payload`` (a dict is JSON-encoded; str/bytes are sent as they are)."""
    raw = payload if isinstance(payload, bytes) else (
        payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
    p = subprocess.run([sys.executable, "-m", "coordhub.hooks.run", event], input=raw, capture_output=True,
                       env=env, cwd=cwd, timeout=60)
    r = HookResult(p.returncode, p.stdout.decode(), p.stderr.decode())
    assert "Traceback" not in r.err, r.err
    assert r.code == 0, r
    return r


@dataclass
class Agent:
    """One Claude Code session of the fleet: its coord session, token and hook environment."""

    session: str
    token: str
    env: dict[str, str]
    project_dir: Path
    claude_session: str
    hub: LiveHub
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def hook(self, event: str, payload: Any = None, *, env: dict[str, str] | None = None,
             **fields: Any) -> HookResult:
        """Run a hook as this agent; ``payload`` defaults to the common fields plus ``fields``."""
        if payload is None:
            payload = {"session_id": self.claude_session, "transcript_path": f"/tmp/{self.claude_session}.jsonl",
                       "cwd": str(self.project_dir), "permission_mode": "default", **fields}
        return run_hook(event, payload, {**self.env, **(env or {})}, self.project_dir)

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """Call the hub as this session; assert 2xx; the JSON body."""
        r = httpx2.request(method, self.hub.url + "/api/coord" + path, headers=self.headers, timeout=10, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def claim(self, resource: str, description: str, ttl_hours: float = 2.0) -> dict[str, Any]:
        """Claim a lease in the test project."""
        return dict(self.api("POST", "/locks", json={"project_key": PROJECT, "resource": resource,
                                                     "description": description, "ttl_hours": ttl_hours}))

    def send(self, to: str | None, subject: str, body: str, **extra: Any) -> dict[str, Any]:
        """Send a message (``to=None``: broadcast)."""
        return dict(self.api("POST", "/messages", json={"to_session": to, "subject": subject, "body": body, **extra}))

    def presence(self) -> dict[str, Any]:
        """This session's presence record."""
        return dict(self.api("GET", "/whoami")["presence"])


@dataclass
class Fleet:
    """The live hub, sessions A and B, and the admin's headers."""

    hub: LiveHub
    a: Agent
    b: Agent
    admin: dict[str, str]

    def admin_api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx2.request(method, self.hub.url + "/api/coord" + path, headers=self.admin, timeout=10, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def events(self) -> list[dict[str, Any]]:
        """Every event in the log (what a hook must not have caused)."""
        return list(self.admin_api("GET", "/audit", params={"limit": 1000}))


def make_project(root: Path, name: str = PROJECT) -> Path:
    """A project directory that is a git working tree (``.git`` made by ``git init``)."""
    path = root / name
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "src").mkdir()
    return path


def agents(hub: LiveHub, tmp_path: Path) -> tuple[Agent, Agent]:
    """Sessions A and B on ``hub``, each with a private environment, sharing one project directory."""
    project = make_project(tmp_path / "work")

    def agent(session: str, tag: str) -> Agent:
        token = hub.token(session)
        env = isolated_env(tmp_path / tag, COORD_URL=hub.url, COORD_TOKEN=token)
        env.pop("CLAUDE_PROJECT_DIR", None)
        env.pop("CLAUDE_ENV_FILE", None)
        return Agent(session, token, env, project, f"claude-{tag}-0001", hub)

    return agent(A, "a"), agent(B, "b")


@pytest.fixture
def fleet(live_hub: LiveHub, tmp_path: Path) -> Fleet:
    """Sessions A and B on the live hub (:func:`agents`)."""
    a, b = agents(live_hub, tmp_path)
    return Fleet(live_hub, a, b, {"Authorization": f"Bearer {live_hub.admin_token}"})


@pytest.fixture
def closed_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
