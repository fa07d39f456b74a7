"""One tool call cannot put megabytes into an agent's context: ``conv_inbox``, ``conv_show`` and ``read_message``.

The hub pages conversations at about 4 MiB and a turn may hold 256 KiB (its
body, and its file with the body again); a message body may hold 512 KiB.
Before, ``conv_inbox`` and ``conv_show`` answered a whole hub page (measured:
8 pending turns of 200,000 characters made one ``conv_inbox`` result of
3.2 MB), and ``read_message`` answered whatever the hub sent. Each test goes
through the real SDK client to a real hub.
"""

from __future__ import annotations

import pytest

from tests.mcp.conftest import McpHub, ok, text

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
RESULT_CHARS = 50_000  # coordhub.mcp.RESULT_CHARS
LISTED_BODY = 4_000  # coordhub.mcp.LISTED_BODY
SLACK = 2_000  # what the indented text block adds to the records' compact JSON (a few hundred characters each)


async def send_turns(mcp_hub: McpHub, conversation: str, bodies: list[str]) -> list[int]:
    """A sends ``bodies`` as the turns of ``conversation`` to B; their ids."""
    await mcp_hub.declare(A, "host-a", "career")
    await mcp_hub.declare(B, "host-b", "homelab")
    ids = []
    for n, body in enumerate(bodies):
        sent = await mcp_hub.rest("POST", "/api/coord/conversations/turns", await mcp_hub.token(A), json={
            "to": "host-b.homelab", "conversation_id": conversation, "type": "request" if n == 0 else "progress",
            "body": body})
        ids.append(sent["id"])
    return ids


async def test_conv_inbox_cuts_each_turn_as_inbox_cuts_bodies_and_answers_a_bounded_result(mcp_hub: McpHub) -> None:
    """Each listed turn's body and content are cut to 4,000 characters (marked as inbox marks a body), a call
    answers about RESULT_CHARS and its last line says where to read on; reading on reaches every turn."""
    bodies = [f"{n} " + "x" * 200_000 for n in range(8)]
    ids = await send_turns(mcp_hub, "big", bodies)
    async with mcp_hub.client(B) as b:
        first = await b.call_tool("conv_inbox", {})
        page = ok(first)
        assert len(text(first)) <= RESULT_CHARS + SLACK
        assert 1 <= page["count"] < 8
        turn = page["turns"][0]
        assert turn["body"] == bodies[0][:LISTED_BODY] and turn["body_truncated"] is True
        assert turn["body_chars"] == len(bodies[0])
        assert len(turn["content"]) == LISTED_BODY and turn["content_truncated"] is True
        assert turn["content_chars"] > len(bodies[0])
        assert text(first).splitlines()[-2].startswith('  "note": "More turns are pending')
        assert f"after={page['next_after']} " in page["note"]
        seen, after = [], 0
        for _ in range(10):
            page = ok(await b.call_tool("conv_inbox", {"after": after}))
            if not page["turns"]:
                break
            seen += [t["id"] for t in page["turns"]]
            after = page["next_after"]
        assert seen == ids
        assert "note" not in page
