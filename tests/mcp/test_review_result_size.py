"""Review: what one session writes cannot make another's MCP list of messages unbounded.

A message body may hold 512 KiB (the hub's bound). Before, ``inbox`` (20 by
default, up to 500) and ``wait_for_messages`` answered every body whole, so a
few messages from any token put megabytes into the reader's context in one
call.
"""

from __future__ import annotations

import pytest

from tests.mcp.conftest import McpHub, ok, text

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
BIG = 500_000
LISTED_BODY = 4000  # coordhub.mcp.bounds.LISTED_BODY


async def test_listed_bodies_are_cut_and_read_message_gives_one_whole(mcp_hub: McpHub) -> None:
    b = await mcp_hub.token(B)
    for i in range(3):
        await mcp_hub.rest("POST", "/api/coord/messages", b,
                           json={"to_session": A, "subject": f"big {i}", "body": f"{i}" * BIG})
    await mcp_hub.rest("POST", "/api/coord/messages", b, json={"to_session": A, "subject": "small", "body": "hi"})
    async with mcp_hub.client(A) as c:
        for tool, args in (("inbox", {}), ("wait_for_messages", {"timeout": 0})):
            result = await c.call_tool(tool, args)
            listed = ok(result)["messages"]
            assert len(text(result)) < 4 * (LISTED_BODY + 2000), tool
            assert [m["body"] for m in listed] == [f"{i}" * LISTED_BODY for i in range(3)] + ["hi"]
            assert [m.get("body_truncated") for m in listed] == [True, True, True, None]
            assert [m.get("body_chars") for m in listed] == [BIG, BIG, BIG, None]
        whole = ok(await c.call_tool("read_message", {"message_id": listed[0]["id"]}))
        assert whole["body"] == "0" * BIG and "body_truncated" not in whole
