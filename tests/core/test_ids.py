"""Record ids (coordhub.ids): UUIDv7 text, later ids sort after earlier ones, and the hot records use them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from coordhub.core import leases, messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.ids import new_id
from coordhub.store.sqlite import SQLiteStore


def test_ids_are_version_7_uuids_in_the_usual_text_form() -> None:
    made = new_id()
    assert len(made) == 36 and str(uuid.UUID(made)) == made
    assert uuid.UUID(made).version == 7 and uuid.UUID(made).variant == uuid.RFC_4122


def test_ids_carry_the_time_and_sort_in_the_order_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert made == sorted(made) and len(set(made)) == len(made)
    stamp = uuid.UUID(made[0]).int >> 80  # the first 48 bits: Unix time in milliseconds (RFC 9562 §5.7)
    assert before <= stamp <= after


def test_messages_and_leases_get_time_ordered_ids(tmp_path: Path) -> None:
    """The ids the unique indexes see grow with every send and claim (their inserts append to the index)."""
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        hub = Hub(store)
        a, b = Actor("h/a"), Actor("h/b")
        for actor in (a, b):
            hub.mutate_sync(actor, lambda tx, now: None)
        sent = [hub.mutate_sync(a, lambda tx, now, i=i: messages.send(
            tx, a, to_session=b.session_id, subject=f"s{i}", body="b", now=now)).body["id"] for i in range(50)]
        claimed = [hub.mutate_sync(a, lambda tx, now, i=i: leases.claim(
            tx, a, project_key="p", resource=f"f{i}", description=None, ttl_hours=1, now=now)).body["id"]
            for i in range(50)]
    finally:
        store.close()
    for ids in (sent, claimed):
        assert ids == sorted(ids) and all(uuid.UUID(i).version == 7 for i in ids)
