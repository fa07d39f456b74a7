"""The softfail queue's drain (:mod:`coordhub.client.queue`) on large files, in-process, with a recording ``send``.

A planted queue of foreign lines costs a drain one walk (review: a quadratic
walk took 112 s per command on 8 MB); a long queue of the user's own entries
is rewritten once per drain, not once per entry; and a drain cut short (a
crash, here an exception out of ``send``) neither loses an entry nor sends
one it had settled, thanks to the journal beside the queue.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coordhub.client import project, queue
from coordhub.client.queue import Entry, Signer, SoftfailQueue

MAX_CHECKED = getattr(queue, "MAX_CHECKED", 10_000)

HUB = "http://127.0.0.1:9"
ACTOR = "tok:0123456789abcdef"
SEED001_LINE = ('{"ts":"2026-05-12T15:30:00Z","method":"PUT","path":"/api/coord/components/x/y",'
                '"body":{"state":"deployed"}}')


class Crash(Exception):
    """The process dying mid-drain."""


def make_queue(tmp_path: Path) -> SoftfailQueue:
    return SoftfailQueue(tmp_path / ".claude" / "coord-queue.jsonl", signer=Signer(tmp_path / "config" / "queue.key"))


def journal(q: SoftfailQueue) -> Path:
    """Where a drain records the entries it has settled."""
    return q.path.with_name("coord-queue.done.jsonl")


def own(q: SoftfailQueue, n: int, hub: str = HUB) -> list[str]:
    """Append ``n`` of the user's own entries for ``hub``; their idempotency keys, in order."""
    start = len(q)
    keys = [f"key-{hub[-1]}-{start + i}" for i in range(n)]
    for key in keys:
        q.append(Entry("POST", "/api/coord/todos", {"text": key}, key, actor=ACTOR, hub=hub))
    return keys


def test_a_planted_queue_of_foreign_lines_is_walked_once_and_left_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = make_queue(tmp_path)
    q.path.parent.mkdir(parents=True)
    signed_looking = json.dumps({"method": "POST", "path": "/api/coord/todos", "mac": "00" * 32}, separators=(",", ":"))
    count = 2_000_000 // len(SEED001_LINE)  # 2 MB (the review's 8 MB took 112 s per command)
    q.path.write_text((SEED001_LINE + "\n") * count + (signed_looking + "\n") * (MAX_CHECKED + 500))
    before = q.path.stat()
    parsed = 0
    real = SoftfailQueue._classify

    def counting(self: SoftfailQueue, line: str, hub: str, actor: str | None) -> tuple[Entry | None, str]:
        nonlocal parsed
        parsed += 1
        return real(self, line, hub, actor)

    monkeypatch.setattr(SoftfailQueue, "_classify", counting)
    sent: list[Entry] = []
    started = time.monotonic()
    d = q.drain(lambda e: sent.append(e) or "applied", HUB, ACTOR)
    assert time.monotonic() - started < 10  # was minutes
    assert sent == [] and d.applied == 0
    assert (d.left, d.foreign, d.elsewhere) == (count + MAX_CHECKED + 500, count + MAX_CHECKED + 500, 0)
    assert parsed == MAX_CHECKED  # unsigned lines are never parsed; signed ones up to the bound
    after = q.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_own_entries_among_foreign_ones_are_sent_in_order_and_counts_stay_right(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    first = own(q, 2)
    with q.path.open("a") as f:
        f.write((SEED001_LINE + "\n") * 3)
    elsewhere = own(q, 1, hub="http://127.0.0.1:8")
    last = own(q, 2)
    sent: list[str] = []

    def send(e: Entry) -> str:
        sent.append(e.idempotency_key)
        return "retry" if e.idempotency_key == last[0] and sent.count(last[0]) == 1 else "applied"

    d = q.drain(send, HUB, ACTOR)
    assert sent == [*first, last[0]]
    assert (d.applied, d.left, d.foreign, d.elsewhere) == (2, 3 + 1 + 2, 3, 1)  # 2 own left behind the stop
    d = q.drain(send, HUB, ACTOR)
    assert sent == [*first, last[0], *last]
    assert (d.applied, d.left, d.foreign, d.elsewhere) == (2, 4, 3, 1)
    left = q.pending()
    assert [e.path for e in left[:3]] == ["/api/coord/components/x/y"] * 3
    assert [e.idempotency_key for e in left[3:]] == elsewhere


def test_a_long_queue_of_own_entries_is_rewritten_once_per_drain(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    q = make_queue(tmp_path)
    keys = own(q, 200)
    writes: list[Path] = []
    real = project.write_private

    def counting(path: Path, text: str, mode: int = 0o600) -> None:
        writes.append(path)
        real(path, text, mode)

    monkeypatch.setattr(project, "write_private", counting)
    sent: list[str] = []
    d = q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR)
    assert sent == keys and (d.applied, d.left) == (200, 0)
    assert writes.count(q.path) <= 1  # was 200: the whole file rewritten and fsynced per entry
    assert not q.path.exists() and not journal(q).exists()


def test_a_drain_cut_short_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    keys = own(q, 6)
    q.path.with_name("unrelated").write_text("")
    sent: list[str] = []

    def crashing(e: Entry) -> str:
        if len(sent) == 3:
            raise Crash
        sent.append(e.idempotency_key)
        return "rejected" if len(sent) == 2 else "applied"

    with pytest.raises(Crash):
        q.drain(crashing, HUB, ACTOR)
    assert sent == keys[:3]
    assert {e.idempotency_key for e in q.pending()} >= set(keys[3:])  # nothing lost

    d = q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR)
    assert sent == keys  # the three settled ones were not sent again
    assert (d.applied, d.left) == (3, 0)
    assert not q.path.exists() and not journal(q).exists()
    assert [json.loads(line)["idempotency_key"] for line in q.rejected.read_text().splitlines()] == [keys[1]]


def test_a_planted_journal_drops_nothing(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    keys = own(q, 3)
    journal(q).write_text("".join(f"{k}\n" for k in keys) + "00" * 32 + "\n")  # names, not this user's MACs
    sent: list[str] = []
    q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR)
    assert sent == keys


def test_entries_older_than_the_hubs_key_retention_are_set_aside_unsent(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    for key, ts in (("old", "2026-01-01T00:00:00Z"), ("edge", "2026-01-07T14:00:00Z"), ("new", "2026-01-08T10:00:00Z")):
        q.append(Entry("POST", "/api/coord/todos", {"text": key}, key, ts=ts, actor=ACTOR, hub=HUB))
    now = datetime(2026, 1, 8, 12, tzinfo=UTC)
    asked: list[int] = []

    def retention() -> float | None:
        asked.append(1)
        return 24.0  # "edge" is 22 h old: within 24 h, but past 24 h less the margin for clock skew

    sent: list[str] = []
    d = q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR, retention_hours=retention, now=now)
    assert sent == ["new"] and asked == [1]
    assert (d.applied, d.expired, d.left) == (1, 2, 0)
    expired = q.path.with_name("coord-queue.expired.jsonl")
    assert [json.loads(line)["idempotency_key"] for line in expired.read_text().splitlines()] == ["old", "edge"]

    q.append(Entry("POST", "/api/coord/todos", {"text": "kept"}, "kept", ts="2020-01-01T00:00:00Z", actor=ACTOR,
                   hub=HUB))
    q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR, retention_hours=lambda: None)
    assert sent[-1] == "kept"  # a hub that keeps keys forever: any age is replayed


def test_an_append_that_would_pass_the_bound_is_refused_and_the_queue_stays_drainable(tmp_path: Path) -> None:
    """The bound is checked before a line is added, with the line: a queue of the user's own writes that grew
    past MAX_QUEUE_BYTES was refused whole ('larger than …, move it away'), so no drain could send any of it."""
    q = make_queue(tmp_path)
    own(q, 1)
    big = "x" * (queue.MAX_LINE - 1000)  # an entry of about 2 MiB, the longest a line may be
    appended = 0
    with pytest.raises(queue.QueueUnusable, match="full"):
        for n in range(queue.MAX_QUEUE_BYTES // len(big) + 2):
            q.append(Entry("POST", "/api/coord/todos", {"text": big}, f"big-{n}", actor=ACTOR, hub=HUB))
            appended += 1
    assert q.path.stat().st_size <= queue.MAX_QUEUE_BYTES
    assert len(q) == 1 + appended
    d = q.drain(lambda e: queue.APPLIED, HUB, ACTOR)
    assert (d.applied, d.left) == (1 + appended, 0)


def test_an_own_entry_whose_body_is_as_deep_as_the_hub_takes_is_replayed(tmp_path: Path) -> None:
    """The hub takes a body nesting 32 arrays and objects (strictjson.MAX_DEPTH); its queue line wraps the body in
    one more object. ac0a798 refused a line nesting over 32 as a planted one, so such a write, queued while the
    hub was away, was counted foreign for good, never sent (nor by --review-foreign: it is no entry at all)."""
    from coordhub import strictjson

    body: dict[str, object] = {"kind": "hook.deep", "detail": {}}
    inner = body["detail"]
    for _ in range(strictjson.MAX_DEPTH - 2):
        assert isinstance(inner, dict)
        inner["a"] = {}
        inner = inner["a"]
    strictjson.loads(json.dumps(body))  # as deep as the hub takes: no BadJSON
    q = make_queue(tmp_path)
    q.append(Entry("POST", "/api/coord/events", body, "deep-key", actor=ACTOR, hub=HUB))
    sent: list[str] = []
    d = q.drain(lambda e: sent.append(e.idempotency_key) or "applied", HUB, ACTOR)
    assert (d.applied, d.foreign, sent) == (1, 0, ["deep-key"]), d
