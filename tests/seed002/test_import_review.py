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



@pytest.mark.parametrize("query", ["ssl_cert_reqs=none", "ssl_ca_certs=/etc/ssl/x.pem", "ssl_check_hostname=true"])
def test_a_url_option_redis_takes_only_over_tls_is_a_usage_error_not_a_traceback(cli: Coord, query: str) -> None:
    """redis-py accepts a TLS option in a redis:// URL and fails when it connects, with a TypeError that ended the
    import in a traceback; it is a URL error (exit 2), shown without the URL's secrets."""
    r = cli.as_token("coord_unused").fails(2, "import", "redis", "--url",
                                           f"redis://default:{SECRET}@127.0.0.1:1/0?{query}", "--dry-run")
    assert "not a Redis URL: redis://127.0.0.1:1/0" in r.err and SECRET not in r.err, r

# ---- 2: deeply nested JSON anywhere is one record left out, never a crash ---------------------------------

def test_decode_json_never_raises_and_bounds_nesting() -> None:
    from coordhub.importers.seed002map import JSON_DEPTH, decode_json

    assert decode_json("[" * JSON_DEPTH + "]" * JSON_DEPTH)[1] is None
    for text in ("[" * (JSON_DEPTH + 1) + "]" * (JSON_DEPTH + 1), "[" * 100_000 + "]" * 100_000,
                 '{"a":' * 100_000 + "1" + "}" * 100_000, "[" * 100_000):
        value, why = decode_json(text)
        assert value is None and why == f"nested deeper than {JSON_DEPTH} arrays and objects", why
    assert decode_json("9" * 5000)[0] is None and decode_json("{x")[1]
    assert decode_json('{"s": "\\ud800", "n": NaN}')[1] is None  # lenient otherwise: _checked scrubs


def test_deeply_nested_json_in_any_value_is_left_out_with_a_reason(seed: SeedRedis, live: LiveHub,
                                                                    cli: Coord) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    seed.publish("msg-00000001", "GENERAL", "backend", "frontend", T0, "ok", "fine", requires_ack=False)
    seed.r.set(seed.key("msg", "msg-00000002"), '{"id": "msg-00000002", "x": ' + deep + "}")
    seed.r.hset(seed.key("msg", "msg-00000003"), mapping={"from": "backend", "to": "frontend", "timestamp": str(T0),
                                                          "subject": "deep payload", "payload": deep})
    seed.r.hset(seed.key("presence"), "frontend", deep)
    seed.r.lpush(seed.key("notifications", "frontend"), deep)
    admin = admin_cli(cli, live)
    for extra in (("--dry-run",), ()):
        s = admin.json("import", "redis", "--url", seed.url, "--prefix", seed.prefix, *extra)
        why = {(p["kind"], p["ref"].split(":")[-1].strip()[:12]): p["reason"] for p in s["skipped"]}
        assert "nested deeper than" in why[("message", "msg-00000002")], s
        assert "nested deeper than" in why[("notification", "[[[[[[[[[[[[")], s
        assert "neither INSTANCE.FIELD nor a JSON object" in why[("presence", "frontend")], s
        assert any(n["ref"] == "msg-00000003" and "payload is not JSON (nested deeper than" in n["note"]
                   for n in s["notes"]), s
        assert s["counts"]["message"] == ({"to import": 2, "left out": 1} if extra else
                                          {"imported": 2, "left out": 1}), s


# ---- 3: batches fit the hub's body limit; an item too big alone is left out, the rest imported -----------

def test_batches_are_cut_below_the_hub_body_limit(seed: SeedRedis, live: LiveHub, cli: Coord) -> None:
    for i in range(3):  # each legal (200,000 characters, 400 kB of UTF-8); together over 1 MiB
        seed.publish(f"msg-0000000{i}", "GENERAL", "backend", "frontend", T0 + i, f"log {i}", "é" * 200_000,
                     requires_ack=False)
    s = run(admin_cli(cli, live), seed)
    assert s["counts"]["message"] == {"imported": 3} and s["skipped"] == [], s


@pytest.fixture
def small_hub(tmp_path: Any) -> Any:
    """A real ``coord serve`` (SQLite) taking request bodies of at most 300,000 bytes."""
    h = LiveHub(tmp_path / "small-hub", args=("--max-body-bytes", "300000")).start()
    try:
        yield h
    finally:
        h.stop()


def test_a_hub_with_a_smaller_body_limit_gets_smaller_batches(seed: SeedRedis, small_hub: LiveHub,
                                                              cli: Coord) -> None:
    for i in range(5):
        seed.publish(f"msg-0000000{i}", "GENERAL", "backend", "frontend", T0 + i, f"log {i}", "x" * 100_000,
                     requires_ack=False)
    seed.publish("msg-000000ff", "GENERAL", "backend", "frontend", T0 + 9, "huge", "y" * 400_000,
                 requires_ack=False)
    admin = admin_cli(cli, small_hub)
    s = run(admin, seed)
    assert s["counts"]["message"] == {"imported": 5, "skipped": 1}, s
    (big,) = s["skipped"]
    assert big["ref"] == "msg-000000ff" and "too big to send" in big["reason"] and "300000 bytes" in big["reason"]
    again = run(admin, seed)
    assert again["counts"]["message"] == {"already": 5, "skipped": 1}, again


def run(cli: Coord, seed: SeedRedis, *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = cli.json("import", "redis", "--url", seed.url, "--prefix", seed.prefix, *extra)
    return out


# ---- 4: names from Redis reach the terminal escaped and without markup --------------------------------------

def test_key_names_with_terminal_escapes_or_markup_are_printed_escaped(seed: SeedRedis, live: LiveHub,
                                                                       cli: Coord) -> None:
    seed.r.hset(seed.key("msg", "msg-\x1b]0;PWNED\x07\x1b[2J"), mapping={"from": "backend", "to": "frontend",
                                                                       "timestamp": str(T0), "subject": "s"})
    seed.r.hset(seed.key("msg", "msg-[bold red]MARKUP[/bold red]"), mapping={
        "from": "bad name!", "to": "frontend", "timestamp": str(T0), "subject": "s"})
    admin = admin_cli(cli, live)
    for extra in (("--dry-run",), ()):
        r = admin.ok("import", "redis", "--url", seed.url, "--prefix", seed.prefix, *extra)
        assert "\x1b" not in r.out + r.err and "\x07" not in r.out + r.err, r
        assert "msg-\\x1b]0;PWNED\\x07\\x1b[2J: its id is not one line" in r.out, r
        assert "message msg-[bold red]MARKUP[/bold red]: instance 'bad name!'" in r.out, r


def test_a_time_past_the_year_9999_in_utc_is_no_time_not_a_traceback(seed: SeedRedis, live: LiveHub,
                                                                       cli: Coord) -> None:
    """``9999-12-31T23:59:59-23:59`` is ISO 8601 but the year 10000 in UTC, which no stored time can be: its
    message is read as one without a time, as a number that large is, and left out when the timeline has none
    (review: ``when`` range-checked numbers only, and the import failed with a traceback on the first
    ``isoformat`` of it)."""
    seed.publish("msg-00000001", "GENERAL", "backend", "frontend", T0, "ok", "fine", requires_ack=False)
    seed.r.hset(seed.key("msg", "msg-00000002"), mapping={"from": "backend", "to": "frontend", "subject": "late",
                                                          "timestamp": "9999-12-31T23:59:59-23:59"})
    s = admin_cli(cli, live).json("import", "redis", "--url", seed.url, "--prefix", seed.prefix)
    assert s["counts"]["message"] == {"imported": 1, "left out": 1}, s
    assert [p["ref"] for p in s["skipped"]] == ["msg-00000002"], s
    assert "no usable timestamp ('9999-12-31T23:59:59-23:59')" in s["skipped"][0]["reason"], s
