"""Reading on through the hub's cursor-paged lists (todos, components, work items) from an MCP tool.

The hub sends the cursor of its next answer only in a header, which a tool
does not see, and a tool answers less than the hub's page
(:data:`~coordhub.mcp.bounds.RESULT_CHARS`): so a tool's ``next_cursor``
names the next item to answer and a place in the hub's list just before it
(:class:`HubOrder`, :func:`paged_answer`).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from coordhub.clock import parse_iso
from coordhub.core import paging
from coordhub.mcp.bounds import RESULT_CHARS, listed, within
from coordhub.store.tables.records import Components, Key, Todos, WorkItems


@dataclass(frozen=True)
class HubOrder:
    """One of the hub's lists paged by an opaque cursor (:func:`coordhub.core.paging.page`), as a tool reads on in
    it.

    The hub's cursor of its next answer is sent only in a header (``Coord-Next-Cursor``), which does not reach a
    tool (the client answers bodies), and holds an item's ``key`` columns, whose times an answer shows to the
    microsecond while the hub orders by the stored float: so a tool's ``cursor`` names the next item to answer
    and a place in the list a little before it (:func:`before`), and the next call reads from that place and
    answers from that item on, found by its ``identity``. ``key``: the list's order, the store table's (column,
    type, descending; each column shows under its own name, a float as an RFC 3339 time). ``limit`` and
    ``text``: the most items one hub answer holds and the fields its budget counts
    (:func:`coordhub.core.paging.size`); ``cut``: the long free text a listing cuts to :data:`LISTED_BODY`
    characters (:func:`listed`).
    """

    key: Key
    identity: tuple[str, ...]
    limit: int
    text: tuple[str, ...]
    cut: tuple[str, ...]


# The hub's page limits and counted fields (checked against core's in tests/mcp/test_list_bounds.py): written out, as
# importing core.components would bring the lease and event machinery into the stdio server (~40 ms of start-up)
TODOS = HubOrder(Todos.key, ("id",), 500, ("text", "source"), ("text", "source"))  # coordhub.core.todos
COMPONENTS = HubOrder(Components.key, ("project_key", "component"), 1000,  # coordhub.core.components
                      ("component", "state", "version", "notes"), ("notes",))
WORK_ITEMS = HubOrder(WorkItems.key, ("id",), 1000, ("title", "description"), ("description",))  # core.workflows
# The hub ends an answer once its next item's text would pass about PAGE_BYTES (coordhub.core.paging.take); an item
# holds at most MAX_ROW_TEXT characters, each at most 6 bytes encoded (an escaped control character): only an
# answer holding more than this may have been ended there.
HUB_PAGE_CUT = paging.PAGE_BYTES - 6 * paging.MAX_ROW_TEXT - 2 * paging.ROW_BYTES
Cursor = Annotated[str | None, Field(max_length=4096, description="A previous answer's next_cursor, to read on.")]
Fetch = Callable[[str | None, bool], Awaitable[list[Any]]]  # a hub answer of a list from a cursor, brief or not


async def paged_answer(order: HubOrder, found: list[Any], first: list[Any] | None, fetch: Fetch, records: str,
                       call: str, budget: int = RESULT_CHARS) -> dict[str, Any]:
    """``{records: [...], "count": n, "next_cursor": c}``: the items of ``found`` (the hub's answer read from a
    tool's ``cursor``) from the one ``first`` names (:func:`start`), :func:`listed` (their ``order.cut``), as many
    as take ``budget`` (:func:`within`: at least one); when more follow, ``next_cursor`` names the next
    (:func:`next_cursor`; else null) and a closing ``note`` says to call ``call`` with the same arguments and it.

    When ``found`` is answered to its end and the hub may have ended it at its bound (:func:`may_be_cut`),
    ``fetch`` reads the next item (:func:`following`). ``ToolError`` (``unexpected_answer``) for items whose key
    the hub did not answer as it does.
    """
    rest = found[start(order, found, first):]
    items = within(listed(rest, order.cut), budget)
    answer: dict[str, Any] = {records: items, "count": len(items), "next_cursor": None}
    try:
        after = rest[len(items)] if len(items) < len(rest) else None
        if after is None and items and may_be_cut(order, found):
            after = await following(order, fetch, items[-1])
        if after is None:
            return answer
        answer["next_cursor"] = next_cursor(order, after)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise ToolError(f"unexpected_answer: the hub answered {records} whose order cannot be read on") from None
    answer["note"] = (f"More {records.replace('_', ' ')} follow (a call answers about {RESULT_CHARS:,} characters): "
                      f"call {call} with the same arguments and cursor={answer['next_cursor']} to read on.")
    return answer


def start(order: HubOrder, found: list[Any], first: list[Any] | None) -> int:
    """Where in ``found`` the item whose ``identity`` is ``first`` is; 0 when ``first`` is None or not in ``found``
    (changed since it was named, e.g. a component set again, which moves it to the front: ``found`` then starts
    where it was, so an item of its microsecond answered before may come again; none is left out)."""
    at = None if first is None else position(order, found, first)
    return 0 if at is None else at


def position(order: HubOrder, found: list[Any], identity: list[Any]) -> int | None:
    """Where in ``found`` the item whose ``order.identity`` fields hold ``identity`` is; None if it is not there."""
    for n, item in enumerate(found):
        if isinstance(item, dict) and [item.get(field) for field in order.identity] == identity:
            return n
    return None


def may_be_cut(order: HubOrder, found: list[Any]) -> bool:
    """Whether the hub may have ended ``found``, its answer, at its bound: it holds ``order.limit`` items, or so
    much of their text (as the hub counts it, :func:`coordhub.core.paging.size`) that the next could have passed
    the budget (:data:`HUB_PAGE_CUT`)."""
    text = sum(paging.size(item, order.text) for item in found if isinstance(item, dict))
    return len(found) >= order.limit or text > HUB_PAGE_CUT


async def following(order: HubOrder, fetch: Fetch, last: dict[str, Any]) -> dict[str, Any] | None:
    """The item after ``last`` (its long text left out), None when the list ends with it: read from a *brief*
    answer of the hub from :func:`before` it, which holds up to ``order.limit`` items whatever their text.
    ``ToolError`` (``unreadable``) when that answer ends at ``last`` and may have been cut there: more items than
    one answer holds share ``last``'s microsecond. Should ``last`` have changed since (and so not be in that
    answer), the first item of it is the next: as for :func:`start`, one of ``last``'s microsecond may come
    again."""
    brief = await fetch(hub_cursor(order, before(order, last)), True)
    at = position(order, brief, [last[field] for field in order.identity])
    n = 0 if at is None else at + 1
    if n < len(brief):
        return dict(brief[n])
    if n == len(brief) and not may_be_cut(order, brief):
        return None
    raise ToolError("unreadable: more items than one hub answer holds share the time of the last one answered; "
                    "read on outside MCP, with the hub's Coord-Next-Cursor header")


def next_cursor(order: HubOrder, item: dict[str, Any]) -> str:
    """The ``cursor`` that reads on from ``item``: URL-safe base64 of the JSON of a place before it in the list
    (:func:`before`) and its identity."""
    text = orjson.dumps([before(order, item), [item[field] for field in order.identity]])
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def before(order: HubOrder, item: dict[str, Any]) -> list[Any]:
    """The ``key`` values of a place in the list before ``item`` and after every item before its microsecond: its
    columns up to its first time as it shows them, that time (RFC 3339, rounded to the microsecond) moved past
    the rounding, a microsecond and two floats, back in the list's order, and the (string) columns after it at
    their least, ``""``."""
    values: list[Any] = []
    for column, kind, descending in order.key:
        if kind is float:
            at = parse_iso(item[column])
            step = 1e-6 + 2 * math.ulp(at)
            return [*values, at + step if descending else at - step, *[""] * (len(order.key) - len(values) - 1)]
        values.append(item[column])
    return values


def hub_cursor(order: HubOrder, place: list[Any]) -> str:
    """The hub's cursor of the place in the list whose ``key`` columns hold ``place``
    (:func:`coordhub.core.paging.cursor`)."""
    return paging.cursor(dict(zip([column for column, _, _ in order.key], place, strict=True)), order.key)


def read_cursor(order: HubOrder, cursor: str | None) -> tuple[str | None, list[Any] | None]:
    """The hub's cursor and the identity of the next item to answer that a tool's ``cursor`` holds
    (:func:`next_cursor`); ``(None, None)`` for None. ``ToolError`` (``invalid``) for another text."""
    if cursor is None:
        return None, None
    try:
        place, first = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(place, list) and len(place) == len(order.key) and isinstance(first, list)
                and len(first) == len(order.identity)):
            raise ValueError("not this list's cursor")
    except (ValueError, TypeError, binascii.Error):
        raise ToolError("invalid: cursor: not a next_cursor of this tool's answers, as given") from None
    return hub_cursor(order, place), first
