"""Reading on through the hub's cursor-paged lists (todos, components, work items) from an MCP tool.

The hub answers such a list a page at a time (up to 500 or 1,000 items and
about 4 MiB) and says where the next page starts in its ``Coord-Next-Cursor``
header (:meth:`coordhub.client.aio.AsyncCoordClient.call_page`), while a tool
answers about :data:`~coordhub.mcp.bounds.RESULT_CHARS` of it a call. So a
tool's ``next_cursor`` names a hub page and an item in it (:class:`Place`):
the next call reads that page again and answers from that item on; past the
page's last item it names the hub's next page, from its start. Items of one
time, however many, are read on exactly: nothing is rebuilt from the times an
answer shows.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from coordhub.mcp.bounds import RESULT_CHARS, listed, within


@dataclass(frozen=True)
class HubList:
    """One of the hub's cursor-paged lists as a tool reads on in it.

    ``records``: the answer's key for the items (and the tag of the tool's cursors, so one tool's cursor is not
    another's); ``tool``: the tool that answers it; ``identity``: the fields naming one item; ``cut``: the long
    free text a listing cuts to :data:`~coordhub.mcp.bounds.LISTED_BODY` characters (:func:`listed`).
    """

    records: str
    tool: str
    identity: tuple[str, ...]
    cut: tuple[str, ...]


TODOS = HubList("todos", "list_todos", ("id",), ("text", "source"))
COMPONENTS = HubList("components", "list_components", ("project_key", "component"), ("notes",))
WORK_ITEMS = HubList("work_items", "get_workflow", ("id",), ("description",))
PRESENCE = HubList("sessions", "presence", ("session_id",), ())
# A tool's cursor holds the hub's (at most 4,096 characters: client.aio.MAX_NEXT_CURSOR) and an item's identity (a
# component's is two names of up to 200 characters), base64-encoded
Cursor = Annotated[str | None, Field(max_length=8192, description="A previous answer's next_cursor, to read on.")]


@dataclass(frozen=True)
class Place:
    """Where a tool's answer starts: the hub's page read with ``cursor`` (None: the list's first page), from the
    item whose identity fields hold ``first`` (None: the page's first item)."""

    cursor: str | None = None
    first: list[Any] | None = None


def paged_answer(kind: HubList, place: Place, found: list[Any], after: str | None,
                 budget: int = RESULT_CHARS) -> dict[str, Any]:
    """``{records: [...], "count": n, "next_cursor": c}``: the items of ``found`` (the hub's page read at
    ``place``, ``after`` the hub's cursor of the page after it, None at the list's end) from the one
    ``place.first`` names (:func:`start`), :func:`listed` (``kind.cut``), as many as take ``budget``
    (:func:`within`: at least one). When more follow, in this page or past it, ``next_cursor`` says where
    (:func:`next_cursor`; else null) and a closing ``note`` says to call ``kind.tool`` with the same arguments
    and it.

    ``ToolError`` (``unexpected_answer``) for an item left out whose identity cannot be read.
    """
    rest = found[start(kind, found, place.first):]
    items = within(listed(rest, kind.cut), budget)
    answer: dict[str, Any] = {kind.records: items, "count": len(items), "next_cursor": None}
    if len(items) < len(rest):
        try:
            following = Place(place.cursor, [rest[len(items)][field] for field in kind.identity])
            answer["next_cursor"] = next_cursor(kind, following)
        except (KeyError, TypeError):  # not an object, no identity, or one JSON cannot hold (an int past 64 bits)
            raise ToolError(f"unexpected_answer: the hub answered {kind.records} that cannot be read on") from None
    elif after is not None:
        answer["next_cursor"] = next_cursor(kind, Place(after))
    else:
        return answer
    answer["note"] = (f"More {kind.records.replace('_', ' ')} follow (a call answers about {RESULT_CHARS:,} "
                      f"characters): call {kind.tool} with the same arguments and cursor={answer['next_cursor']} "
                      "to read on.")
    return answer


def start(kind: HubList, found: list[Any], first: list[Any] | None) -> int:
    """Where in ``found`` the item whose identity is ``first`` is; 0 when ``first`` is None or not in ``found``.

    An item named but no longer in the page (a todo done, a component set again, which moves it to the front;
    any change to the list since the page was read) makes the answer start at the page's first item: items
    answered before may come again, none is left out.
    """
    if first is not None:
        for n, item in enumerate(found):
            if isinstance(item, dict) and [item.get(field) for field in kind.identity] == first:
                return n
    return 0


def next_cursor(kind: HubList, place: Place) -> str:
    """The ``cursor`` that reads on at ``place``: URL-safe base64 of the JSON ``[records, hub cursor, identity]``
    (:func:`read_cursor` reads it)."""
    text = orjson.dumps([kind.records, place.cursor, place.first])
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def read_cursor(kind: HubList, cursor: str | None) -> Place:
    """The :class:`Place` a tool's ``cursor`` names (:func:`next_cursor`); the list's start for None.
    ``ToolError`` (``invalid``) for any other text, another tool's cursor included."""
    if cursor is None:
        return Place()
    try:
        records, after, first = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (records == kind.records and (after is None or isinstance(after, str))
                and (first is None or isinstance(first, list) and len(first) == len(kind.identity))):
            raise ValueError("not this list's cursor")
    except (ValueError, TypeError, binascii.Error):
        raise ToolError("invalid: cursor: not a next_cursor of this tool's answers, as given") from None
    return Place(after, first)
