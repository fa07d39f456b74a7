"""The client follows the SSE spec for a frame with an ``id:`` and no ``data:`` (WHATWG HTML, server-sent events:
no event is dispatched, the last event id is set): it yields no event for the hub's checkpoints, and resumes after
the last one (``Last-Event-ID``). Before, it took the frame for an event and stopped with ``Unreachable``.

The hub is :class:`tests.client.test_wire.Canned`: real TCP on loopback, one answer per connection, then closed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordhub.client.client import Unreachable
from tests.client.conftest import sync_client
from tests.client.test_wire import Canned


def _event(event_id: int) -> bytes:
    data = json.dumps({"id": event_id, "kind": "hook.match", "payload": {}})
    return f"id: {event_id}\nevent: hook.match\ndata: {data}\n\n".encode()


def _stream(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-coord-cursor: 0\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body))


def test_a_checkpoint_is_no_event_and_the_resume_starts_after_it(canned: Canned, tmp_path: Path) -> None:
    answers = iter([
        _stream(b"retry: 2000\n: connected\n\n" + _event(3) + b": scanned through 900\nid: 900\n\n"),
        _stream(b": connected\n\n" + b": ping\nid: 950\n\n" + _event(951)),
    ])
    canned.answer = lambda request: next(answers)
    with sync_client(canned.url, tmp_path) as client:
        stream = client.events(after=0, kinds="hook.match")
        got = [next(stream), next(stream)]
        stream.close()
    assert [e["id"] for e in got] == [3, 951]  # no empty event for either checkpoint
    first, second = canned.requests[:2]
    assert b"checkpoints=1" in first.split(b"\r\n")[0]  # asked for: a hub sends them to no client that did not ask
    assert b"\r\nlast-event-id: 0\r\n" in first.lower()
    assert b"\r\nlast-event-id: 900\r\n" in second.lower()  # the checkpoint, not the last event (3)


def test_a_checkpoint_whose_id_is_no_number_ends_with_unreachable(canned: Canned, tmp_path: Path) -> None:
    canned.answer = _stream(b"id: \xc2\xb2\n\n")
    with sync_client(canned.url, tmp_path) as client, pytest.raises(Unreachable, match="not the hub's"):
        next(client.events(reconnect=False))
