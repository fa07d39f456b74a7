"""How much of a list one answer carries: its row limit and about :data:`PAGE_BYTES` of stored text.

A list answer is built whole in the hub's memory before it is sent, and a
message body or a description may be 512 KiB: 100 such rows made one inbox
answer 52 MB (review DoS). So every list of messages, workflows, work items,
components and todos stops at about :data:`PAGE_BYTES` of its rows' text
(always at least one row, so a cursor always moves) and says where the next
answer starts. Sizes are ``len()`` of strings already read: characters, not
encoded bytes, and no extra query.

:func:`cursor` and :func:`parse_cursor` are the opaque cursor of a list ordered
by several columns (``Coord-Next-Cursor``, ``cursor=``): the last row's values
of those columns.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tables.records import Key

PAGE_BYTES = 4 << 20  # stored text one list answer carries, about (at least one row)
ROW_BYTES = 400       # what a row's short fields (ids, names, times) add to that, roughly
MAX_ROW_TEXT = 600_000  # the most text one row may hold (a 512 KiB body or description and its short fields)
MAX_BATCH = 64        # rows :func:`gather` asks for at once
MAX_CURSOR = 2048     # characters of a cursor the hub reads


def size(row: Row, fields: tuple[str, ...]) -> int:
    """What one row counts against an answer's budget: :data:`ROW_BYTES` and the text of its ``fields``."""
    return ROW_BYTES + sum(len(row[f] or "") for f in fields)


def gather(fetch: Callable[[int, Row | None], list[Row]], limit: int, fields: tuple[str, ...]) -> list[Row]:
    """Up to ``limit`` rows read in batches so that no more than about :data:`PAGE_BYTES` and one row's text is
    ever held: ``fetch(k, last)`` gives the next ``k`` rows after ``last`` (None: from the start), in the list's
    order. Each batch asks for as many rows as the budget left could take at :data:`MAX_ROW_TEXT` each (at least
    one, at most :data:`MAX_BATCH`), so a list of short rows takes one query and one of long rows several, never
    500 rows of 512 KiB at once (review: such a read held 256 MB). Stops once past the budget: what
    :func:`fit` then cuts says more follow."""
    out: list[Row] = []
    total, last = 0, None
    while len(out) < limit:
        k = max(1, min(limit - len(out), (PAGE_BYTES - total) // MAX_ROW_TEXT + 1, MAX_BATCH))
        rows = fetch(k, last)
        out += rows
        total += sum(size(r, fields) for r in rows)
        if len(rows) < k or total > PAGE_BYTES:
            break
        last = rows[-1]
    return out


def fit(rows: Sequence[Row], fields: tuple[str, ...], budget: int | None = None) -> int:
    """How many of ``rows``, from the first, one answer carries: as many as keep the text of their ``fields``
    (plus :data:`ROW_BYTES` each) within ``budget`` (default :data:`PAGE_BYTES`), and at least one; 0 only for
    no rows."""
    budget = PAGE_BYTES if budget is None else budget
    total = 0
    for i, row in enumerate(rows):
        total += size(row, fields)
        if total > budget and i:
            return i
    return len(rows)


def page(find: Callable[[int, tuple[Any, ...] | None], list[Row]], limit: int, fields: tuple[str, ...], key: Key,
         after: str | None) -> tuple[list[Row], str | None]:
    """One answer of a list in the order ``key``, after the opaque cursor ``after`` (:func:`parse_cursor`: None
    from the start, ``Invalid`` for one not of this list), read with :func:`read` over the store's ``find``: at
    most ``limit`` rows and as many as :func:`fit` lets in, and the :func:`cursor` after the last one when more
    follow (None: the end)."""
    rows = read(find, limit + 1, fields, key, parse_cursor(after, key))
    n = fit(rows[:limit], fields)
    return list(rows[:n]), (cursor(rows[n - 1], key) if n < len(rows) else None)


def read(find: Callable[[int, tuple[Any, ...] | None], list[Row]], limit: int, fields: tuple[str, ...], key: Key,
         after: tuple[Any, ...] | None = None) -> list[Row]:
    """Up to ``limit`` rows of a list in the order ``key``, after the row whose key columns hold ``after``, read
    with :func:`gather`: ``find(k, after)`` is the store's query for the next ``k`` rows after ``after``."""
    return gather(lambda k, last: find(k, after if last is None else values(last, key)), limit, fields)


def values(row: Row, key: Key) -> tuple[Any, ...]:
    """The values of ``row``'s ``key`` columns: where the rows after it start."""
    return tuple(row[column] for column, _, _ in key)


def cursor(row: Row, key: Key) -> str:
    """The opaque cursor after ``row`` in a list in the order ``key`` (a table's): URL- and header-safe ASCII."""
    text = json.dumps(list(values(row, key)), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_cursor(text: str | None, key: Key) -> tuple[Any, ...] | None:
    """The column values :func:`cursor` wrote for ``key`` (None for None); raises ``Invalid`` (``cursor``) for
    anything else."""
    if text is None:
        return None
    try:
        if len(text) > MAX_CURSOR:
            raise ValueError("too long")
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not (isinstance(values, list) and len(values) == len(key)
                and all(_is(v, kind) for v, (_, kind, _) in zip(values, key, strict=True))):
            raise ValueError("not this list's cursor")
    except (ValueError, binascii.Error) as exc:
        raise Invalid("cursor must be the Coord-Next-Cursor header of the previous answer, as given",
                      field="cursor") from exc
    return tuple(values)


def _is(value: Any, kind: type) -> bool:
    """Whether a cursor's value may stand for a column of Python type ``kind`` (finite, within 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    if isinstance(value, str):
        return kind is str
    return (kind is float or isinstance(value, int) and kind is int) and math.isfinite(value) and abs(value) < 2**62
