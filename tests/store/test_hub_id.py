"""The hub's id lives in the database (issue 7 point 2): made once, the same for every process on it, both backends."""

from __future__ import annotations

import re
from collections.abc import Callable

from coordhub.core.hub import Hub
from coordhub.store.base import Store


def test_every_store_on_one_database_reads_the_same_hub_id(store_factory: Callable[[], Store]) -> None:
    first = Hub(store_factory()).query_sync(lambda tx, now: tx.meta.get("hub_id"))
    assert first is not None and re.fullmatch(r"[0-9a-f]{32}", first)
    second = store_factory()  # another hub process opening the same database (migrations already applied)
    assert Hub(second).query_sync(lambda tx, now: tx.meta.get("hub_id")) == first
    assert Hub(second).query_sync(lambda tx, now: tx.meta.get("no such key")) is None
