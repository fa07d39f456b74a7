"""The softfail queue file: an append cut short costs no later write, and what is queued is the user's alone.

A crash or ``ENOSPC`` in the middle of an append leaves the file ending in a
torn line without its newline. The next append used to go straight after it,
so the new entry became the tail of the torn line: one unparseable line,
counted foreign and never replayed, a write lost although ``append`` had said
it was queued. And a queue file the client did not make (a repository's
committed one, which git checks out 0644; seed 001's, written by hand) kept
its mode while the user's queued message bodies were appended to it; a
committed one received them although git would publish them. A full disk
mid-append was a traceback, and left half a line behind.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from coordhub.client import settings
from coordhub.client.client import CoordClient
from coordhub.client.queue import APPLIED, RETRY, Entry, QueueUnusable, Signer, SoftfailQueue
from tests.client.test_repo_attacks import cloned
from tests.conftest import free_port
from tests.coordcli import Coord, isolated_env

HUB = "http://127.0.0.1:9"
ACTOR = "token:0123456789abcdef"


def test_a_write_queued_after_a_torn_append_is_replayed(tmp_path: Path) -> None:
    q = SoftfailQueue(tmp_path / ".claude" / "coord-queue.jsonl", signer=Signer(tmp_path / "config" / "queue.key"))
    q.append(Entry("POST", "/api/coord/todos", {"text": "first"}, "key-first", actor=ACTOR, hub=HUB))
    whole = q.path.read_bytes()
    q.path.write_bytes(whole[: len(whole) // 2])  # what an append cut short leaves: half a line, no newline
    q.append(Entry("POST", "/api/coord/todos", {"text": "second"}, "key-second", actor=ACTOR, hub=HUB))

    sent: list[str] = []
    drained = q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR)

    assert sent == ["key-second"]  # the write queued after the torn one is not lost
    assert (drained.applied, drained.foreign, drained.left) == (1, 1, 1)
    assert q.path.read_bytes() == whole[: len(whole) // 2] + b"\n"  # the torn half is kept, as one foreign line


def test_a_queue_file_others_may_read_is_made_the_users_alone_before_anything_is_added(tmp_path: Path) -> None:
    q = SoftfailQueue(tmp_path / ".claude" / "coord-queue.jsonl", signer=Signer(tmp_path / "config" / "queue.key"))
    q.path.parent.mkdir()
    q.path.write_text("")
    q.path.chmod(0o644)  # as git checks out a committed file
    q.append(Entry("POST", "/api/coord/messages", {"body": "the secret plan"}, "key", actor=ACTOR, hub=HUB))
    assert stat.S_IMODE(q.path.stat().st_mode) == 0o600
    assert "the secret plan" in q.path.read_text()


def test_a_committed_queue_file_never_receives_the_users_writes(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """git checks a committed, empty coord-queue.jsonl out where the client keeps its queue: the user's queued
    writes (message bodies) went into a tracked file, to be published by the next ``git commit -a``."""
    for name in [n for n in os.environ if n.startswith("COORD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    clone = cloned(tmp_path, {".claude/coord-queue.jsonl": ""})
    with CoordClient(settings.resolve(f"http://127.0.0.1:{free_port()}", start=clone)) as client:
        assert client.queue.path == clone / ".claude" / "coord-queue.jsonl"
        with pytest.raises(QueueUnusable, match="git tracks it"):
            client.send_message("B/x", "plan", "the secret plan")
    assert (clone / ".claude" / "coord-queue.jsonl").read_bytes() == b""
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def test_an_append_the_disk_refuses_is_taken_back_and_said_in_one_line(tmp_path: Path) -> None:
    """A full disk mid-append (here a file size limit, EFBIG) was an OSError traceback out of `coord todo add`,
    and left half a line in the queue."""
    queue_file = tmp_path / "coord-queue.jsonl"
    env = isolated_env(tmp_path, COORD_QUEUE_FILE=str(queue_file))
    coord = Coord(tmp_path, env, url=f"http://127.0.0.1:{free_port()}")
    coord.queued("todo", "add", "first")
    before = queue_file.read_bytes()

    def small_files() -> None:  # in the child: at most 100 bytes more than the queue holds
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, resource.RLIM_INFINITY))

    p = subprocess.run([sys.executable, "-m", "coordhub", "--url", coord.url or "", "todo", "add", "x" * 5000],
                       cwd=tmp_path, env=env, capture_output=True, text=True, preexec_fn=small_files, timeout=90)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "could not be written" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert queue_file.read_bytes() == before


def test_a_new_queue_file_and_a_drains_rewrite_have_their_directory_synced(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A file's own fsync does not make its name durable (fsync(2)): a queue made just before a power cut, or the
    rewrite a drain renames into place, could be gone or the old file back (a write lost, or one sent twice),
    unless the directory is synced after the file is made or renamed. The queue's directory is synced then."""
    synced: list[str] = []
    real = os.fsync

    def spying(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spying)
    q = SoftfailQueue(tmp_path / ".claude" / "coord-queue.jsonl", signer=Signer(tmp_path / "config" / "queue.key"))
    q.append(Entry("POST", "/api/coord/todos", {"text": "first"}, "key-first", actor=ACTOR, hub=HUB))
    assert synced[-2:] == ["file", "dir"], synced  # made: its name synced after its content
    synced.clear()
    q.append(Entry("POST", "/api/coord/todos", {"text": "second"}, "key-second", actor=ACTOR, hub=HUB))
    assert synced == ["file"], synced  # an append to a file that was there changes no name
    synced.clear()
    sent = q.drain(lambda entry: APPLIED if entry.body["text"] == "first" else RETRY, HUB, ACTOR)
    assert sent, sent
    assert [e.body["text"] for e in q.pending()] == ["second"]
    assert "dir" in synced and synced[-1] == "dir", synced  # the rewrite's rename, then its directory
