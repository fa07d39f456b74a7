"""``coord import redis`` against a second review's faults: a password in the Redis URL, deeply nested JSON,
batches over the hub's body limit, key names that are terminal escapes, and an item refused after it wrote.

Real Redis (the test's own prefixes), a real ``coord serve`` (SQLite and PostgreSQL), the real CLI.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from coordhub.importers import redis as source
from tests.conftest import LiveHub
from tests.coordcli import Coord
from tests.seed002.conftest import SeedRedis, admin_cli
from tests.seed002.test_import import T0

pytestmark = pytest.mark.redis

SECRET = "S3cretRedisPw"


def events_of(hub: LiveHub, token: str, kinds: str) -> list[dict[str, Any]]:
    """Every stored event of ``kinds`` as an ordinary session reads it from ``GET /api/coord/events``."""
    out: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": "0"}
    with httpx2.Client(timeout=httpx2.Timeout(5.0, read=3.0)) as c, \
            c.stream("GET", hub.url + "/api/coord/events", params={"kinds": kinds}, headers=headers) as r:
        assert r.status_code == 200
        try:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    out.append(json.loads(line[6:]))
        except httpx2.ReadTimeout:  # the stream stays open: what was stored has arrived by now
            pass
    return out


# ---- 1: the Redis password reaches no output, no import record, no event --------------------------------

@pytest.mark.parametrize("url, shown", [
    ("redis://default@127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0"),
    ("redis://user:hunter2@host:6380/2", "redis://host:6380/2"),
    ("rediss://:hunter2@host?db=3&password=hunter2#frag", "rediss://host/3"),
    ("unix:///run/redis.sock?db=1&password=hunter2", "unix:///run/redis.sock"),
    ("redis://[::1]:6379", "redis://[::1]:6379"),
    ("user:hunter2@host", "(not a redis://, rediss:// or unix:// URL)"),
    ("redis://user:hunter2@host:port/0", "(an unparsable Redis URL)"),
])
def test_a_shown_url_keeps_scheme_host_port_and_db_only(url: str, shown: str) -> None:
    assert source.shown_url(url) == shown
    assert "hunter2" not in source.scrubbed(f"AUTH hunter2 for user failed ({url})", url) or "hunter2" not in url


def test_a_password_given_as_a_query_parameter_is_never_shown_or_recorded(seed: SeedRedis, live: LiveHub,
                                                                          cli: Coord) -> None:
    seed.publish("msg-0000aa01", "GENERAL", "backend", "frontend", T0, "hello", "x", requires_ack=False)
    url = seed.url.replace("redis://", "redis://default@") + f"?password={SECRET}"
    admin = admin_cli(cli, live)
    for extra in ((), ("--json",), ("--dry-run",)):
        r = admin.ok("import", "redis", "--url", url, "--prefix", seed.prefix, *extra)
        assert SECRET not in r.out + r.err and "default@" not in r.out + r.err, r
    (event,) = events_of(live, live.token("alice"), "import.applied")
    assert SECRET not in json.dumps(event) and "password" not in json.dumps(event), event
    assert event["payload"]["source"] == f"{source.shown_url(seed.url)} {seed.prefix}:*", event
