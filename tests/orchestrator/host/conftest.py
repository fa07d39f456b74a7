"""Fixtures for the worker host: the fake ``claude`` on PATH, real git repositories with a bare origin, a host
context over the in-process :class:`FakeHub`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coordhub.client.settings import ClientSettings
from coordhub.orchestrator import review, worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.hoststate import HostState
from coordhub.orchestrator.worker import Context, Limits, Worker
from tests.orchestrator.host.fakehub import FakeHub

FAKE_CLAUDE = Path(__file__).resolve().parents[2] / "fakes" / "claude"
FAST = Limits(wall_clock=60, first_output=10, silence=10, linger=2, stop_grace=2, report_every=0.1, log_every=0.1,
              tick=0.05)


def run(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Repo:
    """A clone (``path``) of a bare repository (``origin``) with one commit on ``main``."""

    path: Path
    origin: Path

    def remote_branches(self) -> list[str]:
        out = run(self.origin, "git", "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return out.splitlines()

    def log(self, ref: str) -> list[str]:
        return run(self.origin, "git", "log", "--format=%s", ref).splitlines()


def make_repo(root: Path, name: str = "app") -> Repo:
    origin = root / f"{name}.git"
    run(root, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    path = root / name
    run(root, "git", "clone", "-q", str(origin), str(path))
    run(path, "git", "config", "user.email", "dev@example.com")
    run(path, "git", "config", "user.name", "Dev")
    run(path, "git", "checkout", "-q", "-b", "main")
    (path / "README.md").write_text("# app\n")
    run(path, "git", "add", "README.md")
    run(path, "git", "commit", "-q", "-m", "init")
    run(path, "git", "push", "-q", "-u", "origin", "main")
    return Repo(path, origin)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def push_file(repo: Repo, branch: str, subject: str = "x", name: str = "x.txt", new: str | None = "-b") -> str:
    """Commit a file ``name`` holding its stem and a newline (``x.txt``: ``x``) with ``subject`` on ``branch`` of
    ``repo``'s clone and push the branch to origin; the commit's sha. ``new`` is how ``git checkout`` makes the
    branch (``-b``; ``--orphan``: with no history in common with ``main``; None: the branch exists). The clone
    stays on ``branch``."""
    run(repo.path, "git", "checkout", "-q", *([new] if new else []), branch)
    (repo.path / name).write_text(f"{Path(name).stem}\n")
    run(repo.path, "git", "add", name)
    run(repo.path, "git", "commit", "-q", "-m", subject)
    run(repo.path, "git", "push", "-q", "origin", branch)
    return run(repo.path, "git", "rev-parse", "HEAD")


def stop_when(seen: Callable[[], bool], stopping: threading.Event) -> None:
    """Set ``stopping`` (the host's stop) from a daemon thread once ``seen()`` is true, asked every 0.05 s: a stop
    timed by what the run under test has done, not by the clock."""
    def wait() -> None:
        while not seen():
            time.sleep(0.05)
        stopping.set()
    threading.Thread(target=wait, daemon=True).start()


def review_branch(tmp_path: Path, repo: Repo, branch: str, issue: int, commit: Callable[[Path], None],
                  reviewer: Path, around: Callable[[Callable[[], Any]], Any] = lambda f: f()) -> Any:
    """Commit what ``commit(clone)`` writes on a new ``branch`` of ``repo``, push it, check it out detached in a
    worktree the host owns and review it there with ``reviewer`` (a stand-in for ``claude``); ``around`` wraps
    the review's run alone (to measure it). Returns what ``around`` returns (by default the Review)."""
    run(repo.path, "git", "checkout", "-q", "-b", branch)
    commit(repo.path)
    run(repo.path, "git", "add", "-A")
    run(repo.path, "git", "commit", "-q", "-m", "work")
    run(repo.path, "git", "push", "-q", "origin", branch)
    owned = tmp_path / "wts"
    wt = owned / "run-1"
    worktree.checkout_detached(repo.path, wt, branch, owned)
    p = {"id": "r1", "attempt": 1, "repo": "app", "issue": issue, "branch": branch, "base": "main",
         "review": {"briefing": "b"}}
    out = tmp_path / "out"
    out.mkdir()
    return around(lambda: review.run(str(reviewer), p, wt, {"PATH": "/usr/bin:/bin"}, out, threading.Event()))


@pytest.fixture
def claude_bin(tmp_path: Path) -> Path:
    """A directory holding ``claude``: the fake, run by this interpreter (its shebang would need one on PATH)."""
    d = tmp_path / "bin"
    d.mkdir()
    launcher = d / "claude"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_CLAUDE))} \"$@\"\n")
    launcher.chmod(0o755)
    return d


@pytest.fixture
def host_env(tmp_path: Path, claude_bin: Path) -> dict[str, str]:
    """The host's environment: the fake first on PATH, a private HOME and Claude config dir, and variables that
    must never reach a worker."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": f"{claude_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"), "LANG": "C.UTF-8",
            "XDG_CONFIG_HOME": os.environ.get("XDG_CONFIG_HOME", str(home / ".config")),
            "CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": "parent-session", "CLAUDE_CODE_MESSAGING_SOCKET": "/tmp/x",
            "COORD_TOKEN": "the-host-machine-token", "COORD_DATA_DIR": "/nowhere", "SECRET_OF_THE_HOST": "x"}


@pytest.fixture
def fake_hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def make_ctx(tmp_path: Path, repo: Repo, host_env: dict[str, str], fake_hub: FakeHub
             ) -> Callable[..., Context]:
    def make(limits: Limits = FAST, url: str = "http://127.0.0.1:9", state: Path | None = None,
             **changes: Any) -> Context:
        base = state or tmp_path / "host"
        settings = ClientSettings(url=url, token="the-host-machine-token", session="m1/agent", user=None,
                                  machine="m1", queue_file=base / "queue.jsonl", timeout=5.0)
        ctx = Context(machine="m1", link=fake_hub, state=HostState(base, "m1"),  # type: ignore[arg-type]
                      hub_settings=settings, repos={"app": repo.path}, worktrees=base / "worktrees",
                      workers_dir=base / "workers", limits=limits, host_env=host_env)
        for k, v in changes.items():
            setattr(ctx, k, v)
        return ctx
    return make


def payload(aid: str = "a1b2c3d4", attempt: int = 1, issue: int = 7, briefing: str = "Fix it.",
            **extra: Any) -> dict[str, Any]:
    return {"id": aid, "attempt": attempt, "repo": "app", "issue": issue, "branch": f"issue-{issue}-fix-it",
            "briefing": briefing, "worker_session": f"m1/worker-{aid}", "worker_token": None,
            "repo_config": {"default_branch": "main"}, **extra}


@pytest.fixture
def run_worker(make_ctx: Callable[..., Context], fake_hub: FakeHub) -> Iterator[Callable[..., Worker]]:
    """Run one worker to its end through the fake hub (which records its reports); return it."""
    started: list[Worker] = []

    def go(ctx: Context | None = None, wait: bool = True, **fields: Any) -> Worker:
        ctx = ctx or make_ctx()
        body = payload(**fields)
        a = fake_hub.assignments.get(body["id"]) or fake_hub.add(body["id"])
        a.attempt, a.state = body["attempt"], "dispatched"
        w = Worker(ctx, Dispatch.parse(body))
        started.append(w)
        w.start()
        if wait:
            assert w.finished.wait(60), "worker did not finish"
        return w

    yield go
    for w in started:
        if not w.finished.is_set():
            w.cancel()
            w.finished.wait(20)
