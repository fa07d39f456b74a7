"""A drain the hub rate-limits (429) stops and keeps the rest of the queue (:meth:`CoordClient.replay`).

A real ``coord serve`` with a small per-token rate limit and a softfail queue
of this client's own entries, longer than the limit's burst: a 429 is the hub
saying "not now", never a refusal of the write, so no entry may go to the
rejected file, and every one lands once the limit allows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client import ClientSettings, CoordClient, Queued
from coordhub.client.queue import RETRY, Entry
from coordhub.client.trust import origin
from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

SESSION = "DESKTOP-0O8A1RL/claude-main"
QUEUED = 8


@pytest.fixture
def limited_hub(tmp_path: Path) -> Iterator[LiveHub]:
    h = LiveHub(tmp_path / "hub", args=("--rate-limit", "10", "--rate-burst", "3")).start()
    try:
        yield h
    finally:
        h.stop()


def _queued(hub: LiveHub, token: str, tmp_path: Path, count: int = QUEUED) -> CoordClient:
    """A client of ``token`` whose softfail queue holds ``count`` todos of its own, none sent yet."""
    settings = ClientSettings(url=hub.url, token=token, session=None, user=None, machine=None,
                              queue_file=tmp_path / ".claude" / "coord-queue.jsonl", timeout=10.0)
    c = CoordClient(settings, sleep=lambda s: None)
    for n in range(count):
        c.queue.append(Entry("POST", "/api/coord/todos", {"text": f"queued {n}"}, str(uuid.uuid4()),
                             actor=c.actor, hub=origin(hub.url), reached=False))
    return c


def test_a_rate_limited_replay_stays_queued_and_is_never_rejected(limited_hub: LiveHub, tmp_path: Path) -> None:
    token = limited_hub.token(SESSION)
    with _queued(limited_hub, token, tmp_path) as c:
        d = c.sync()
        assert d.rejected == 0 and not c.queue.rejected.exists(), d
        assert d.left == QUEUED - d.applied and d.stopped == RETRY, d
        deadline = time.monotonic() + 20
        while len(c.queue) and time.monotonic() < deadline:
            time.sleep(0.2)  # the hub's limiter refills on its own clock
            assert c.sync().rejected == 0
        assert len(c.queue) == 0
    texts = [t["text"] for t in _read_when_allowed(limited_hub.url + "/api/coord/todos", token)]  # budget spent
    assert sorted(texts) == sorted(f"queued {n}" for n in range(QUEUED))


def test_a_newer_write_waits_behind_a_rate_limited_replay(limited_hub: LiveHub, tmp_path: Path) -> None:
    """The drain stopped at a 429: a write made now is queued behind the entries left, not sent ahead of them (a
    moment later the limit may let it through, and it would land before older writes)."""
    token = limited_hub.token(SESSION)
    with _queued(limited_hub, token, tmp_path) as c:
        newer = c.call("POST", "/api/coord/todos", body={"text": "newer"})  # its drain meets the 429 first
        assert isinstance(newer, Queued) and "rate-limiting" in newer.reason, newer
        deadline = time.monotonic() + 20
        while len(c.queue) and time.monotonic() < deadline:
            time.sleep(0.2)
            c.sync()
        assert len(c.queue) == 0
    todos = _read_when_allowed(limited_hub.url + "/api/coord/todos", token)  # the drain spent the budget
    assert [t["text"] for t in sorted(todos, key=lambda t: t["id"])][-1] == "newer"


def _read_when_allowed(url: str, token: str) -> Any:
    """GET ``url`` as ``token``, waiting out the hub's 429s (its limiter refills on its own clock)."""
    deadline = time.monotonic() + 20
    while True:
        r = httpx2.get(url, headers={"Authorization": f"Bearer {token}"})
        if r.status_code != 429 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.2)


def test_coord_sync_says_the_hub_is_rate_limiting_not_unreachable(limited_hub: LiveHub, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    token = limited_hub.token(SESSION)
    env = isolated_env(tmp_path / "env")
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):  # the CLI's own queue key
        monkeypatch.setenv(name, env[name])
    _queued(limited_hub, token, tmp_path, count=100).close()  # more than the CLI's start-up lets the limit refill
    queue = tmp_path / ".claude" / "coord-queue.jsonl"
    cli = Coord(tmp_path, env, limited_hub.url, token, ("--queue-file", str(queue)))
    r = cli("sync", "--json")
    assert "stopped" in r.json(), r
    stopped = r.json()["stopped"]
    assert "rate-limiting" in stopped and "unreachable" not in stopped, r
