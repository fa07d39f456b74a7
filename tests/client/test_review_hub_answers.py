"""Answers of a shape no hub gives end in the client's own errors, never in a traceback.

The server is real TCP on loopback (:class:`tests.client.test_wire.Canned`),
answering header numbers ``int`` refuses (``²``, which ``str.isdigit`` takes;
5,000 digits), a ``Retry-After`` of ``²``, error envelopes of another shape,
JSON nested 100,000 deep, an event stream whose ids are no numbers and a
``/health`` advertising a retention no float holds. Each was a traceback
(``ValueError``, ``AttributeError``, ``RecursionError``, ``OverflowError``)
before the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.client import HubError, Queued, Unreachable
from coordhub.client.wire import Hub, HubUnreachable
from tests.client.conftest import TOKEN, sync_client
from tests.client.test_wire import Canned, json_answer

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("number", ["\u00b2", "9" * 5000])
def test_header_numbers_int_refuses_end_the_paging_not_the_process(canned: Canned, tmp_path: Path,
                                                                   number: str) -> None:
    encoded = number.encode("latin-1")  # "²" as one byte: read as ISO-8859-1 by both clients
    canned.answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncoord-next-after-fence: %s\r\n"
                     b"coord-next-after: %s\r\ncontent-length: 11\r\n\r\n[{\"id\": 1}]" % (encoded, encoded))
    with sync_client(canned.url, tmp_path) as client:
        assert client.locks() == [{"id": 1}]
        assert client.conversation_inbox("m.p") == [{"id": 1}]
    assert Hub(canned.url, TOKEN, None, 2.0).pages("/locks", 100).rows == [{"id": 1}]


def test_a_retry_after_int_refuses_is_no_wait_and_no_traceback(canned: Canned, tmp_path: Path) -> None:
    canned.answer = "HTTP/1.1 503 Service Unavailable\r\nretry-after: \u00b2\r\ncontent-length: 2\r\n\r\n{}".encode()
    with sync_client(canned.url, tmp_path) as client:
        assert isinstance(client.add_todo("x"), Queued)
    assert len(canned.requests) == 1  # no second attempt after a wait the header does not say


@pytest.mark.parametrize("body", [b'{"error": "nope"}', b'{"error": {"code": 7, "message": ["a"]}}', b"[1]"])
def test_a_refusal_of_another_shape_is_a_hub_error(canned: Canned, tmp_path: Path, body: bytes) -> None:
    canned.answer = json_answer(body, "400 Bad Request")
    with sync_client(canned.url, tmp_path) as client, pytest.raises(HubError) as err:
        client.call("GET", "/api/coord/status")
    assert err.value.status == 400 and err.value.code == "error"
    assert isinstance(err.value.message, str)


def test_json_nested_without_end_is_no_traceback(canned: Canned, tmp_path: Path) -> None:
    canned.answer = json_answer(DEEP, "400 Bad Request")
    with sync_client(canned.url, tmp_path) as client, pytest.raises(HubError) as err:
        client.call("GET", "/api/coord/status")
    assert err.value.code == "bad_response"
    canned.answer = json_answer(DEEP)
    with pytest.raises(HubUnreachable, match="not JSON"):
        Hub(canned.url, TOKEN, None, 2.0).get("/status")


@pytest.mark.anyio
async def test_the_async_client_takes_json_nested_without_end_as_no_json(canned: Canned) -> None:
    canned.answer = json_answer(DEEP)
    async with AsyncCoordClient(canned.url, TOKEN, timeout=5.0) as client:
        assert await client.call("GET", "/api/coord/status") is None


def test_an_event_stream_of_another_shape_ends_with_unreachable(canned: Canned, tmp_path: Path) -> None:
    events = b"id: \xc2\xb2\ndata: {}\n\n"
    canned.answer = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-coord-cursor: \xc2\xb2\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(events), events))
    with sync_client(canned.url, tmp_path) as client, pytest.raises(Unreachable, match="not the hub's"):
        next(client.events(reconnect=False))


def test_a_retention_no_float_holds_is_forever_not_a_traceback(canned: Canned, tmp_path: Path) -> None:
    health = b'{"status": "ok", "idempotency_retention_hours": 1' + b"0" * 400 + b"}"
    canned.answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}"
    with sync_client(canned.url, tmp_path) as client:
        assert isinstance(client.add_todo("queued while the hub is down"), Queued)
    canned.answer = lambda request: (json_answer(health) if request.startswith(b"GET /health ")
                                     else json_answer(b"{}", "201 Created"))
    with sync_client(canned.url, tmp_path) as client:
        assert client.sync().applied == 1


@pytest.mark.parametrize("body", [b"null", b'{"leases": []}'])
def test_a_list_of_leases_that_is_no_list_is_unreachable(canned: Canned, tmp_path: Path, body: bytes) -> None:
    canned.answer = json_answer(body)
    with sync_client(canned.url, tmp_path) as client, pytest.raises(Unreachable, match="not a list"):
        client.locks()


def test_empty_pages_that_name_a_next_page_end_the_reading(canned: Canned, tmp_path: Path) -> None:
    """A hub's pages are never empty. A hostile one answering ``[]`` with an ever higher
    ``Coord-Next-After-Fence`` held the hooks' lease reading (``Hub.pages``: 50,172 requests in 20 s, so the
    session-start hook never answered) and ``CoordClient.locks`` in a loop without end."""
    fence = iter(range(1, 10**9))

    def answer(_request: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncoord-next-after-fence: %d\r\n"
                b"content-length: 2\r\n\r\n[]" % next(fence))

    canned.answer = answer
    listed = Hub(canned.url, TOKEN, None, 2.0).pages("/locks", 1_000)
    assert (listed.rows, listed.more) == ([], False)
    assert len(canned.requests) == 1
    with sync_client(canned.url, tmp_path) as client:
        assert list(client.locks("p")) == []
    assert len(canned.requests) == 2
