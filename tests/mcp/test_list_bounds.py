"""The list tools an honest hub can fill with megabytes answer about RESULT_CHARS a call and say how to read on:
``list_leases``, ``list_todos``, ``list_components`` and ``get_workflow``.

Before, each answered the hub's whole page (measured: 100 leases of 4,096-character descriptions made one
``list_leases`` result of 461,935 characters; 10 todos with sources of 500,000 characters one ``list_todos``
result of 3,923,659). Reading on through the notes must reach every item the hub holds exactly once, in its
order. Each test goes through the real SDK client to a real hub.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.mcp.conftest import McpHub, ok, text

pytestmark = pytest.mark.anyio

A = "HOST-A/claude-main"
RESULT_CHARS = 50_000  # coordhub.mcp.tools.RESULT_CHARS
LISTED_BODY = 4_000  # coordhub.mcp.tools.LISTED_BODY
SLACK = 2_000  # what the indented text block adds to the records' compact JSON (a few hundred characters each)


async def read_all(client: Client, tool: str, args: dict[str, Any], records: str, cursor: str, answered: str,
                   calls: int) -> list[dict[str, Any]]:
    """The records ``tool`` answers, reading on as each closing note says (``cursor`` set to the answer's
    ``answered``) until an answer has no note: each within about RESULT_CHARS, its note the last line."""
    seen: list[dict[str, Any]] = []
    for _ in range(calls):
        result = await client.call_tool(tool, args)
        page = ok(result)
        assert len(text(result)) <= RESULT_CHARS + SLACK
        assert page["count"] == len(page[records])
        seen += page[records]
        if "note" not in page:
            assert page[answered] is None
            return seen
        assert text(result).splitlines()[-2].startswith('  "note": ')
        assert f" with the same arguments and {cursor}={page[answered]} to read on" in page["note"]
        args = {**args, cursor: page[answered]}
    raise AssertionError(f"{tool} did not reach the end in {calls} calls")


async def test_list_leases_answers_about_result_chars_and_reads_on_to_every_lease(mcp_hub: McpHub) -> None:
    """100 leases of 4,096-character descriptions (the hub's bound): a call answers about RESULT_CHARS of them,
    its note naming the after_fence to read on, and reading on reaches every lease once, in fence order."""
    token = await mcp_hub.token(A)
    held = [await mcp_hub.rest("POST", "/api/coord/locks", token, json={
        "project_key": "p", "resource": f"r{n}", "description": f"{n:03} " + "d" * 4_092}) for n in range(100)]
    async with mcp_hub.client(A) as a:
        first = ok(await a.call_tool("list_leases", {}))
        assert 1 <= first["count"] < 100
        assert first["note"].startswith("More leases follow (a call answers at most 100 and about 50,000 "
                                        "characters)")
        seen = await read_all(a, "list_leases", {}, "leases", "after_fence", "next_after_fence", 100)
    assert [x["id"] for x in seen] == [x["id"] for x in held]
    assert seen[0]["description"] == held[0]["description"]
