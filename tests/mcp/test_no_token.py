"""``coord mcp`` started without a token: a tool's error says how to give the MCP server one.

It answered only the hub's own line, "missing bearer token: send 'Authorization:
Bearer <token>'", a header no MCP user writes: the stdio server's token comes
from ``COORD_TOKEN`` in its environment or identity.json, as the CLI's own
no-token error says for the CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveHub
from tests.mcp.conftest import error
from tests.mcp.test_stdio import stdio

pytestmark = pytest.mark.anyio

HOW = (": ask its admin for one (`coord token create NAME`) and pass it with COORD_TOKEN in the MCP server's "
       "environment (`coord mcp-config` prints the `claude mcp add` command that sets it) or identity.json \"token\"")


async def test_a_tool_called_without_a_token_says_how_to_give_the_server_one(live_hub: LiveHub,
                                                                              tmp_path: Path) -> None:
    async with stdio(tmp_path, live_hub.url, None) as c:
        for tool, arguments in (("inbox", {}), ("send_message", {"to": "ALL", "subject": "hi"}),
                                ("read_message", {"message_id": "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"})):  # whoami
            text = error(await c.call_tool(tool, arguments))
            assert "unauthorized: missing bearer token" in text, text  # the hub's reason stays, then how
            assert text.endswith(f"; the hub at {live_hub.url} needs a token{HOW}"), text
            assert "\n" not in text

async def test_a_revoked_token_gets_the_same_help_and_the_hubs_reason(live_hub: LiveHub, tmp_path: Path) -> None:
    async with stdio(tmp_path, live_hub.url, "not-a-token") as c:
        text = error(await c.call_tool("inbox", {}))
        assert "unauthorized: unknown or revoked token" in text, text
        assert text.endswith(f"; the hub at {live_hub.url} needs a token{HOW}"), text
