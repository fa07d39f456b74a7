"""The per-token rate limit holds across hub processes on one PostgreSQL database (issue 14 point 2).

Two hubs (two apps, two stores, one database, the real charging task) serve
one token; a client alternating between them gets one budget, not two. When
the database cannot take the charge, each hub limits on its own (fails open
for rate limits) while authentication still needs the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store import open_store

pytestmark = pytest.mark.postgres
RATE, BURST, SECONDS = 10.0, 10, 2.5


@pytest.fixture
def two_hubs(pg_url: str) -> Iterator[tuple[TestClient, TestClient, str]]:
    stores = [open_store(pg_url), open_store(pg_url)]
    for s in stores:
        s.open()
    hubs = [Hub(s) for s in stores]
    admin = hubs[0].mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    clients = [TestClient(create_app(h, sweep_seconds=0, rate_limit=RATE, rate_burst=BURST)) for h in hubs]
    try:
        with clients[0] as a, clients[1] as b:
            yield a, b, admin
    finally:
        for s in stores:
            s.close()


def _spread(clients: tuple[Any, ...], token: str, seconds: float) -> int:
    """Requests alternating over ``clients`` for ``seconds``; how many were let through."""
    ok, i, end = 0, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        code = clients[i % len(clients)].get("/api/coord/locks", headers={"Authorization": f"Bearer {token}"})
        assert code.status_code in (200, 429), code.text
        ok += code.status_code == 200
        i += 1
        time.sleep(0.004)
    return ok


def test_a_client_spreading_over_two_hubs_gets_one_budget(two_hubs: tuple[TestClient, TestClient, str]) -> None:
    a, b, admin = two_hubs
    token = a.post("/api/coord/tokens", json={"name": "LIMITED/claude-main"},
                   headers={"Authorization": f"Bearer {admin}"}).json()["token"]
    allowed = _spread((a, b), token, SECONDS)
    one_budget = BURST + RATE * SECONDS  # 35
    print(f"let through over two hubs in {SECONDS} s: {allowed} (one budget {one_budget:g}, two {2 * one_budget:g})")
    # Two separate budgets would let ~70 through; sharing allows one budget plus what both hubs let
    # through within one charging interval (0.25 s) before they hear of each other.
    assert allowed <= one_budget + BURST + RATE * 0.5, allowed
    # and the budget is not lost either (a charge counted twice would let about half through): a second's refill
    # of slack, as a loaded machine's client may stall near the end and leave what refilled unasked (CI: 29 of 35)
    assert allowed >= one_budget - RATE * 1.0, allowed
    refused = a.app.state.auth.limiter.refusals + b.app.state.auth.limiter.refusals  # type: ignore[attr-defined]
    assert refused > 0


def test_rate_limits_fail_open_to_each_hub_when_the_database_cannot_take_the_charge(
        caplog: pytest.LogCaptureFixture) -> None:
    """Charges to a database that does not answer: each hub goes on limiting alone, and says so once."""
    from coordhub.api.auth import RateLimiter
    from coordhub.store.postgres import PostgresStore

    store = PostgresStore("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    hub = Hub(store)
    limiter = RateLimiter(1.0, 3)

    warned = limited_while_sharing_fails(hub, limiter, None, caplog)
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]


def limited_while_sharing_fails(hub: Hub, limiter: Any, buckets: Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run the sharing task against ``buckets`` (None: the store's) that cannot take a charge, while one key asks
    six times, 0.2 s apart: assert it was still limited per process; return the warnings the hub logged."""
    import asyncio
    import logging

    from coordhub.api.app import _share_rate_limits
    from coordhub.errors import RateLimited

    async def scenario() -> list[bool]:
        task = asyncio.create_task(_share_rate_limits(hub, limiter, buckets) if buckets is not None
                                   else _share_rate_limits(hub, limiter))
        let: list[bool] = []
        for _ in range(6):
            try:
                limiter.check("k")
                let.append(True)
            except RateLimited:
                let.append(False)
            await asyncio.sleep(0.2)  # the charging task runs (and fails) in between
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return let

    with caplog.at_level(logging.WARNING, logger="coordhub.api"):
        let = asyncio.run(scenario())
    assert let[:3] == [True, True, True] and let.count(True) <= 5, let  # still limited, per process
    return [r.getMessage() for r in caplog.records if "shared rate limits unavailable" in r.getMessage()]


def test_a_debt_charged_for_overlap_work_outlives_the_shared_round(pg_url: str) -> None:
    """A burst of requests that each spent the whole overlap budget is charged after they answered (10 requests
    each, ``Caller.charge_work``), deeper than the one burst a shared bucket may owe: the hub that charged it keeps
    its own deeper debt when it adopts the shared level (review, 2026-12-06: the shared round forgave 80 % of it)."""
    from coordhub.api.auth import RateLimiter

    store = open_store(pg_url)
    store.open()
    buckets = store.rate_buckets()
    assert buckets is not None
    try:
        limiter = RateLimiter(RATE, BURST)
        limiter.share()
        for _ in range(BURST):  # all in flight at once: each passed the check before any was charged
            limiter.check("heavy")
        for _ in range(BURST):
            limiter.charge("heavy", 9)
        owed = limiter._level("heavy")[0]
        assert owed <= -9 * BURST + 1, owed
        limiter.settle(buckets.charge(limiter.rate, limiter.burst, time.time(), limiter.take_spent()))
        after = limiter._level("heavy")[0]
        assert after <= owed + 1, (owed, after)  # not the shared bucket's -BURST
    finally:
        buckets.close()
        store.close()
