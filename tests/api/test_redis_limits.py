"""The per-token rate limit shared through Redis (``--rate-limit-store``, issue 14 point 2, optional).

Against the real Redis (``COORD_TEST_REDIS``), each test under a key prefix of
its own: the buckets give the same levels as the PostgreSQL ones for the same
charges, two hubs share one budget through them, and a Redis that is down
leaves each hub limiting on its own (fail open, logged once) while
authentication goes on as before.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.api.auth import RateLimiter
from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store import open_store
from coordhub.store.redisbuckets import RedisBuckets
from tests.api.test_shared_limits import (  # the PostgreSQL buckets' own test
    BURST,
    RATE,
    SECONDS,
    _spread,
    limited_while_sharing_fails,
)
from tests.conftest import LiveHub, free_port
from tests.seed002.conftest import REDIS_URL, redis_or_skip

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted afterwards."""
    r = redis_or_skip()
    name = f"coordtest:{uuid.uuid4().hex[:10]}:"
    try:
        yield name
    finally:
        keys = list(r.scan_iter(match=name + "*"))
        if keys:
            r.delete(*keys)
        r.close()


def _store_url(prefix: str) -> str:
    return f"{REDIS_URL}?prefix={prefix}"


@pytest.mark.postgres
def test_the_same_levels_as_the_database_buckets(prefix: str, pg_url: str) -> None:
    store = open_store(pg_url)
    store.open()
    database, redis = store.rate_buckets(), RedisBuckets(_store_url(prefix))
    a, b = f"a-{prefix}", f"b-{prefix}"  # the database's table is shared with other tests
    t = 1_800_000_000.0
    # new keys start full; refill by the rate; the debt stops at one burst; a clock step back refills nothing
    steps = [(t, {a: 3}), (t + 0.5, {a: 2, b: 7}), (t + 0.6, {a: 30}), (t + 1.6, {a: 1, b: 1}),
             (t + 1.0, {a: 1}), (t + 100.0, {b: 1})]
    try:
        for now, spent in steps:
            expected = database.charge(RATE, BURST, now, spent)
            assert redis.charge(RATE, BURST, now, spent) == pytest.approx(expected), (now, spent)
        assert expected == {b: BURST - 1}
        assert redis.charge(RATE, BURST, t + 101.0, {}) == {}
    finally:
        database.close()
        redis.close()
        store.close()


def test_a_bucket_expires_once_it_would_be_full_again(prefix: str) -> None:
    redis = RedisBuckets(_store_url(prefix))
    try:
        assert redis.charge(2.0, 10, time.time(), {"k": 4}) == {"k": 6.0}
        ttl = redis_or_skip().ttl(prefix + "k")
        assert 0 < ttl <= 10, ttl  # 2 × burst / rate: from the deepest debt to full
    finally:
        redis.close()


def test_a_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisBuckets("postgresql://127.0.0.1/coord")


@pytest.mark.postgres
def test_two_hubs_share_one_budget_through_redis(prefix: str, pg_url: str) -> None:
    stores = [open_store(pg_url), open_store(pg_url)]
    for s in stores:
        s.open()
    hubs = [Hub(s) for s in stores]
    admin = hubs[0].mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    apps = [create_app(h, sweep_seconds=0, rate_limit=RATE, rate_burst=BURST,
                       rate_buckets=RedisBuckets(_store_url(prefix))) for h in hubs]
    try:
        with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
            token = a.post("/api/coord/tokens", json={"name": "REDIS-LIMITED/claude-main"},
                           headers={"Authorization": f"Bearer {admin}"}).json()["token"]
            allowed = _spread((a, b), token, SECONDS)
            refused = sum(app.state.auth.limiter.refusals for app in apps)
    finally:
        for s in stores:
            s.close()
    one_budget = BURST + RATE * SECONDS
    print(f"let through over two hubs sharing Redis in {SECONDS} s: {allowed}, refused {refused} "
          f"(one budget {one_budget:g})")
    assert allowed <= one_budget + BURST + RATE * 0.5, allowed  # two budgets would be ~70
    assert refused > 0
    # and the budget is not lost either. Redis charges in well under a millisecond, so the hubs overspend less
    # between charges than on the database (34–36 there, 27–37 here on a loaded machine): what is left unspent
    # when the run stops, and a request pace slowed by the machine, may cost up to one burst.
    assert allowed >= one_budget - BURST, (allowed, refused)
    # the budget lived in Redis: the limited token's bucket (the admin's may have expired already)
    assert list(redis_or_skip().scan_iter(match=prefix + "*"))


def test_redis_down_fails_open_to_each_hub(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Charges to a Redis nobody listens for: the hub goes on limiting alone, and says so once."""
    hub = Hub(open_store(f"sqlite:///{tmp_path / 'coord.db'}"))
    limiter = RateLimiter(1.0, 3)
    down = RedisBuckets(f"redis://127.0.0.1:{free_port()}/0")
    warned = limited_while_sharing_fails(hub, limiter, down, caplog)
    assert len(warned) == 1 and "until the Redis is back" in warned[0], [r.getMessage() for r in caplog.records]


def test_coord_serve_charges_its_budgets_to_redis(tmp_path: Path, prefix: str) -> None:
    hub = LiveHub(tmp_path / "hub", args=("--rate-limit", "50", "--rate-burst", "20", "--rate-limit-store",
                                          _store_url(prefix))).start()
    try:
        token = hub.token("CHARGED/claude-main")
        for _ in range(3):
            assert httpx2.get(hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {token}"}
                              ).status_code == 200
        r = redis_or_skip()
        deadline = time.monotonic() + 10
        while not list(r.scan_iter(match=prefix + "*")):  # charged within a quarter of a second
            assert time.monotonic() < deadline, hub.log.read_text()[-2000:]
            time.sleep(0.05)
        levels = [float(r.hget(k, "tokens")) for k in r.scan_iter(match=prefix + "*")]
        assert levels and all(level < 20 for level in levels), levels  # spent from a full burst
    finally:
        hub.stop()
    assert "shared rate limits unavailable" not in hub.log.read_text()


def test_a_hub_whose_redis_is_down_serves_and_still_checks_tokens(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "hub", args=("--rate-limit", "50", "--rate-limit-store",
                                          f"redis://127.0.0.1:{free_port()}/0")).start()
    try:
        token = hub.token("DOWN/claude-main")
        codes = [httpx2.get(hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {token}"}).status_code
                 for _ in range(5)]
        assert codes == [200] * 5
        assert httpx2.get(hub.url + "/api/coord/locks", headers={"Authorization": "Bearer nope"}).status_code == 401
        deadline = time.monotonic() + 10
        while "shared rate limits unavailable" not in hub.log.read_text():
            assert time.monotonic() < deadline, hub.log.read_text()[-2000:]
            time.sleep(0.1)
        for _ in range(5):  # more charges fail, no more warnings
            httpx2.get(hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {token}"})
        time.sleep(0.6)
    finally:
        hub.stop()
    assert hub.log.read_text().count("shared rate limits unavailable") == 1


def test_a_bad_rate_limit_store_refuses_to_start(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "coordhub", "serve", "--data-dir", str(tmp_path / "d"), "--port",
                        str(free_port()), "--rate-limit-store", "http://127.0.0.1:6379"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--rate-limit-store" in p.stderr and "redis://" in p.stderr, (p.returncode, p.stderr)
