"""Retried tool calls have no second effect: the ``idempotency_key`` argument and ``/mcp``'s ``Idempotency-Key``.

Review: the same ``tools/call send_message`` POSTed twice to ``/mcp`` with
``Idempotency-Key: k-987654`` created two messages; no tool took a key, so
a retried call duplicated messages, todos and conversation turns.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client

from coordhub.client.aio import AsyncCoordClient
from coordhub.mcp.connect import FixedConnector
from coordhub.mcp.http import PATH, ready
from coordhub.mcp.server import PROFILES, READ_ONLY, build_server
from tests.mcp.conftest import McpHub, error, ok
from tests.mcp.test_direct import LEGACY, MODERN, direct, request, sdk_only

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
# writes that only set a mark a repeat leaves as it is (read, acked, engaged, heartbeat, offline, a cursor moved
# to an event id), so they take no key
MARKS = {"read_message", "ack_message", "engage", "coord_heartbeat", "coord_deregister_presence",
         "coord_get_notifications"}


async def inbox_of(hub: McpHub, session: str) -> list[dict[str, Any]]:
    """Every message of ``session``'s inbox (REST)."""
    found: list[dict[str, Any]] = await hub.rest("GET", "/api/coord/messages", await hub.token(session),
                                                 params={"unread_only": "false", "limit": 500})
    return found


@pytest.mark.parametrize("way", ["direct", "direct-2026", "sdk"])
async def test_one_tools_call_posted_twice_with_an_idempotency_key_header_sends_one_message(
        mcp_hub: McpHub, way: str) -> None:
    """The reviewer's repro: the same POST to /mcp twice with ``Idempotency-Key: k-987654``."""
    await ready(mcp_hub.app)
    await mcp_hub.token(B)
    headers, body = request("send_message", {"to": B, "subject": "deploy done", "body": "v2"},
                            MODERN if way == "direct-2026" else LEGACY)
    headers = {**headers, "Idempotency-Key": "k-987654", "Authorization": f"Bearer {await mcp_hub.token(A)}"}
    answers = []
    before = direct(mcp_hub).answered
    async with mcp_hub.http(headers) as h:
        if way == "sdk":
            with sdk_only(mcp_hub):
                answers = [await h.post(PATH, content=body) for _ in range(2)]
        else:
            answers = [await h.post(PATH, content=body) for _ in range(2)]
    assert direct(mcp_hub).answered == before + (0 if way == "sdk" else 2)
    sent = [json.loads(r.text)["result"]["structuredContent"] for r in answers]
    assert [r.status_code for r in answers] == [200, 200]
    assert sent[0]["id"] == sent[1]["id"]
    assert [m["id"] for m in await inbox_of(mcp_hub, B)] == [sent[0]["id"]]


async def test_one_header_key_on_calls_of_two_tools_does_not_collide(mcp_hub: McpHub) -> None:
    """An MCP client that sets the header on every request: each tool's writes have their own key."""
    async with mcp_hub.client(A, headers={"Idempotency-Key": "k-1"}) as a, mcp_hub.client(B):
        sent = ok(await a.call_tool("send_message", {"to": B, "subject": "s"}))
        todo = ok(await a.call_tool("add_todo", {"text": "t", "project_key": "p"}))
        assert ok(await a.call_tool("send_message", {"to": B, "subject": "s"}))["id"] == sent["id"]
        assert ok(await a.call_tool("add_todo", {"text": "t", "project_key": "p"}))["id"] == todo["id"]
        assert ok(await a.call_tool("inbox", {}))["count"] == 0  # reads are not affected
        text = error(await a.call_tool("send_message", {"to": B, "subject": "other"}))
        assert text == ("Error executing tool send_message: idempotency_key_reused: key 'k-1' was already used "
                        "for a send_message call with other arguments; use a new key for a new call")
        # the argument takes precedence over the header
        other = ok(await a.call_tool("send_message", {"to": B, "subject": "other", "idempotency_key": "k-2"}))
    assert [m["id"] for m in await inbox_of(mcp_hub, B)] == [other["id"], sent["id"]]


async def test_the_idempotency_key_argument_makes_each_write_tool_retry_safe(mcp_hub: McpHub) -> None:
    async with mcp_hub.client(A, tools="all") as a, mcp_hub.client(B, tools="all") as b:
        async def twice(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
            first = ok(await client.call_tool(tool, {**args, "idempotency_key": f"key-{tool}"}))
            assert ok(await client.call_tool(tool, {**args, "idempotency_key": f"key-{tool}"})) == first, tool
            return first

        sent = await twice(a, "send_message", {"to": B, "subject": "review?", "requires_ack": True})
        answer = await twice(b, "reply", {"message_id": sent["id"], "body": "ok"})
        published = await twice(a, "coord_publish_message", {"msg_type": "GENERAL", "subject": "p",
                                                              "description": "d", "to_instance": B})
        acked = await twice(b, "coord_ack_message", {"message_id": published["message_id"], "comment": "seen"})
        assert [m["id"] for m in await inbox_of(mcp_hub, A)] == [acked["comment_message_id"], answer["id"]]
        assert len(await inbox_of(mcp_hub, B)) == 2

        todo = await twice(a, "add_todo", {"text": "docs", "project_key": "p"})
        await twice(a, "complete_todo", {"todo_id": todo["id"]})
        assert [t["id"] for t in ok(await a.call_tool("list_todos", {"status": "all"}))["todos"]] == [todo["id"]]

        lease = await twice(a, "claim_lease", {"project_key": "p", "resource": "src/"})
        await twice(a, "renew_lease", {"lease_id": lease["id"], "ttl_hours": 1})
        assert (await twice(a, "release_lease", {"lease_id": lease["id"]}))["state"] == "released"
        await twice(a, "set_component", {"project_key": "p", "component": "api", "state": "built"})
        await twice(a, "coord_register_presence", {"role": A})

        for bad in ("", "k" * 129, "café", "tab\there"):
            text = error(await a.call_tool("add_todo", {"text": "x", "idempotency_key": bad}))
            assert "invalid: idempotency_key: must be 1-128 printable ASCII characters" in text, bad
    async with mcp_hub.client(A, headers={"Idempotency-Key": "k" * 129}) as a:
        text = error(await a.call_tool("add_todo", {"text": "x"}))
        assert "invalid: Idempotency-Key header: must be 1-128 printable ASCII characters" in text
    assert len(await mcp_hub.rest("GET", "/api/coord/todos", params={"status": "all"})) == 1


async def test_conversation_turns_are_retry_safe(mcp_hub: McpHub) -> None:
    await mcp_hub.declare(A, "host-a", "alpha")
    await mcp_hub.declare(B, "host-b", "beta")
    async with mcp_hub.client(A) as a, mcp_hub.client(B) as b:
        args = {"to": "host-b.beta", "conversation_id": "prep-fixup", "type": "progress", "body": "step 1 done",
                "idempotency_key": "turn-1"}
        first = ok(await a.call_tool("conv_send", args))
        assert ok(await a.call_tool("conv_send", args)) == first
        shown = ok(await a.call_tool("conv_show", {"conversation_id": "prep-fixup"}))
        assert [t["sequence"] for t in shown["turns"]] == [first["sequence"]]
        release = {"conversation_id": "prep-fixup", "idempotency_key": "rel-1"}
        assert ok(await b.call_tool("conv_release", release)) == ok(await b.call_tool("conv_release", release))


def test_every_tool_that_writes_takes_an_idempotency_key() -> None:
    """A new tool that writes must take one too (or be a mark, listed in MARKS)."""
    from coordhub.mcp.server import profile_tools

    tools = profile_tools("all")
    assert set(tools) == {fn.__name__ for fn in PROFILES["all"]}
    for name, tool in tools.items():
        takes = "idempotency_key" in tool.parameters["properties"]
        assert takes == (name not in READ_ONLY and name not in MARKS), name


class AnswerLost(httpx2.AsyncBaseTransport):
    """The hub's app over a network that loses the answer to the first write after the hub made it."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx2.ASGITransport(app=app)
        self.lost = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" and not self.lost:
            self.lost += 1
            await response.aread()
            raise httpx2.ReadTimeout("the answer was lost", request=request)
        return response


async def test_a_stdio_write_whose_answer_was_lost_names_the_key_to_retry_with(mcp_hub: McpHub) -> None:
    """``coord mcp`` reaches the hub over the network: an agent retrying after a timeout must not send twice."""
    await mcp_hub.token(B)
    network = AnswerLost(mcp_hub.app)
    async with AsyncCoordClient("http://hub", await mcp_hub.token(A), transport=network) as client:
        connector = FixedConnector(client)

        @asynccontextmanager
        async def connect() -> AsyncIterator[FixedConnector]:
            yield connector

        async with Client(build_server("default", connect)) as shim:
            args = {"to": B, "subject": "deploy?"}
            text = error(await shim.call_tool("send_message", args))
            found = re.search(r"call send_message again with idempotency_key='([0-9a-f-]{36})' to retry it "
                              r"without a second effect$", text)
            assert text.startswith("Error executing tool send_message: hub_unreachable: ") and found, text
            made = await inbox_of(mcp_hub, B)
            assert len(made) == 1  # the hub made it; only the answer was lost
            again = ok(await shim.call_tool("send_message", {**args, "idempotency_key": found.group(1)}))
    assert again["id"] == made[0]["id"] and network.lost == 1
    assert [m["id"] for m in await inbox_of(mcp_hub, B)] == [again["id"]]
