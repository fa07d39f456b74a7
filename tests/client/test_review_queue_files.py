"""The softfail queue file: an append cut short costs no later write, and what is queued is the user's alone.

A crash or ``ENOSPC`` in the middle of an append leaves the file ending in a
torn line without its newline. The next append used to go straight after it,
so the new entry became the tail of the torn line: one unparseable line,
counted foreign and never replayed, a write lost although ``append`` had said
it was queued. And a queue file the client did not make (a repository's
committed one, which git checks out 0644; seed 001's, written by hand) kept
its mode while the user's queued message bodies were appended to it.
"""

from __future__ import annotations

import stat
from pathlib import Path

from coordhub.client.queue import Entry, Signer, SoftfailQueue

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
