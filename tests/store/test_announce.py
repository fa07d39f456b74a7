"""The PostgreSQL LISTEN thread (coordhub.store.announce) and the hub's hand-over from it to the serving loop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coordhub.core.hub import Hub
from coordhub.store import announce
from coordhub.store.sqlite import SQLiteStore


class _Conn:
    """A LISTEN connection that is never told anything."""

    def __init__(self) -> None:
        self.closed = False
        self.broken = False

    def execute(self, sql: str) -> None:
        pass

    def notifies(self, timeout: float) -> list[Any]:
        time.sleep(min(timeout, 0.01))
        return []

    def close(self) -> None:
        self.closed = True


def test_a_failing_announce_callback_neither_ends_the_thread_nor_leaves_its_connection_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The callback run after each (re)connect raised (the serving loop had closed): the thread died of it and
    its connection was never closed (psycopg's ResourceWarning later failed an unrelated test). Now it counts as
    a lost connection: closed, retried after a pause, the thread alive until stopped."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    conns: list[_Conn] = []

    def connect() -> _Conn:
        conns.append(_Conn())
        return conns[-1]

    def on_announce(origin: str | None, high_water: int | None) -> None:
        raise RuntimeError("Event loop is closed")

    listener = announce.Listener(connect, on_announce)
    listener.start()
    try:
        deadline = time.monotonic() + 5
        while len(conns) < 2:
            assert time.monotonic() < deadline and not died, died
            time.sleep(0.01)
        assert all(c.closed for c in conns[:-1]) and listener.state.error == "RuntimeError"
        assert len(conns) <= 3  # a pause between tries (0.2 s), not a tight loop of connections
    finally:
        listener.stop()
    assert not died and all(c.closed for c in conns)


def test_an_announcement_after_the_serving_loop_closed_is_dropped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener can outlive the loop the bus was started on by a moment (a test's client closed before its
    hub): handing an announcement to that loop raised 'Event loop is closed' on the listening thread."""
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        hub = Hub(store)
        told: list[Any] = []
        monkeypatch.setattr(store, "listen", lambda callback: told.append(callback) or None)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(hub.start_bus())
        hub.stop_bus()
        loop.close()
        told[0]("another-origin", 7)  # raised RuntimeError before
    finally:
        store.close()
