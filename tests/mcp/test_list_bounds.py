"""The list tools an honest hub can fill with megabytes answer about RESULT_CHARS a call and say how to read on:
``list_leases``, ``list_todos``, ``list_components`` and ``get_workflow``.

Before, each answered the hub's whole page (measured: 100 leases of 4,096-character descriptions made one
``list_leases`` result of 461,935 characters; 10 todos with sources of 500,000 characters one ``list_todos``
result of 3,923,659; 10 components with notes of 500,000 one of 4,002,238; a workflow with 10 such items one
``get_workflow`` result of 4,503,966), and the last three could not read past it: the hub's next cursor is in a
header, which the tools' client did not answer (it does now: tests/mcp/test_pages.py). Reading on through the
notes must reach every item the hub holds exactly once, in its order, however many items share one time (a
tool used to rebuild a hub cursor from the time an item shows, to the microsecond: more items of one time than a
hub page holds ended in ``unreadable: …``). Each test goes through the real SDK client to a real hub.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from coordhub.client.aio import AsyncCoordClient
from coordhub.core import components, todos, workflows
from coordhub.mcp.connect import FixedConnector
from coordhub.mcp.server import build_server
from coordhub.server import SYSTEM
from coordhub.store.tx import Tx
from tests.mcp.conftest import McpHub, ok, text

pytestmark = pytest.mark.anyio

A = "HOST-A/claude-main"
RESULT_CHARS = 50_000  # coordhub.mcp.bounds.RESULT_CHARS
LISTED_BODY = 4_000  # coordhub.mcp.bounds.LISTED_BODY
SLACK = 2_000  # what the indented text block adds to the records' compact JSON (a few hundred characters each)
TRANSPORTS = ["mcp", "app", "network"]  # how the tools' client reaches the hub (tools_of)


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


def crowd(database: Path, table: str, ids: list[str]) -> None:
    """Give the rows ``ids`` of ``table`` creation times a fraction of a microsecond apart, as stored: pairs that
    answers show as one time (rounded to the microsecond), the pairs 0.3 microseconds apart."""
    db = sqlite3.connect(database)
    with db:
        for n, row_id in enumerate(ids):
            db.execute(f"UPDATE {table} SET created_at = ? WHERE id = ?",
                       (1_800_000_000.1234567 + n // 2 * 3e-7, row_id))
    db.close()


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


async def hub_holds(mcp_hub: McpHub, path: str, records: str | None = None) -> list[dict[str, Any]]:
    """Every item of one of the hub's lists in its order, read brief through its Coord-Next-Cursor header (the
    ``records`` of an object answer)."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"brief": True}
    async with mcp_hub.http({"Authorization": f"Bearer {mcp_hub.admin_token}"}) as h:
        while True:
            r = await h.get(path, params=params)
            assert r.status_code == 200, r.text
            items += r.json()[records] if records else r.json()
            if "Coord-Next-Cursor" not in r.headers:
                return items
            params["cursor"] = r.headers["Coord-Next-Cursor"]


async def add_todos(mcp_hub: McpHub, texts: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A adds a todo of each (text, source); the hub's answers."""
    token = await mcp_hub.token(A)
    return [await mcp_hub.rest("POST", "/api/coord/todos", token, json={"text": text, "source": source})
            for text, source in texts]


async def test_list_todos_cuts_text_and_source_and_reads_on_to_every_todo(mcp_hub: McpHub) -> None:
    """Ten todos of 60,000 characters with sources of 500,000 (the hub answers 7 of them a page): each is listed
    with its text and source cut to 4,000 characters, a call answers about RESULT_CHARS, and reading on through
    the notes reaches every todo the hub holds once, in its order, past the end of the hub's page."""
    added = await add_todos(mcp_hub, [(f"{n} " + "t" * 60_000, f"{n} " + "s" * 500_000) for n in range(10)])
    async with mcp_hub.client(A) as a:
        first = ok(await a.call_tool("list_todos", {}))
        todo = first["todos"][0]
        assert todo["text"] == added[0]["text"][:LISTED_BODY] and todo["text_chars"] == 60_002
        assert todo["source"] == added[0]["source"][:LISTED_BODY] and todo["source_truncated"] is True
        assert todo["source_chars"] == 500_002 and 1 <= first["count"] < 10
        assert first["note"].startswith("More todos follow (a call answers about 50,000 characters): call "
                                        "list_todos with the same arguments and cursor=")
        seen = await read_all(a, "list_todos", {}, "todos", "cursor", "next_cursor", 10)
    assert [t["id"] for t in seen] == [t["id"] for t in await hub_holds(mcp_hub, "/api/coord/todos")]
    assert [t["id"] for t in seen] == [t["id"] for t in added]


async def test_list_todos_reads_on_past_the_end_of_the_hubs_answer(mcp_hub: McpHub) -> None:
    """Ten short todos with sources of 500,000 characters: the hub's answer ends after 8 (about 4 MiB), which a
    call answers whole (their sources cut); its note names the hub's next page, and the next call answers the
    last two with no note."""
    added = await add_todos(mcp_hub, [(f"t{n}", "s" * 500_000) for n in range(10)])
    async with mcp_hub.client(A) as a:
        first = ok(await a.call_tool("list_todos", {}))
        assert first["count"] == 8 and first["next_cursor"] is not None
        seen = await read_all(a, "list_todos", {}, "todos", "cursor", "next_cursor", 2)
    assert [t["id"] for t in seen] == [t["id"] for t in added]


async def test_list_todos_reads_on_through_todos_of_the_same_microsecond(mcp_hub: McpHub, tmp_path: Path) -> None:
    """Twelve todos whose times, stored to a fraction of a microsecond, are shown rounded: pairs share one
    time, the pairs 0.3 microseconds apart. Reading on still reaches each once, in the hub's order."""
    added = await add_todos(mcp_hub, [(f"{n}", "s" * 100_000) for n in range(12)])
    crowd(tmp_path / "coord.db", "todos", [t["id"] for t in added])
    holds = [t["id"] for t in await hub_holds(mcp_hub, "/api/coord/todos")]
    async with mcp_hub.client(A) as a:
        seen = await read_all(a, "list_todos", {}, "todos", "cursor", "next_cursor", 12)
        assert len({t["created_at"] for t in seen}) < 12
        bad = await a.call_tool("list_todos", {"cursor": "not-one"})
        assert bad.is_error and text(bad).endswith("invalid: cursor: not a next_cursor of this tool's answers, "
                                                   "as given")
    assert [t["id"] for t in seen] == holds and sorted(holds) == sorted(t["id"] for t in added)


async def set_components(mcp_hub: McpHub, count: int, notes: int) -> None:
    """A sets ``count`` components (c00, c01, … of projects p and q in turn) with notes of ``notes``
    characters."""
    token = await mcp_hub.token(A)
    for n in range(count):
        await mcp_hub.rest("PUT", "/api/coord/components", token, json={
            "project_key": "pq"[n % 2], "component": f"c{n:02}", "state": "built", "notes": f"{n} " + "n" * notes})


async def test_list_components_cuts_notes_and_reads_on_to_every_component(mcp_hub: McpHub) -> None:
    """Ten components with notes of 500,000 characters (the hub answers 8 a page): each is listed with its notes
    cut to 4,000 characters, a call answers about RESULT_CHARS, and reading on reaches every component the hub
    holds once, most recently updated first."""
    await set_components(mcp_hub, 10, 500_000)
    async with mcp_hub.client(A) as a:
        first = ok(await a.call_tool("list_components", {}))
        component = first["components"][0]
        assert component["component"] == "c09" and component["notes"] == "9 " + "n" * (LISTED_BODY - 2)
        assert component["notes_truncated"] is True and component["notes_chars"] == 500_002
        assert first["note"].startswith("More components follow (a call answers about 50,000 characters): call "
                                        "list_components with the same arguments and cursor=")
        seen = await read_all(a, "list_components", {}, "components", "cursor", "next_cursor", 10)
    assert [c["component"] for c in seen] == [f"c{n:02}" for n in range(9, -1, -1)]
    assert [c["component"] for c in seen] == [c["component"] for c in await hub_holds(
        mcp_hub, "/api/coord/components")]


async def test_list_components_reads_on_through_components_of_the_same_microsecond(
        mcp_hub: McpHub, tmp_path: Path) -> None:
    """Sixteen components of two projects whose update times, stored to a fraction of a microsecond, are shown
    rounded (pairs share one, the pairs 0.3 microseconds apart): reading on reaches each once, in the hub's
    order (time, then project and component, each descending)."""
    await set_components(mcp_hub, 16, 100_000)
    db = sqlite3.connect(tmp_path / "coord.db")
    with db:
        for n in range(16):
            db.execute("UPDATE components SET updated_at = ? WHERE component = ?",
                       (1_800_000_000.1234567 + n // 2 * 3e-7, f"c{n:02}"))
    db.close()
    holds = [(c["project_key"], c["component"]) for c in await hub_holds(mcp_hub, "/api/coord/components")]
    async with mcp_hub.client(A) as a:
        seen = await read_all(a, "list_components", {}, "components", "cursor", "next_cursor", 16)
    assert [(c["project_key"], c["component"]) for c in seen] == holds and len(set(holds)) == 16
    assert len({c["updated_at"] for c in seen}) < 16


async def workflow_of(mcp_hub: McpHub, count: int, description: int) -> tuple[str, list[dict[str, Any]]]:
    """A workflow with a description of 500,000 characters and ``count`` work items of priorities 0-2 with
    descriptions of ``description`` characters: its id and the items, as the hub answered them."""
    token = await mcp_hub.token(A)
    flow = await mcp_hub.rest("POST", "/api/coord/workflows", token, json={
        "project_key": "p", "name": "f", "description": "w" * 500_000})
    return flow["id"], [await mcp_hub.rest("POST", "/api/coord/work-items", token, json={
        "workflow_id": flow["id"], "title": f"i{n}", "priority": n % 3, "description": f"{n} " + "d" * description})
        for n in range(count)]


async def test_get_workflow_cuts_descriptions_and_reads_on_to_every_work_item(mcp_hub: McpHub) -> None:
    """A workflow whose description and ten items' descriptions hold 500,000 characters (the hub answers 8
    items a page): each description is cut to 4,000 characters, a call answers about RESULT_CHARS with the
    workflow, and reading on reaches every item the hub holds once, highest priority first."""
    flow, items = await workflow_of(mcp_hub, 10, 500_000)
    async with mcp_hub.client(A) as a:
        first = ok(await a.call_tool("get_workflow", {"workflow_id": flow}))
        assert first["id"] == flow and first["description"] == "w" * LISTED_BODY
        assert first["description_truncated"] is True and first["description_chars"] == 500_000
        item = first["work_items"][0]
        assert item["priority"] == 2 and item["description"] == "2 " + "d" * (LISTED_BODY - 2)
        assert item["description_truncated"] is True and item["description_chars"] == 500_002
        assert first["note"].startswith("More work items follow (a call answers about 50,000 characters): call "
                                        "get_workflow with the same arguments and cursor=")
        seen = await read_all(a, "get_workflow", {"workflow_id": flow}, "work_items", "cursor", "next_cursor", 10)
    holds = [w["id"] for w in await hub_holds(mcp_hub, f"/api/coord/workflows/{flow}", "work_items")]
    assert [w["id"] for w in seen] == holds and sorted(holds) == sorted(w["id"] for w in items)
    assert [w["priority"] for w in seen] == [2, 2, 2, 1, 1, 1, 0, 0, 0, 0]


async def test_get_workflow_reads_on_through_work_items_of_the_same_microsecond(
        mcp_hub: McpHub, tmp_path: Path) -> None:
    """Sixteen work items whose creation times, stored to a fraction of a microsecond, are shown rounded (pairs
    share one, the pairs 0.3 microseconds apart): reading on reaches each once, in the hub's order."""
    flow, items = await workflow_of(mcp_hub, 16, 100_000)
    crowd(tmp_path / "coord.db", "work_items", [w["id"] for w in items])
    holds = [w["id"] for w in await hub_holds(mcp_hub, f"/api/coord/workflows/{flow}", "work_items")]
    async with mcp_hub.client(A) as a:
        seen = await read_all(a, "get_workflow", {"workflow_id": flow}, "work_items", "cursor", "next_cursor", 16)
    assert [w["id"] for w in seen] == holds and len(set(holds)) == 16


@asynccontextmanager
async def tools_of(hub: McpHub, transport: str) -> AsyncIterator[Client]:
    """An SDK client of the default tools acting as A whose REST requests reach ``hub`` ``transport``'s way:
    ``mcp`` through the hub's own ``/mcp`` (each handed to the app in-process, ``serve_in_process``), ``app`` by a
    client given the app (``asgi_request``), ``network`` by one over HTTP (``httpx2``: the stdio shim's way)."""
    if transport == "mcp":
        async with hub.client(A) as c:
            yield c
        return
    way: dict[str, Any] = {"app": hub.app} if transport == "app" else {"transport": httpx2.ASGITransport(app=hub.app)}
    async with AsyncCoordClient("http://hub", await hub.token(A), **way) as client:
        connector = FixedConnector(client)

        @asynccontextmanager
        async def connect() -> AsyncIterator[FixedConnector]:
            yield connector

        async with Client(build_server("default", connect)) as c:
            yield c


async def at_once(hub: McpHub, write: Callable[[Tx, float], Any]) -> None:
    """``write(tx, now)`` as the hub itself, in one transaction: every row it writes has one time, ``now``."""
    await hub.app.state.hub.mutate(SYSTEM, write)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_list_todos_reads_on_through_more_todos_of_one_time_than_a_hub_page(mcp_hub: McpHub,
                                                                                  transport: str) -> None:
    """620 todos of one exact ``created_at`` (the hub's page holds 500): reading on through ``next_cursor``
    answers every todo the hub holds once, in its order (by id within the one time)."""
    await at_once(mcp_hub, lambda tx, now: [todos.add(tx, SYSTEM, text=f"todo {n:03}", now=now)
                                            for n in range(620)])
    holds = [t["id"] for t in await hub_holds(mcp_hub, "/api/coord/todos")]
    async with tools_of(mcp_hub, transport) as a:
        seen = await read_all(a, "list_todos", {}, "todos", "cursor", "next_cursor", 40)
    assert len({t["created_at"] for t in seen}) == 1
    assert [t["id"] for t in seen] == holds and len(set(holds)) == 620


async def test_list_components_reads_on_through_more_components_of_one_time_than_a_hub_page(
        mcp_hub: McpHub) -> None:
    """1,050 components of one exact ``updated_at`` (the hub's page holds 1,000): each is answered once, in the
    hub's order (project and component descending within the one time)."""
    await at_once(mcp_hub, lambda tx, now: [components.set_state(
        tx, SYSTEM, project_key="pq"[n % 2], component=f"c{n:04}", state="built", now=now) for n in range(1050)])
    holds = [(c["project_key"], c["component"]) for c in await hub_holds(mcp_hub, "/api/coord/components")]
    async with tools_of(mcp_hub, "mcp") as a:
        seen = await read_all(a, "list_components", {}, "components", "cursor", "next_cursor", 40)
    assert len({c["updated_at"] for c in seen}) == 1
    assert [(c["project_key"], c["component"]) for c in seen] == holds and len(set(holds)) == 1050


async def test_get_workflow_reads_on_through_more_work_items_of_one_time_than_a_hub_page(mcp_hub: McpHub) -> None:
    """A workflow of 1,050 work items of one priority and one exact ``created_at`` (the hub's page holds 1,000):
    each is answered once, in the hub's order."""
    def write(tx: Tx, now: float) -> str:
        flow = workflows.create(tx, SYSTEM, project_key="p", name="batch", now=now)
        for n in range(1050):
            workflows.add_item(tx, SYSTEM, workflow_id=flow["id"], title=f"item {n:04}", now=now)
        return str(flow["id"])

    flow = (await mcp_hub.app.state.hub.mutate(SYSTEM, write)).body
    holds = [w["id"] for w in await hub_holds(mcp_hub, f"/api/coord/workflows/{flow}", "work_items")]
    async with tools_of(mcp_hub, "mcp") as a:
        seen = await read_all(a, "get_workflow", {"workflow_id": flow}, "work_items", "cursor", "next_cursor", 40)
    assert len({w["created_at"] for w in seen}) == 1
    assert [w["id"] for w in seen] == holds and len(set(holds)) == 1050
