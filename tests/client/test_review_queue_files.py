"""The softfail queue file: an append cut short costs no later write.

A crash or ``ENOSPC`` in the middle of an append leaves the file ending in a
torn line without its newline. The next append used to go straight after it,
so the new entry became the tail of the torn line: one unparseable line,
counted foreign and never replayed, a write lost although ``append`` had said
it was queued.
"""

from __future__ import annotations

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

