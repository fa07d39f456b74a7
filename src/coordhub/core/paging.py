"""How much of a list one answer carries: its row limit and about :data:`PAGE_BYTES` of encoded text.

A list answer is built whole in the hub's memory before it is sent, and a
message body or a description may be 512 KiB: 100 such rows made one inbox
answer 52 MB (review DoS). So every list of messages, workflows, work items,
components and todos stops at about :data:`PAGE_BYTES` of its rows' text
(always at least one row, so a cursor always moves) and says where the next
answer starts. A row's text is counted in the bytes it takes in the answer
(:func:`encoded`): UTF-8 as :mod:`coordhub.jsonbytes` writes it, escapes
included, so a body of CJK, emoji or control characters (3, 4 or 6 bytes
each) weighs what it sends, not its ``len()`` (characters made such an
answer several times its bound). Sizes are taken of values already read: no
extra query.

:func:`cursor` and :func:`parse_cursor` are the opaque cursor of a list ordered
by several columns (``Coord-Next-Cursor``, ``cursor=``): the last row's values
of those columns.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from coordhub import jsonbytes
from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tables.records import Key

PAGE_BYTES = 4 << 20  # encoded bytes of text one list answer carries, about (at least one row)
ROW_BYTES = 400       # what a row's short fields (ids, names, times) add to that, roughly
MAX_ROW_TEXT = 600_000  # the most characters one row may hold (a 512 KiB body or description and its short fields)
MAX_BATCH = 64        # rows :func:`gather` asks for at once
MAX_CURSOR = 2048     # characters of a cursor the hub reads


def size(row: Row, fields: tuple[str, ...]) -> int:
    """What one row counts against an answer's budget, in bytes: :data:`ROW_BYTES` and what the values of its
    ``fields`` take encoded (:func:`encoded`; a missing field counts as null)."""
    return ROW_BYTES + encoded([row.get(f) for f in fields])


def encoded(value: Any) -> int:
    """The length in bytes of ``value`` as the hub's answers encode it (:func:`coordhub.jsonbytes.dumps`: UTF-8,
    a quote or line break 2 bytes escaped, another control character 6).

    Exact, by encoding: orjson scans ASCII text without escapes at several GB/s, so this costs the common case
    little, and a shortcut such as ``len()`` for ASCII text would miss escapes (a body of ``\x01`` is 6 bytes a
    character). Raises as that encoder does for what JSON cannot hold."""
    return len(jsonbytes.dumps(value))


Fetch = Callable[[int, Row | None], list[Row]]  # the next k rows of a list after a row (None: from the start)


def take(fetch: Fetch, limit: int, fields: tuple[str, ...], budget: int = PAGE_BYTES, *,
         first: bool = True) -> tuple[list[Row], bool]:
    """The rows of a list one answer carries, and whether more follow (a row read or cut was left out).

    At most ``limit`` rows and as many as keep their :func:`size` within ``budget`` bytes, at least one unless
    ``first`` is false (a list sharing an answer whose budget the rest used up); read with :func:`gather` (at
    most ``limit`` + 1 rows: the one past the limit says more follow), each row sized once."""
    rows, sizes = gather(fetch, limit + 1, fields, budget)
    n = _cut(sizes[:limit], budget, first)
    # a read that stopped on the budget after one row it kept (a row over the budget, read alone) did not look
    # further: more may follow (at worst the next answer is empty)
    return rows[:n], n < len(rows) or (n == len(rows) < limit + 1 and sum(sizes) > budget)


def gather(fetch: Fetch, limit: int, fields: tuple[str, ...], budget: int = PAGE_BYTES) -> tuple[list[Row], list[int]]:
    """Up to ``limit`` rows and the :func:`size` of each, read in batches so that no more than about ``budget``
    (:data:`PAGE_BYTES`) and one row's text is ever held: ``fetch(k, last)`` gives the next ``k`` rows after
    ``last`` (None: from the start), in the list's order. Each batch asks for as many rows as the budget left
    could take at :data:`MAX_ROW_TEXT` each (at least one, at most :data:`MAX_BATCH`), so a list of short rows
    takes one query and one of long rows several, never 500 rows of 512 KiB at once (review: such a read held
    256 MB). Stops once past the budget: what :func:`take` then cuts says more follow."""
    out: list[Row] = []
    sizes: list[int] = []
    total, last = 0, None
    while len(out) < limit:
        k = max(1, min(limit - len(out), (budget - total) // MAX_ROW_TEXT + 1, MAX_BATCH))
        rows = fetch(k, last)
        weights = [size(r, fields) for r in rows]
        out += rows
        sizes += weights
        total += sum(weights)
        if len(rows) < k or total > budget:
            break
        last = rows[-1]
    return out, sizes


def _cut(sizes: Iterable[int], budget: int, first: bool) -> int:
    """How many of ``sizes``, from the first, stay within ``budget`` (at least one when ``first``)."""
    total = n = 0
    for one in sizes:
        total += one
        if total > budget and (n or not first):
            break
        n += 1
    return n


def page(find: Callable[[int, tuple[Any, ...] | None], list[Row]], limit: int, fields: tuple[str, ...], key: Key,
         after: str | None, blank: tuple[str, ...] = ()) -> tuple[list[Row], str | None]:
    """One answer of a list in the order ``key``, after the opaque cursor ``after`` (:func:`parse_cursor`: None
    from the start, ``Invalid`` for one not of this list), read with :func:`take` over the store's ``find``
    (:func:`keyed`): at most ``limit`` rows and about :data:`PAGE_BYTES` of them, and the :func:`cursor` after
    the last one when more follow (None: the end).

    ``blank``: columns set to None in every row before it is sized, so a *brief* list neither carries them nor
    counts them against the answer's budget (the dashboard's lists leave out the long text they never show);
    never key columns."""
    rows, more = take(keyed(_blanked(find, blank) if blank else find, key, parse_cursor(after, key)), limit, fields)
    return rows, (cursor(rows[-1], key) if more and rows else None)


def _blanked(find: Callable[[int, tuple[Any, ...] | None], list[Row]],
             blank: tuple[str, ...]) -> Callable[[int, tuple[Any, ...] | None], list[Row]]:
    def read(k: int, after: tuple[Any, ...] | None) -> list[Row]:
        return [{**r, **dict.fromkeys(blank)} for r in find(k, after)]
    return read


def keyed(find: Callable[[int, tuple[Any, ...] | None], list[Row]], key: Key,
          after: tuple[Any, ...] | None = None) -> Fetch:
    """The :data:`Fetch` of a list in the order ``key`` from after the row whose key columns hold ``after`` (None:
    from the start): ``find(k, after)`` is the store's query for the next ``k`` rows after ``after``."""
    return lambda k, last: find(k, after if last is None else values(last, key))


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


_SURROGATE = re.compile("[\ud800-\udfff]")


def _is(value: Any, kind: type) -> bool:
    """Whether a cursor's value may stand for a column of Python type ``kind`` (finite, within 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    if isinstance(value, str):
        # a NUL or a lone surrogate is no stored value: PostgreSQL refuses the one and UTF-8 the other (a 500)
        return kind is str and "\x00" not in value and not _SURROGATE.search(value)
    return (kind is float or isinstance(value, int) and kind is int) and math.isfinite(value) and abs(value) < 2**62
