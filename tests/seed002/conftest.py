"""Seed 002 fixtures: the machine's real Redis holding data in seed 002's key layout, and a real hub.

Redis is ``COORD_TEST_REDIS`` (default ``redis://127.0.0.1:6379/13``, a
database of its own). Every test writes under a prefix of its own
(``t<random>:coord``) and deletes it afterwards, so tests running in
parallel never see each other's keys. When Redis is unreachable the tests
are skipped, unless ``COORD_REQUIRE_REDIS=1`` (set by ``.ci/run``), which
turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

REDIS_URL = os.environ.get("COORD_TEST_REDIS", "redis://127.0.0.1:6379/13")
REQUIRE_REDIS = os.environ.get("COORD_REQUIRE_REDIS") == "1"


def stamp(ts: float) -> str:
    """Seed 002's timestamp format (second precision, ``Z``)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SeedRedis:
    """Writes what seed 002's client wrote, key for key, under ``prefix``; the fixture that imports read.

    The format is seed 002's (its README's key table; its client's hash
    fields ``id type from to timestamp requires_ack acknowledged subject
    description`` and ``ack_by ack_timestamp ack_comment``; presence fields
    ``{instance}.active/.last_heartbeat/.session_id``; JSON notification
    events pushed with LPUSH, newest first).
    """

    r: Any
    prefix: str
    url: str = REDIS_URL
    ids: list[str] = field(default_factory=list)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def publish(self, mid: str, msg_type: str, sender: str, to: str, ts: float, subject: str = "s",
                description: str = "d", requires_ack: bool = True) -> str:
        """One publish: the hash, the timeline, the inbox, pending (as seed 002's MULTI did)."""
        self.r.hset(self.key("msg", mid), mapping={
            "id": mid, "type": msg_type, "from": sender, "to": to, "timestamp": stamp(ts),
            "requires_ack": "1" if requires_ack else "0", "acknowledged": "0", "subject": subject,
            "description": description})
        self.r.zadd(self.key("timeline"), {mid: ts})
        self.r.sadd(self.key("inbox", to), mid)
        if requires_ack:
            self.r.sadd(self.key("pending"), mid)
        self.ids.append(mid)
        return mid

    def ack(self, mid: str, by: str, ts: float, comment: str | None = None) -> None:
        fields = {"acknowledged": "1", "ack_by": by, "ack_timestamp": stamp(ts)}
        if comment:
            fields["ack_comment"] = comment
        self.r.hset(self.key("msg", mid), mapping=fields)
        self.r.srem(self.key("pending"), mid)

    def presence(self, instance: str, last: float, active: bool = True, session: str | None = None) -> None:
        fields = {f"{instance}.active": "1" if active else "0", f"{instance}.last_heartbeat": stamp(last)}
        if session:
            fields[f"{instance}.session_id"] = session
        self.r.hset(self.key("presence"), mapping=fields)

    def notify(self, instance: str, mid: str, msg_type: str, sender: str, ts: float, requires_ack: bool = True) -> None:
        event = {"event": "message_published", "message_id": mid, "type": msg_type, "from": sender, "to": instance,
                 "requires_ack": requires_ack, "timestamp": stamp(ts)}
        self.r.lpush(self.key("notifications", instance), json.dumps(event))

    def dump(self) -> dict[str, Any]:
        """Every key under the prefix with its type and value (what a read-only import must leave unchanged)."""
        out = {}
        for k in self.r.scan_iter(match=self.prefix + ":*"):
            kind = self.r.type(k).decode()
            command = {"hash": ("HGETALL", k), "string": ("GET", k), "zset": ("ZRANGE", k, 0, -1, "WITHSCORES"),
                       "set": ("SMEMBERS", k), "list": ("LRANGE", k, 0, -1)}[kind]
            value = self.r.execute_command(*command)
            out[k] = (kind, sorted(value) if kind == "set" else value)
        return out


def redis_or_skip() -> Any:
    """A client of the test Redis database; skip (or fail, in CI) when it is unreachable."""
    try:
        import redis
    except ImportError:
        if REQUIRE_REDIS:
            pytest.fail("COORD_REQUIRE_REDIS=1 but the redis package is missing: pip install 'coordhub[redis]'")
        pytest.skip("the redis package is not installed")
    r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        r.ping()
    except redis.RedisError as exc:
        if REQUIRE_REDIS:
            pytest.fail(f"Redis required (COORD_REQUIRE_REDIS=1) but unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    return r


@pytest.fixture
def seed() -> Iterator[SeedRedis]:
    """An empty seed-002 key space of this test's own in the real Redis, deleted afterwards."""
    r = redis_or_skip()
    s = SeedRedis(r, f"t{uuid.uuid4().hex[:10]}:coord")
    try:
        yield s
    finally:
        keys = list(r.scan_iter(match=s.prefix + ":*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveHub]:
    """A real ``coord serve`` on SQLite or on PostgreSQL (the scratch database, emptied first)."""
    args: tuple[str, ...] = ()
    if request.param == "postgres":
        from tests.conftest import _empty_pg

        url = request.getfixturevalue("pg_url")
        _empty_pg(url)
        args = ("--database-url", url)
    h = LiveHub(tmp_path / "hub", args=args).start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def cli(tmp_path: Path) -> Coord:
    """The real ``coord`` CLI in an isolated environment, in a git work tree."""
    work = git_init(tmp_path / "work")
    return Coord(cwd=work, env=isolated_env(tmp_path / "env"))


def admin_cli(cli: Coord, hub: LiveHub) -> Coord:
    """``coord`` pointed at ``hub`` as its admin (its data dir: the local admin.token)."""
    env = {**cli.env, "COORD_DATA_DIR": str(hub.data_dir)}
    return cli.with_(url=hub.url, env=env)


@pytest.fixture
def api_isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For the Python API's tests: a private HOME and project (the softfail queue and the trusted URLs live
    there), and no COORD_* of the outer environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in ("COORD_URL", "COORD_TOKEN", "COORD_SESSION", "CLAUDE_INSTANCE_ID", "COORD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(git_init(tmp_path / "project"))
    yield
