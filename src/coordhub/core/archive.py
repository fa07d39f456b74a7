"""Archive: the hub's history as JSON Lines, exported before retention removes it and imported for audits.

The file is UTF-8 JSON Lines. The first line is the header::

    {"format": "coordhub-archive", "version": 1, "hub_id": "…", "exported_at": "…Z",
     "since": "…Z" | null, "until": "…Z" | null, "kinds": ["events", …]}

and every other line one stored row, as the database holds it (times are
epoch seconds)::

    {"table": "events", "row": {"id": 41, "kind": "message.sent", …}}

Tables come whole, one after another, a parent before its children
(messages before their receipts, assignments before their attempts, logs and
stage runs), each in key order. ``--kinds`` chooses among :data:`KINDS`;
``--since``/``--until`` keep rows whose time (a child: its parent's) is in
``[since, until)``. Tokens and idempotency records are never exported: they
are credentials and caches, not history.

Memory stays bounded both ways: export reads pages of :data:`PAGE` rows; import
holds one batch of :data:`PAGE` rows and refuses a line longer than
:data:`MAX_LINE` bytes. Import writes only into an empty database (no row in
any archived table), so ids stay as they were and nothing mixes with live
state, and in one transaction, so a file that fails anywhere leaves the
database as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from coordhub.clock import isoformat
from coordhub.errors import Conflict, Invalid
from coordhub.store.base import Store
from coordhub.store.tables.archive import TABLES

FORMAT, VERSION = "coordhub-archive", 1
PAGE = 500  # rows per read while exporting, and per transaction while importing
MAX_LINE = 16 * 1024 * 1024  # bytes: a relayed log chunk is at most ~1 MiB
KINDS: dict[str, tuple[str, ...]] = {
    "sessions": ("sessions",),
    "events": ("events",),
    "messages": ("messages", "receipts"),
    "leases": ("leases",),
    "conversations": ("conversations", "turns"),
    "assignments": ("assignments", "assignment_attempts", "assignment_logs", "stage_runs", "merge_entries",
                    "github_posts"),
}


def tables_of(kinds: list[str] | None) -> list[str]:
    """The tables the ``kinds`` name (all of them for None), in export order; ``Invalid`` for an unknown kind."""
    chosen = kinds or list(KINDS)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise Invalid(f"unknown kind {unknown[0]!r}: choose among {', '.join(KINDS)}", field="kinds")
    return [t for k in KINDS if k in chosen for t in KINDS[k]]


def header(store: Store, kinds: list[str], since: float | None, until: float | None, now: float) -> dict[str, Any]:
    """The first line of an archive of ``store``."""
    hub_id = store.read_sync(lambda tx: tx.meta.get("hub_id"))
    return {"format": FORMAT, "version": VERSION, "hub_id": hub_id, "exported_at": isoformat(now),
            "since": isoformat(since), "until": isoformat(until), "kinds": kinds}


def count(store: Store, tables: list[str], since: float | None, until: float | None) -> int:
    """How many rows an export of ``tables`` in the window will write (for a progress bar)."""
    def counted(table: str) -> int:
        n: int = store.read_sync(lambda tx: tx.archive.count(table, since, until))
        return n

    return sum(counted(t) for t in tables)


def rows(store: Store, tables: list[str], since: float | None, until: float | None) -> Iterator[dict[str, Any]]:
    """Every row to export, as archive lines (``{"table", "row"}``), page by page (each page one snapshot)."""
    for table in tables:
        key = TABLES[table].key
        after: list[Any] | None = None
        while True:
            page = _page(store, table, after, since, until)
            for row in page:
                yield {"table": table, "row": row}
            if len(page) < PAGE:
                break
            after = [page[-1][k] for k in key]


def _page(store: Store, table: str, after: list[Any] | None, since: float | None,
          until: float | None) -> list[dict[str, Any]]:
    rows_: list[dict[str, Any]] = store.read_sync(lambda tx: tx.archive.page(table, after, since, until, PAGE))
    return rows_


def export(store: Store, out: IO[str], kinds: list[str] | None, since: float | None, until: float | None,
           now: float, progress: Callable[[int], None] = lambda n: None) -> int:
    """Write the archive of ``store`` to ``out``; return the rows written. ``progress(n)`` after each page."""
    tables = tables_of(kinds)
    out.write(json.dumps(header(store, kinds or list(KINDS), since, until, now), separators=(",", ":")) + "\n")
    written = 0
    for line in rows(store, tables, since, until):
        out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
        written += 1
        if written % PAGE == 0:
            progress(PAGE)
    progress(written % PAGE)
    return written


def _parse(raw: bytes, number: int) -> Any:
    if len(raw) > MAX_LINE:
        raise Invalid(f"line {number} is longer than {MAX_LINE} bytes", field="file")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Invalid(f"line {number} is not JSON: {exc}", field="file") from None


def read_header(stream: IO[bytes]) -> dict[str, Any]:
    """The header line of an archive; ``Invalid`` when the file is not one this version can read."""
    head = _parse(stream.readline(MAX_LINE + 1), 1)
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise Invalid(f"not a coordhub archive: the first line has no \"format\": \"{FORMAT}\"", field="file")
    if head.get("version") != VERSION:
        raise Invalid(f"archive version {head.get('version')!r}: this coord reads version {VERSION}", field="file")
    return head


def _check_row(row: dict[str, Any], columns: frozenset[str], table: str, number: int) -> None:
    """``Invalid`` for a row naming a column its table lacks or holding a value no column can (a list, an object)."""
    unknown = sorted(set(row) - columns)
    if unknown:
        raise Invalid(f"line {number}: table {table} has no column {unknown[0][:80]!r}", field="file")
    for name, value in row.items():
        if not isinstance(value, str | int | float | type(None)):
            raise Invalid(f"line {number}: {table}.{name} holds a {type(value).__name__}, not a stored value",
                          field="file")


def import_archive(store: Store, stream: IO[bytes], progress: Callable[[int], None] = lambda n: None) -> int:
    """Write an archive into ``store``, which must hold no archived row, in one transaction; return the rows.

    Raises ``Conflict`` for a database that is not empty (naming its tables),
    ``Invalid`` for a line that is not an archive row (with its number), and
    the database's error for a row the schema refuses (a duplicate key); then
    nothing was written. The file is read as it is written, a batch of
    :data:`PAGE` rows at a time, so memory stays bounded however large it is.
    ``progress(bytes)`` after each batch.
    """
    read_header(stream)
    busy = store.read_sync(lambda tx: tx.archive.has_rows())
    if busy:
        raise Conflict(f"this database is not empty ({', '.join(busy)} hold rows): import into a new one, e.g. "
                       "--database-url sqlite:///audit.db, then run coord serve on it")
    columns = {t: store.columns(t) for t in TABLES}
    sync = store.identity_sync_unit()
    start, runs = (stream.tell() if stream.seekable() else None), [0]

    def unit(tx: Any) -> int:
        runs[0] += 1  # the writer may run a unit again (Store.submit_write): read the rows again
        if runs[0] > 1:
            if start is None:
                raise Conflict("the import's write had to run again and its input cannot be read twice: "
                               "nothing was written, run the import again")
            stream.seek(start)
        batch: list[dict[str, Any]] = []
        table, written, number, size = "", 0, 1, 0
        while raw := stream.readline(MAX_LINE + 1):
            number += 1
            line = _parse(raw, number)
            if not isinstance(line, dict) or line.get("table") not in TABLES or not isinstance(line.get("row"), dict):
                raise Invalid(f"line {number} is not an archive row ({{\"table\": one of {', '.join(TABLES)}, "
                              "\"row\": {…}})", field="file")
            _check_row(line["row"], columns[line["table"]], line["table"], number)
            if batch and (line["table"] != table or len(batch) >= PAGE):
                tx.archive.put_rows(table, batch, store.identity_clause)
                progress(size)
                batch, size = [], 0
            table = line["table"]
            batch.append(line["row"])
            size += len(raw)
            written += 1
        if batch:
            tx.archive.put_rows(table, batch, store.identity_clause)
            progress(size)
        tx.archive.raise_counters()
        tx.assignments.refresh_held()  # the archive's held_until named its own hub's leases
        if sync is not None:
            sync(tx)
        return written

    result: int = store.write_sync(unit)
    return result
