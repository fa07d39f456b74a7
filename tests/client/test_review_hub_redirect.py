"""A redirect is no hub's answer: the write was not applied, and a queued one stays queued.

Before the fix both clients took a 3xx for a 2xx: a reverse proxy sending
``http://`` to ``https://`` (301) made every write look done, and a drain
dropped the queued writes it answered as applied, although none reached the
hub. The client follows no redirect (its token would go where the answer
says), so it says so instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.client import HubError, Queued
from coordhub.client.wire import Hub, HubUnreachable
from tests.client.conftest import TOKEN, sync_client
from tests.client.test_wire import Canned


def test_a_redirected_write_is_not_taken_as_done_and_a_queued_one_stays_queued(canned: Canned,
                                                                               tmp_path: Path) -> None:
    canned.answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}"
    with sync_client(canned.url, tmp_path) as client:
        assert isinstance(client.add_todo("queued while the hub is down"), Queued)
    canned.answer = (b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://elsewhere.invalid/\r\n"
                     b"content-length: 0\r\n\r\n")
    with sync_client(canned.url, tmp_path) as client:
        drained = client.sync()
        assert (drained.applied, drained.left) == (0, 1)  # kept for when the URL is right, not dropped as applied
        assert "301" in (client.stop_reason or "")
    (tmp_path / "coord-queue.jsonl").unlink()
    with sync_client(canned.url, tmp_path) as client, pytest.raises(HubError) as err:
        client.add_todo("sent to a URL that redirects")
    assert err.value.status == 301 and "redirect" in err.value.message
    with pytest.raises(HubUnreachable, match="301"):
        Hub(canned.url, TOKEN, None, 2.0).post("/messages/unshown", {})


def test_the_asyncio_client_takes_no_redirect_for_an_answer(canned: Canned) -> None:
    """Review: the asyncio client (the MCP tools' and seed 002's) still took a 3xx for a 2xx, answering a write the
    redirect never let reach the hub with its empty body, as done."""
    canned.answer = (b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://elsewhere.invalid/\r\n"
                     b"content-length: 0\r\n\r\n")

    async def go() -> None:
        async with AsyncCoordClient(canned.url, TOKEN) as c:
            for method in ("POST", "GET"):
                with pytest.raises(HubError) as err:
                    await c.call(method, "/api/coord/todos", body={"title": "x"} if method == "POST" else None)
                assert (err.value.status, err.value.code) == (301, "not_applied")

    asyncio.run(go())
