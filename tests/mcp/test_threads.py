"""``get_thread`` end to end: a real SDK client over streamable HTTP to ``/mcp`` of a hub served by uvicorn."""

from __future__ import annotations

import pytest

from tests.mcp.conftest import MODES, McpHub, error, ok

pytestmark = pytest.mark.anyio

A, B, C = "HOST-A/claude-main", "HOST-B/claude-main", "HOST-C/claude-main"


@pytest.mark.parametrize("mode", MODES)
async def test_get_thread_lists_what_you_may_read_oldest_first_and_pages(served_hub: McpHub, mode: str) -> None:
    async with (served_hub.client(A, mode) as a, served_hub.client(B, mode) as b,
                served_hub.client(C, mode) as c):
        root = ok(await a.call_tool("send_message", {"to": B, "subject": "plan?", "body": "step 1"}))
        answer = ok(await b.call_tool("reply", {"message_id": root["id"], "body": "agreed"}))
        ok(await b.call_tool("send_message", {"to": C, "subject": "aside", "thread_id": root["id"]}))
        ok(await c.call_tool("send_message", {"to": "all", "subject": "fyi", "thread_id": root["id"]}))

        whole = ok(await a.call_tool("get_thread", {"thread_id": root["id"]}))
        assert [m["subject"] for m in whole["messages"]] == ["plan?", "Re: plan?", "fyi"]  # not B's aside to C
        assert whole["count"] == 3 and "note" not in whole
        shouted = ok(await a.call_tool("get_thread", {"thread_id": root["id"].upper()}))  # before: no messages
        assert [m["id"] for m in shouted["messages"]] == [m["id"] for m in whole["messages"]]

        first = ok(await a.call_tool("get_thread", {"thread_id": root["id"], "limit": 1}))
        assert [m["id"] for m in first["messages"]] == [root["id"]]
        assert f"after_seq={root['seq']}" in first["note"]
        rest = ok(await a.call_tool("get_thread", {"thread_id": root["id"], "after_seq": root["seq"]}))
        assert [m["id"] for m in rest["messages"]][0] == answer["id"]

        assert "invalid" in error(await a.call_tool("get_thread", {"thread_id": ""}))
