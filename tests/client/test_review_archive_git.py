"""A repository that came as an archive brings its own ``.git``: nothing in it may hang the client or steer a write.

Before the fix a ``.git`` file or a ``commondir`` that is a FIFO was read
without end (``git_dir``, which every hook runs through the project's name);
git, asked whether it tracks a ``.claude/identity.json``, waited for ever on a
FIFO index (every ``coord`` command and hook in that tree hung); and a ``.git``
file's ``gitdir:`` naming any directory made the first queued write create
``info/exclude`` there.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coordhub.client import project, settings
from coordhub.client.queue import Entry, Signer, SoftfailQueue
from tests.coordcli import git_init


def within(seconds: float, fn: Callable[[], Any], fifos: list[Path]) -> Any:
    """``fn()``'s result, asserting it returned within ``seconds``; each FIFO of ``fifos`` is then opened for
    writing and closed, so a reader still waiting on one (the code before its fix) gets end-of-file and ends."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    hung = worker.is_alive()
    for fifo in fifos:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is waiting on it
    assert not hung, f"still waiting after {seconds} s"
    return out[0]


def test_a_git_file_or_commondir_that_is_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    tree = tmp_path / "unpacked"
    tree.mkdir()
    os.mkfifo(tree / ".git")
    assert within(5, lambda: project.git_dir(tree), [tree / ".git"]) is None

    worktree, gitdir = tmp_path / "worktree", tmp_path / "main" / ".git" / "worktrees" / "w"
    gitdir.mkdir(parents=True)
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {gitdir}\n")
    os.mkfifo(gitdir / "commondir")
    assert within(5, lambda: project.git_dir(worktree), [gitdir / "commondir"]) == gitdir


def test_git_waiting_on_a_fifo_index_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project, "GIT_SECONDS", 1.0, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tree = git_init(tmp_path / "unpacked")
    (tree / ".claude").mkdir()
    (tree / ".claude" / "identity.json").write_text(json.dumps({"coord_api": "http://127.0.0.1:9"}))
    (tree / ".git" / "index").unlink(missing_ok=True)
    os.mkfifo(tree / ".git" / "index")
    notes: list[str] = []
    start = time.monotonic()
    found = within(8, lambda: settings.find_identity(tree, notes), [tree / ".git" / "index"])
    assert found is None and time.monotonic() - start < 4
    assert any("git cannot say" in note for note in notes), notes


def test_a_git_file_naming_another_directory_gets_no_info_exclude_there(tmp_path: Path) -> None:
    elsewhere = tmp_path / "home" / ".ssh"
    elsewhere.mkdir(parents=True)
    tree = tmp_path / "unpacked"
    (tree / ".claude").mkdir(parents=True)
    (tree / ".git").write_text(f"gitdir: {elsewhere}\n")
    q = SoftfailQueue(tree / ".claude" / "coord-queue.jsonl", signer=Signer(tmp_path / "config" / "queue.key"),
                      git_root=tree)
    q.append(Entry("POST", "/api/coord/todos", {"text": "x"}, "k", actor="token:x", hub="http://127.0.0.1:9"))
    assert list(elsewhere.iterdir()) == []


def test_git_is_waited_for_in_a_process_with_many_descriptors_open(tmp_path: Path) -> None:
    """The wait for git (a pidfd) was a select(), which refuses a descriptor past 1023: in a process holding
    that many (a hub, an MCP server with many clients) asking git whether it tracks a file was a ValueError."""
    tree = git_init(tmp_path / "repo")
    (tree / "kept.txt").write_text("x")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert project.tracked(tree, tree / "kept.txt") is False
    finally:
        for fd in held:
            os.close(fd)
