"""One token's many event streams resumed from the start of the log take turns at the store (review DoS).

A stream behind the in-memory ring reads and renders up to 1,000 events a page on a reader thread, in Python,
holding the GIL. One token's 32 streams opened with ``Last-Event-ID: 0`` over 30,000 events kept every reader
thread busy at once, the event loop got the GIL about one sample in ten, and ``/health`` waited up to 1.8-3.6 s
(real hub). Now a session's streams read the store one page at a time (:class:`coordhub.api.streams.ReadTurns`):
each still gets every event, and another session's stream reads meanwhile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx2

from tests.api.test_events import Subscriber
from tests.conftest import LiveHub

# Counts the store catch-up reads of each session that run at once, and the most seen, in a file the test reads.
PATCH = '''
import json, os, threading, time
import coordhub.api.routes.events as ev
_real, _lock, _now, _most = ev._catch_up, threading.Lock(), {}, {}
def _catch_up(cursor, keep, checkpoints=False):
    page = _real(cursor, keep, checkpoints)
    def counted(tx, now):
        with _lock:
            _now[keep.viewer] = _now.get(keep.viewer, 0) + 1
            _most[keep.viewer] = max(_most.get(keep.viewer, 0), _now[keep.viewer])
            with open(os.environ["COORD_TEST_READS"], "w") as f:
                json.dump(_most, f)
        try:
            time.sleep(0.05)  # a page that takes a while, as a long one does: overlapping reads overlap here
            return page(tx, now)
        finally:
            with _lock:
                _now[keep.viewer] -= 1
    return counted
ev._catch_up = _catch_up
'''


def test_a_sessions_streams_catching_up_from_the_store_read_one_page_at_a_time(tmp_path: Path) -> None:
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(PATCH)
    reads = tmp_path / "reads.json"
    path = os.pathsep.join(p for p in (str(patch), os.environ.get("PYTHONPATH", "")) if p)
    hub = LiveHub(tmp_path / "hub", args=("--event-ring-bytes", "65536"),
                  env={"PYTHONPATH": path, "COORD_TEST_READS": str(reads)}).start()
    subscribers: list[Subscriber] = []
    try:
        a, b = hub.token("A/x"), hub.token("B/x")
        with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {a}"}) as c:
            for i in range(2500):  # three pages of the log for each stream
                assert c.post("/api/coord/messages", json={"subject": f"m{i}", "to_session": "A/x"}).status_code == 201
        total = len([e for e in _audit(hub) if e["kind"] == "message.sent"])
        assert total == 2500
        subscribers = [Subscriber(hub.url, {"Authorization": f"Bearer {a}"}, {"after": "0", "kinds": "message."})
                       for _ in range(4)]
        subscribers.append(Subscriber(hub.url, {"Authorization": f"Bearer {b}"}, {"after": "0"}))
        for s in subscribers[:4]:
            got = s.take(total, timeout=60)
            assert [e["payload"]["subject"] for e in got] == [f"m{i}" for i in range(2500)]
        most = json.loads(reads.read_text())
        assert most["A/x"] == 1, most  # four streams of one session, one store read at a time
        assert "B/x" in most  # the other session's stream read the store too
    finally:
        for s in subscribers:
            s.close()
        hub.stop()


def _audit(hub: LiveHub) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    after = 0
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin_token}"}) as c:
        while True:
            page = c.get("/api/coord/audit", params={"after": after, "limit": 1000}).json()
            if not page:
                return out
            out += page
            after = int(page[-1]["id"])


def test_turns_are_per_key_and_forgotten_when_unused() -> None:
    import asyncio

    from coordhub.api.streams import ReadTurns

    async def run() -> None:
        turns = ReadTurns(1)
        order: list[str] = []
        inside = asyncio.Event()
        release = asyncio.Event()

        async def hold(key: str, name: str) -> None:
            async with turns.turn(key):
                order.append(name)
                inside.set()
                await release.wait()

        first = asyncio.create_task(hold("a", "a1"))
        await inside.wait()
        second = asyncio.create_task(hold("a", "a2"))
        other = asyncio.create_task(hold("b", "b1"))
        await asyncio.sleep(0.01)
        assert order == ["a1", "b1"] and turns.keys() == 2  # a2 waits its turn; b's key is its own
        release.set()
        await asyncio.gather(first, second, other)
        assert order == ["a1", "b1", "a2"] and turns.keys() == 0

    asyncio.run(run())
