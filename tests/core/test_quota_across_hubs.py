"""The daily quotas hold across hub processes: two stores on one database (two ``coord serve`` processes' worth,
or two hubs behind a load balancer) charging one session at once store no more than its bound, on both backends.

A quota is read, then charged, in the write's unit (:func:`coordhub.core.quota.charge`;
:func:`coordhub.core.turnbounds.check`, then the send's charge). Another process's unit must not read the same
day's usage in between. It cannot: PostgreSQL's writers take one fleet-wide advisory lock per batch
(:mod:`coordhub.store.postgres`), SQLite's one write lock of the file. Each test here holds every quota read
until the other store's unit has read too (or half a second went by): were the two units able to interleave,
both would read the day one write short of its bound, both would pass, and the day would end one past it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from coordhub.core import quota, turnbounds
from coordhub.core.identity import Actor
from coordhub.store import Store
from coordhub.store.base import Row
from coordhub.store.tables.quota import DailyQuota
from coordhub.store.tx import Tx

ME = Actor("A/claude-main")
NOW = 1_800_000_000.0
DAY = int(NOW // quota.DAY)


@pytest.fixture
def pair(store_factory: Callable[[], Store]) -> tuple[Store, Store]:
    """Two stores on one database, as two hub processes have."""
    return store_factory(), store_factory()


@contextlib.contextmanager
def reads_paired(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hold each quota read until a second one was made, or 0.5 s went by: two units that can interleave do."""
    barrier = threading.Barrier(2, timeout=0.5)
    used = DailyQuota.used

    def paired(self: DailyQuota, session_id: str, day: int) -> Row | None:
        row = used(self, session_id, day)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return row

    with monkeypatch.context() as m:
        m.setattr(DailyQuota, "used", paired)
        yield


def _at_once(pair: tuple[Store, Store], unit: Callable[[Tx], None]) -> list[BaseException | None]:
    """Run ``unit`` on both stores at once; what each raised (None: it committed)."""
    futures: list[Future[Any]] = [s.submit_write(unit) for s in pair]
    return [f.exception(timeout=30) for f in futures]


def test_write_quota_holds_across_hubs(pair: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "MAX_WRITES_PER_DAY", 3)
    pair[0].write_sync(lambda tx: [tx.write_quota.charge(ME.session_id, DAY, 300) for _ in range(2)])
    with reads_paired(monkeypatch):
        failures = _at_once(pair, lambda tx: quota.charge(tx, ME, NOW, 300, "todo"))
    assert sorted(type(f).__name__ for f in failures) == ["NoneType", "WriteQuotaExceeded"], failures
    refused = next(f for f in failures if f is not None)
    assert isinstance(refused, quota.WriteQuotaExceeded)
    assert (refused.details["bound"], refused.details["limit"]) == ("writes_per_day", 3)
    for store in pair:
        assert store.read_sync(lambda tx: tx.write_quota.used(ME.session_id, DAY)) == {"writes": 3, "bytes": 900}


def test_turn_quota_holds_across_hubs(pair: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turnbounds, "MAX_SESSION_BYTES_PER_DAY", 1_000)
    pair[0].write_sync(lambda tx: tx.turn_quota.charge(ME.session_id, DAY, 400))

    def send(tx: Tx) -> None:  # what conversations.send does with the quota: check, record the turn, charge
        turnbounds.check(tx, ME, None, 400, NOW)
        tx.turn_quota.charge(ME.session_id, DAY, 400)

    with reads_paired(monkeypatch):
        failures = _at_once(pair, send)
    assert sorted(type(f).__name__ for f in failures) == ["NoneType", "TurnQuota"], failures
    refused = next(f for f in failures if f is not None)
    assert isinstance(refused, turnbounds.TurnQuota) and refused.details["bound"] == "bytes_per_day"
    assert pair[1].read_sync(lambda tx: tx.turn_quota.used(ME.session_id, DAY)) == {"turns": 2, "bytes": 800}
