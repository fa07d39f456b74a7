"""A stream whose filter matches little catches up in bounded reads, writing between them (review: ``?after=0`` with a
filter matching nothing read the whole log in one go, writing nothing), and still gets every matching event once."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from coordhub.api.routes import events as events_route
from coordhub.core import events
from coordhub.server import SYSTEM
from coordhub.store.sqlite import SQLiteStore
from coordhub.store.tables.system import Events
from tests.api.test_wire import ChunkedSse, serving

N = 5000  # non-matching events before the matching one
BOUND = 500  # SCAN_IDS for the test


def fill_log(path: Path, kinds: list[str]) -> None:
    """A hub's SQLite file at ``path`` whose event log holds one event of each of ``kinds`` (ids 1, 2, …, in
    order), written straight to the log (not to the ring)."""
    store = SQLiteStore(path)
    store.open()
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events (kind, session_id, payload, created_at) VALUES (?, NULL, ?, 0)",
                     ((kind, json.dumps({"n": n})) for n, kind in enumerate(kinds)))
    conn.execute("COMMIT")
    conn.close()


def _fill(path: Path) -> None:
    """``N`` ``presence.seen`` events, then one ``hook.match``."""
    fill_log(path, ["presence.seen"] * N + ["hook.match"])


def test_a_filter_matching_little_reads_a_bounded_window_then_writes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_route, "SCAN_IDS", BOUND, raising=False)  # (absent before the fix)
    _fill(tmp_path / "coord.db")
    order: list[tuple[str, Any]] = []  # reads of the events page and the stream's writes, as they happened
    page = Events.page

    def counted(self: Events, after_id: int, limit: int, max_bytes: int, **where: Any) -> list[Any]:
        rows = page(self, after_id, limit, max_bytes, **where)
        order.append(("read", (after_id, rows[-1]["id"] if rows else where.get("through_id"))))
        return rows

    make = events_route._stream

    def recorded(*args: Any, **kwargs: Any) -> Any:
        body = make(*args, **kwargs)

        async def wrapped(send: Any, through: Any) -> None:
            async def send_(message: Any) -> None:
                order.append(("write", message.get("body", b"")))
                await send(message)
            await body(send_, None)  # every write through ``send``, so each is seen here
        return wrapped

    monkeypatch.setattr(Events, "page", counted)
    monkeypatch.setattr(events_route, "_stream", recorded)
    with serving(tmp_path) as hub:
        s = socket.create_connection(("127.0.0.1", hub.port))
        s.sendall(f"GET /api/coord/events?after=0&kinds=hook.match HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {hub.admin}\r\n\r\n".encode())
        r = ChunkedSse(s)
        r.connected()
        r.s.settimeout(20)
        while b"event: hook.match" not in r.body:
            r._fill()
            r._decode()
        # a matching event after the stream went on: it arrives live, once
        hub.hub.mutate_sync(SYSTEM, lambda tx, now: events.emit(tx, "hook.match", now, session_id=None))
        while r.body.count(b"event: hook.match") < 2:
            r._fill()
            r._decode()
        s.close()

    reads = [what for kind, what in order if kind == "read"]
    assert reads and all(end - start <= BOUND for start, end in reads)  # each read looks through one window
    assert all(b[0] >= a[1] for a, b in zip(reads, reads[1:], strict=False))  # and none twice
    assert len(reads) >= N // BOUND
    kinds = [kind for kind, _ in order if kind in ("read", "write")]
    first = kinds.index("read")
    # never two reads without a write between them: the scan is paced by the client's reading
    assert all(not (a == b == "read") for a, b in zip(kinds[first:], kinds[first + 1:], strict=False))
    ids = [int(line[4:]) for line in r.body.split(b"\n") if line.startswith(b"id: ")]
    assert len(ids) == 2 and ids[0] == N + 1 < ids[1]  # each matching event once, in order
    assert b": scanned through " in r.body
