"""Id arguments are checked before a request path is built from them; an answer of the wrong shape is a tool error.

Review: ``read_message`` and ``reply`` with ``message_id="wait"`` called
``GET /api/coord/messages/wait`` (a 30 s long poll holding a stream slot),
then crashed on its list answer ("Error executing tool read_message", a
traceback in the hub's log).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from starlette.routing import Route

from coordhub.client.aio import AsyncCoordClient
from coordhub.core.orgturn import RESERVED_IDS
from coordhub.mcp.connect import CallerContext, FixedConnector, call_list, call_object
from coordhub.mcp.server import build_server
from coordhub.mcp.tools import API
from tests.mcp.conftest import MODES, McpHub, error, ok

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
NOT_IDS = ["wait", "check", "../locks", "x/y", "", "  ", "7b0c1f4e-8d4e-4a57-9a51", "msg-1a2b3c4d?x=1"]
ID_TOOLS = [  # every tool with an id argument that goes into a request path, with its other required arguments
    ("reply", "message_id", {"body": "b"}),
    ("read_message", "message_id", {}),
    ("ack_message", "message_id", {}),
    ("renew_lease", "lease_id", {}),
    ("release_lease", "lease_id", {}),
    ("complete_todo", "todo_id", {}),
    ("get_workflow", "workflow_id", {}),
    ("update_work_item", "item_id", {"status": "in_progress"}),
]


@pytest.mark.parametrize("mode", MODES)
async def test_message_id_wait_is_refused_at_once_not_sent_to_the_long_poll(mcp_hub: McpHub, mode: str,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    async with mcp_hub.client(A, mode) as a:
        for name, args in (("read_message", {"message_id": "wait"}), ("reply", {"message_id": "wait", "body": "x"})):
            started = time.monotonic()
            with anyio.fail_after(10):  # the long poll held the call 30 s
                text = error(await a.call_tool(name, args))
            assert time.monotonic() - started < 5
            assert text == f"Error executing tool {name}: invalid: message_id: 'wait' is not a valid id " \
                           "(ids are UUIDs such as 019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12)"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback in the hub's log


@pytest.mark.parametrize(("tool", "field", "rest"), ID_TOOLS)
async def test_every_id_argument_that_is_not_an_id_is_refused(mcp_hub: McpHub, tool: str, field: str,
                                                              rest: dict[str, Any]) -> None:
    async with mcp_hub.client(A) as a:
        for bad in NOT_IDS:
            text = error(await a.call_tool(tool, {field: bad, **rest}))
            assert f"invalid: {field}: " in text and "is not a valid id" in text, (bad, text)


async def test_ids_in_any_uuid_spelling_reach_their_record(mcp_hub: McpHub) -> None:
    async with mcp_hub.client(A) as a, mcp_hub.client(B) as b:
        sent = ok(await a.call_tool("send_message", {"to": B, "subject": "hi"}))
        for spelling in (sent["id"].upper(), "{" + sent["id"] + "}", uuid.UUID(sent["id"]).hex,
                         f"urn:uuid:{sent['id']}"):
            assert ok(await b.call_tool("read_message", {"message_id": spelling}))["id"] == sent["id"]
        answer = ok(await b.call_tool("reply", {"message_id": sent["id"].upper(), "body": "yes"}))
        assert answer["reply_to"] == sent["id"]
        lease = ok(await a.call_tool("claim_lease", {"project_key": "p", "resource": "src/"}))
        released = ok(await a.call_tool("release_lease", {"lease_id": lease["id"].upper()}))
        assert released["state"] == "released"
        missing = error(await a.call_tool("get_workflow", {"workflow_id": str(uuid.uuid4())}))
        assert "not_found" in missing  # a well-formed id of no record: the hub's 404, as before


async def test_conversation_ids_are_slugs_and_route_names_are_not_shown(mcp_hub: McpHub) -> None:
    async with mcp_hub.client(A) as a:
        for bad in ("../keys", "a/b", "", "-x", "x" * 129, "inbox?x=1"):
            for tool in ("conv_show", "conv_release"):
                text = error(await a.call_tool(tool, {"conversation_id": bad}))
                assert "invalid: conversation_id: " in text and "is not a valid id" in text, (tool, bad, text)
        for name in sorted(RESERVED_IDS):  # GET /conversations/inbox is the inbox, not a conversation
            text = error(await a.call_tool("conv_show", {"conversation_id": name}))
            assert f"invalid: conversation_id: '{name}' names a hub route" in text, text
        assert "not_found" in error(await a.call_tool("conv_show", {"conversation_id": "prep-fixup"}))


def test_the_route_names_are_every_one_segment_route_beside_a_conversation() -> None:
    """A route added beside ``GET /conversations/{conversation_id}`` must be added to RESERVED_IDS."""
    from coordhub.api.routes.conversations import router

    prefix = "/api/coord/conversations/"
    literal = set()
    for route in router.routes:
        path = getattr(route, "path", "")
        tail = path.removeprefix(prefix) if path.startswith(prefix) else path.lstrip("/")
        if isinstance(route, Route) and "GET" in (route.methods or ()) and tail and "/" not in tail \
                and "{" not in tail:
            literal.add(tail)
    assert literal and literal <= RESERVED_IDS, literal - RESERVED_IDS


@asynccontextmanager
async def caller_context(hub: McpHub, session: str) -> AsyncIterator[CallerContext]:
    """A tool's context whose calls reach ``hub``'s app in-process as ``session``."""
    async with AsyncCoordClient("http://hub", await hub.token(session), app=hub.app) as client:
        connector = FixedConnector(client)

        @asynccontextmanager
        async def connect() -> AsyncIterator[FixedConnector]:
            yield connector

        yield CallerContext(build_server("default", connect), connector)


async def test_an_answer_of_the_wrong_shape_is_a_tool_error_not_a_crash(mcp_hub: McpHub) -> None:
    async with caller_context(mcp_hub, A) as ctx:
        assert await call_list(ctx, "GET", f"{API}/messages") == []
        with pytest.raises(ToolError, match=r"^unexpected_answer: the hub answered GET /api/coord/messages with "
                                            r"list where the tool expects an object$"):
            await call_object(ctx, "GET", f"{API}/messages")
        with pytest.raises(ToolError, match=r"^unexpected_answer: .* with dict where the tool expects a list$"):
            await call_list(ctx, "GET", f"{API}/status")
