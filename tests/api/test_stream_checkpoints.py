"""A stream that asked for checkpoints (``?checkpoints=1``) sends ``id:`` frames with no data where its filter passed
over ids, so a reconnect resumes past what was already looked through (review: a ``kinds=`` stream that matched
little resumed from its last event and scanned the whole log again), and still gets every matching event once, in
order. A stream that did not ask gets no such frame: older clients take every ``id:`` for an event."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from coordhub.api import fanout
from coordhub.api.routes import events as events_route
from coordhub.core import events
from coordhub.server import SYSTEM
from coordhub.store.tables.system import Events
from tests.api.test_stream_scan_bound import fill_log
from tests.api.test_wire import ChunkedSse, serving

N = 5000  # non-matching events after the first matching one
BOUND = 500  # SCAN_IDS for the test


def _fill(path: Path) -> None:
    """One ``hook.match`` (id 1), then ``N`` ``presence.seen`` (ids 2 to N + 1)."""
    fill_log(path, ["hook.match"] + ["presence.seen"] * N)


def frames(body: bytes) -> list[dict[str, Any]]:
    """The complete frames of an SSE body, parsed as the WHATWG HTML spec says (comments and ``retry`` skipped):
    each a dict of ``id`` (as of that frame, kept across frames), ``event`` and ``data`` (None: no data line)."""
    out: list[dict[str, Any]] = []
    last_id = ""
    for block in body.decode().split("\n\n")[:-1]:
        kind, data = "message", None
        fields = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not fields:  # comments only: nothing to dispatch, nothing set
            continue
        for line in fields:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                last_id = value
            elif name == "event":
                kind = value
            elif name == "data":
                data = value if data is None else data + "\n" + value
        out.append({"id": last_id, "event": kind, "data": data})
    return out


def last_event_id(body: bytes) -> int:
    """What an EventSource would send as ``Last-Event-ID`` after reading ``body``."""
    ids = [f["id"] for f in frames(body) if f["id"]]
    return int(ids[-1]) if ids else 0


def delivered(body: bytes) -> list[int]:
    """The ids of the events the body dispatches (frames with data)."""
    return [int(f["id"]) for f in frames(body) if f["data"] is not None]


def _open(port: int, token: str, query: str, last: int | None = None) -> ChunkedSse:
    header = f"Last-Event-ID: {last}\r\n" if last is not None else ""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /api/coord/events?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{header}\r\n"
              .encode())
    r = ChunkedSse(s)
    r.connected()
    return r


def _read_until(r: ChunkedSse, want: bytes, timeout: float = 20.0) -> None:
    r.s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while want not in r.body:
        assert time.monotonic() < deadline, f"no {want!r} in {r.body[-300:]!r}"
        r._fill()
        r._decode()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """Every read of the events page from the store: (after id, last id returned or the window's end)."""
    monkeypatch.setattr(events_route, "SCAN_IDS", BOUND)
    seen: list[tuple[int, int | None]] = []
    page = Events.page

    def counted(self: Events, after_id: int, limit: int, max_bytes: int, **where: Any) -> list[Any]:
        rows = page(self, after_id, limit, max_bytes, **where)
        seen.append((after_id, rows[-1]["id"] if rows else where.get("through_id")))
        return rows

    monkeypatch.setattr(Events, "page", counted)
    return seen


def test_a_reconnect_resumes_from_the_checkpoint_not_the_last_event(tmp_path: Path,
                                                                     reads: list[tuple[int, int | None]]) -> None:
    _fill(tmp_path / "coord.db")
    with serving(tmp_path) as hub:
        assert hub.hub.bus is not None
        end = hub.hub.bus.last_id  # N + 1, and what the hub wrote starting (the admin token's event)
        first = _open(hub.port, hub.admin, "after=0&kinds=hook.match&checkpoints=1")
        _read_until(first, f": scanned through {end}\n".encode())  # the last window, up to the log's end
        first.s.close()
        assert delivered(first.body) == [1]
        resume = last_event_id(first.body)  # what EventSource resumes with
        scanned = len(reads)
        assert scanned >= N // BOUND

        # while it was away: more events, two of them matching
        def emit(tx: Any, now: float) -> list[int]:
            return [events.emit(tx, kind, now, session_id=None)
                    for kind in ["presence.seen"] * 3 + ["hook.match"] + ["presence.seen"] * 3 + ["hook.match"]]

        new = hub.hub.mutate_sync(SYSTEM, emit).body
        second = _open(hub.port, hub.admin, "kinds=hook.match&checkpoints=1", last=resume)
        _read_until(second, f"id: {new[-1]}\n".encode())
        # and one live
        live = hub.hub.mutate_sync(SYSTEM, lambda tx, now: events.emit(tx, "hook.match", now, session_id=None)).body
        _read_until(second, f"id: {live}\n".encode())
        second.s.close()

    assert all(start >= end for start, _ in reads[scanned:])  # the resume looked through only the new ids
    assert resume == end  # the checkpoint, not the last event delivered (1)
    assert delivered(first.body) + delivered(second.body) == [1, new[3], new[7], live]  # each once, in order
    checkpoints = [f for f in frames(first.body) if f["data"] is None and f["id"]]
    assert checkpoints and all(int(f["id"]) > 1 for f in checkpoints)


def test_a_stream_that_did_not_ask_gets_no_checkpoint(tmp_path: Path, reads: list[tuple[int, int | None]]) -> None:
    _fill(tmp_path / "coord.db")
    with serving(tmp_path) as hub:
        assert hub.hub.bus is not None
        end = hub.hub.bus.last_id
        r = _open(hub.port, hub.admin, "after=0&kinds=hook.match")
        _read_until(r, f": scanned through {end}\n".encode())
        r.s.close()
    assert [line for line in r.body.split(b"\n") if line.startswith(b"id: ")] == [b"id: 1"]  # the event's only
    assert last_event_id(r.body) == 1


def _row(rid: int) -> dict[str, Any]:
    return {"id": rid, "kind": "presence.seen", "session_id": None, "project_key": None, "payload": "{}",
            "created_at": 0.0}


@pytest.mark.parametrize("asked", [True, False])
def test_a_live_keepalive_carries_the_cursor_past_filtered_events(asked: bool) -> None:
    async def live() -> None:
        fan = fanout.Fanout(lambda row: b"", 15.0)
        sub = fan.join(lambda row: False, 10, checkpoints=asked)  # a filter that keeps nothing
        sub.go_live()
        fan.publish([_row(11), _row(12)])
        assert sub.take() == [] and sub.sent == 12  # skipped, no frame for either
        assert sub.keepalive() == (b": ping\nid: 12\n\n" if asked else fanout.PING)
        fan.leave(sub)

    asyncio.run(live())
