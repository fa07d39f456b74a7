"""A tool's ``next_cursor`` of the hub's cursor-paged lists (``list_todos``, ``list_components``,
``get_workflow``) is the hub's own cursor of a page and the next item in it.

The hub sends that cursor only in its ``Coord-Next-Cursor`` header, which the tools' client now answers beside
the body whichever way it reaches the hub (here: a tool's request inside the hub answered by ``Door.local`` or
``Door.inner``; tests/mcp/test_client_aio.py: an app in-process and the network). Reading on through lists of
more items of one time than a hub page holds: tests/mcp/test_list_bounds.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from coordhub.api.auth import Caller
from coordhub.api.door import Door
from coordhub.client.aio import AnswerHeaders
from coordhub.core import todos
from coordhub.mcp.bounds import size
from coordhub.mcp.connect import CALLER, CallerContext
from coordhub.mcp.http import HttpCaller
from coordhub.mcp.pages import COMPONENTS, TODOS, WORK_ITEMS, Place, next_cursor, paged_answer, read_cursor
from coordhub.mcp.server import build_server
from coordhub.server import SYSTEM
from tests.mcp.conftest import McpHub, ok
from tests.mcp.test_list_bounds import at_once, workflow_of

pytestmark = pytest.mark.anyio

A = "HOST-A/claude-main"


@asynccontextmanager
async def nowhere() -> AsyncIterator[Any]:
    yield None  # a context that builds its client itself never asks the server for its connector


def todo(name: str) -> dict[str, Any]:
    """A todo as the hub lists it, short."""
    return {"id": name, "text": f"text of {name}", "created_at": "2026-12-05T20:00:00.000001Z"}


def test_an_answer_starts_at_the_named_item_else_at_the_top_of_its_hub_page() -> None:
    """The cursor names the hub page and the next item in it; an item no longer in that page (done, or moved)
    makes the next answer start at the page's top: items may come again, none is left out."""
    page = [todo(f"t{n}") for n in range(5)]
    named = paged_answer(TODOS, Place("hub-page-2", ["t3"]), page, "hub-page-3")
    assert [t["id"] for t in named["todos"]] == ["t3", "t4"]
    assert read_cursor(TODOS, named["next_cursor"]) == Place("hub-page-3")  # the page's end: the hub's next page
    assert "call list_todos with the same arguments and cursor=" in named["note"]
    gone = paged_answer(TODOS, Place("hub-page-2", ["t9"]), page, None)
    assert [t["id"] for t in gone["todos"]] == ["t0", "t1", "t2", "t3", "t4"]
    assert gone["next_cursor"] is None and "note" not in gone
    cut = paged_answer(TODOS, Place("hub-page-2"), page, None, budget=size(page[0]))
    assert [t["id"] for t in cut["todos"]] == ["t0"]
    assert read_cursor(TODOS, cut["next_cursor"]) == Place("hub-page-2", ["t1"])  # the same hub page, from t1


@pytest.mark.parametrize("cursor", [
    "not-one", "", next_cursor(COMPONENTS, Place("c", ["p", "api"])), next_cursor(WORK_ITEMS, Place("w", ["i"])),
    next_cursor(TODOS, Place("c", ["a", "b"])), "WzEsMl0",  # [1,2]
])
def test_a_cursor_not_of_the_tool_is_refused(cursor: str) -> None:
    with pytest.raises(ToolError, match=r"^invalid: cursor: not a next_cursor of this tool's answers, as given$"):
        read_cursor(TODOS, cursor)


async def test_a_cursor_naming_an_item_gone_from_its_page_reads_that_page_from_its_top(mcp_hub: McpHub) -> None:
    """``get_workflow`` with a cursor naming an item that is not in the hub page it names answers that page from
    its first item, with the workflow, as the first call did."""
    flow, _ = await workflow_of(mcp_hub, 3, 10)
    gone = next_cursor(WORK_ITEMS, Place(None, ["7b0c1f4e-8d4e-4a57-9a51-0a9f6f0c2d11"]))
    async with mcp_hub.client(A) as a:
        first = ok(await a.call_tool("get_workflow", {"workflow_id": flow}))
        again = ok(await a.call_tool("get_workflow", {"workflow_id": flow, "cursor": gone}))
    assert again == first and len(first["work_items"]) == 3 and first["next_cursor"] is None


def test_an_item_left_out_that_cannot_be_named_is_an_unexpected_answer() -> None:
    with pytest.raises(ToolError, match=r"^unexpected_answer: the hub answered todos that cannot be read on$"):
        paged_answer(TODOS, Place(), [todo("t0"), {"text": "no id"}], None, budget=10)


async def test_a_tools_client_gets_the_answer_headers_whichever_way_the_door_serves_it(
        mcp_hub: McpHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool's REST request inside the hub is answered from a lean route's endpoint (``Door.local``), or the
    ASGI way (``Door.inner``) when the local way declines it; the client has the answer's headers either way."""
    from coordhub.mcp.served import AppConnector

    token = await mcp_hub.token(A)
    for n in range(2):
        await mcp_hub.rest("POST", "/api/coord/locks", token, json={"project_key": "p", "resource": f"r{n}"})
    await at_once(mcp_hub, lambda tx, now: [todos.add(tx, SYSTEM, text=f"t{n}", now=now) for n in range(501)])
    ways: list[str] = []
    declining = [False]
    door_local = Door.local

    async def local(self: Door, scope: dict[str, Any], body: bytes, **given: Any) -> Any:
        answer = None if declining[0] else await door_local(self, scope, body, **given)
        ways.append("local" if answer is not None else "inner")
        return answer

    monkeypatch.setattr(Door, "local", local)
    auth = mcp_hub.app.state.auth
    actor = await auth.authenticate(f"Bearer {token}", "127.0.0.1", inner=True)
    connector = AppConnector(mcp_hub.app)
    reset = CALLER.set(HttpCaller(token, None, actor.session_id, Caller(actor, None, auth)))
    try:
        client = connector.client(CallerContext(build_server("default", nowhere), connector))
    finally:
        CALLER.reset(reset)
    headers: AnswerHeaders = {}
    leases = await client.call("GET", "/api/coord/locks", {"limit": 1}, answer_headers=headers)
    assert headers["coord-next-after-fence"] == str(leases[0]["fence"])
    for way in ("local", "inner"):
        declining[0] = way == "inner"
        first, after = await client.call_page("GET", "/api/coord/todos", {})
        assert len(first) == 500 and after is not None, way
        rest, end = await client.call_page("GET", "/api/coord/todos", {"cursor": after})
        assert len(rest) == 1 and end is None, way
    assert ways == ["local", "local", "local", "inner", "inner"]
