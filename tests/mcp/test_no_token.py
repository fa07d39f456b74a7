"""``coord mcp`` started without a token: a tool's error says how to give the MCP server one.

It answered only the hub's own line, "missing bearer token: send 'Authorization:
Bearer <token>'", a header no MCP user writes: the stdio server's token comes
from ``COORD_TOKEN`` in its environment or identity.json, as the CLI's own
no-token error says for the CLI. A token the hub refuses (unknown or revoked)
is said to be refused, not missing.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.mcp.conftest import error
from tests.mcp.test_stdio import stdio

pytestmark = pytest.mark.anyio

NEW = (" (`coord token create NAME`) and pass it with COORD_TOKEN in the MCP server's environment (`coord mcp-config` "
       "prints the `claude mcp add` command that sets it) or identity.json \"token\"")
HOW = ": ask its admin for one" + NEW
ID = "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"


async def test_a_tool_called_without_a_token_says_how_to_give_the_server_one(live_hub: LiveHub,
                                                                              tmp_path: Path) -> None:
    async with stdio(tmp_path, live_hub.url, None) as c:
        for tool, arguments in (("inbox", {}), ("send_message", {"to": "ALL", "subject": "hi"}),
                                ("read_message", {"message_id": ID})):  # whoami
            text = error(await c.call_tool(tool, arguments))
            assert "unauthorized: missing bearer token" in text, text  # the hub's reason stays, then how
            assert text.endswith(f"; the hub at {live_hub.url} needs a token{HOW}"), text
            assert "\n" not in text


async def test_a_refused_token_is_said_to_be_refused_not_missing(live_hub: LiveHub, tmp_path: Path) -> None:
    # it got the no-token help ("needs a token: ask its admin for one") after the hub's line, which asks too
    token = live_hub.token("HOST-A/claude-main")
    r = httpx2.delete(f"{live_hub.url}/api/coord/tokens/HOST-A/claude-main",
                      headers={"Authorization": f"Bearer {live_hub.admin_token}"})
    assert r.status_code < 300, r.text
    for given in ("not-a-token", token):  # unknown, revoked
        async with stdio(tmp_path, live_hub.url, given) as c:
            for tool, arguments in (("inbox", {}), ("read_message", {"message_id": ID})):  # read_message: whoami
                text = error(await c.call_tool(tool, arguments))
                assert text.endswith(f"unauthorized: the hub at {live_hub.url} refused the token this MCP server was "
                                     f"given as unknown or revoked: ask its admin for a new one{NEW}"), text
                assert "needs a token" not in text and text.count("ask") == 1 and "\n" not in text
