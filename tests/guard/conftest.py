"""Fixtures for the git guard tests: a live hub, sessions A and B, and a real git repository with the guard."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.guard import install
from tests.conftest import LiveHub
from tests.coordcli import isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
PROJECT = "gururmm"


@dataclass
class Git:
    """What one git command did."""

    code: int
    out: str
    err: str


@dataclass
class Repo:
    """A working tree of the project, committing as session A (``env`` carries A's token)."""

    path: Path
    env: dict[str, str]

    def git(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> Git:
        p = subprocess.run(["git", *args], cwd=self.path, env={**self.env, **(env or {})}, capture_output=True,
                           text=True, timeout=60)
        r = Git(p.returncode, p.stdout, p.stderr)
        assert "Traceback" not in r.err, r.err
        if check:
            assert r.code == 0, r
        return r

    def change(self, rel: str, text: str = "x\n") -> None:
        """Write ``rel`` and stage it."""
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.read_text() + text if path.exists() else text)
        self.git("add", "--", rel)

    def commit(self, message: str = "change", env: dict[str, str] | None = None) -> Git:
        """``git commit``, not checked: the guard may refuse it."""
        return self.git("commit", "-q", "-m", message, env=env, check=False)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").out.strip()


@dataclass
class Fleet:
    """The hub, headers of A, B and the admin, and A's repository."""

    hub: LiveHub
    repo: Repo
    a: dict[str, str]
    b: dict[str, str]
    admin: dict[str, str]

    def api(self, who: dict[str, str], method: str, path: str, **kw: Any) -> Any:
        r = httpx2.request(method, self.hub.url + "/api/coord" + path, headers=who, timeout=10, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def claim(self, who: dict[str, str], resource: str, description: str) -> dict[str, Any]:
        return dict(self.api(who, "POST", "/locks", json={"project_key": PROJECT, "resource": resource,
                                                          "description": description, "ttl_hours": 1}))


def init_repo(path: Path, env: dict[str, str]) -> Repo:
    """A repository with a local identity and one commit, with the guard installed."""
    path.mkdir(parents=True)
    repo = Repo(path, env)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.name", "Agent A")
    repo.git("config", "user.email", "a@example.com")
    repo.change("README.md", "hello\n")
    repo.change("lib/old.py", "old\n")
    repo.change("lib/gone.py", "gone\n")
    repo.git("commit", "-q", "-m", "init")
    install.install(path)
    return repo


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def fleet(live_hub: LiveHub, tmp_path: Path) -> Fleet:
    """Session A commits in ``<tmp>/work/gururmm`` (project key gururmm); B holds leases."""
    token_a = live_hub.token(A)
    env = isolated_env(tmp_path / "a", COORD_URL=live_hub.url, COORD_TOKEN=token_a)
    for name in ("CLAUDE_PROJECT_DIR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    repo = init_repo(tmp_path / "work" / PROJECT, env)
    return Fleet(live_hub, repo, auth(token_a), auth(live_hub.token(B)), auth(live_hub.admin_token))
