"""``coord archive``: export the hub's history as JSON Lines before retention removes it; import it for audits.

Both work on the database itself (``--database-url``, else the SQLite file in
the data dir, as ``coord serve`` finds it): export only reads, so it runs
beside a serving hub; import writes only into a database with no history
(a new one), never behind a hub's back. The format is in
:mod:`coordhub.core.archive` and docs/retention.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from coordhub.cli.common import EXIT_CONFLICT, EXIT_REFUSED, EXIT_USAGE, fail
from coordhub.cli.serve import opt

app = typer.Typer(help="Export the hub's history (JSON Lines) and import it into an empty hub for audits.",
                  no_args_is_help=True)


def _open(data_dir: Path | None, database_url: str | None) -> Any:
    import logging

    from coordhub.errors import Unavailable

    # The writer logs a refused unit with its traceback; the command reports it in one line of its own.
    logging.getLogger("coordhub.store").addHandler(logging.NullHandler())
    from coordhub.server import ServerConfig
    from coordhub.store import open_store

    url = ServerConfig(data_dir=data_dir, database_url=database_url).resolved_database_url()
    try:
        store = open_store(url)
        store.open()
    except Unavailable as exc:
        fail(f"database unreachable: {exc.message}", EXIT_REFUSED)
    except (OSError, ValueError, RuntimeError) as exc:
        fail(f"cannot open the database {url}: {exc}", EXIT_REFUSED)
    return store


def _when(text: str | None, flag: str) -> float | None:
    from coordhub.clock import parse_iso

    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError as exc:
        fail(f"{flag} {text!r} is not an ISO 8601 time ({exc})", EXIT_USAGE)


def _progress(unit: str) -> Any:
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from coordhub.cli.output import Console

    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    return Progress(TextColumn("{task.description:<10}"), BarColumn(), counter, TimeElapsedColumn(),
                    console=Console(stderr=True).rich, transient=True, disable=not sys.stderr.isatty())


@app.command("export")
def export(
    since: str | None = typer.Option(None, "--since", help="Only rows from this time on (ISO 8601, e.g. "
                                     "2026-11-01T00:00:00Z); a child row (receipt, attempt, log) goes by its parent."),
    until: str | None = typer.Option(None, "--until", help="Only rows from before this time (ISO 8601)."),
    kinds: str | None = typer.Option(None, "--kinds", help="Comma-separated: sessions, events, messages, leases, "
                                     "conversations, assignments (default: all)."),
    data_dir: Path | None = opt("data_dir"),
    database_url: str | None = opt("database_url"),
) -> None:
    """Write the hub's history to stdout as JSON Lines (a header, then one row per line), with progress on stderr.

    coord archive export --since 2026-11-01T00:00:00Z --kinds events,messages > november.jsonl
    """
    from coordhub.core import archive
    from coordhub.errors import Invalid

    start, end = _when(since, "--since"), _when(until, "--until")
    chosen = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None
    try:
        tables = archive.tables_of(chosen)
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)
    store = _open(data_dir, database_url)
    try:
        with _progress("rows") as bar:
            task = bar.add_task("export", total=archive.count(store, tables, start, end))
            written = archive.export(store, sys.stdout, chosen, start, end, time.time(),
                                     lambda n: bar.advance(task, n))
        sys.stdout.flush()
    except BrokenPipeError:
        fail("archive export: the reader of stdout went away", EXIT_REFUSED)
    finally:
        store.close()
    print(f"exported {written} rows", file=sys.stderr)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="An archive written by "
                                "coord archive export."),
    data_dir: Path | None = opt("data_dir"),
    database_url: str | None = opt("database_url"),
) -> None:
    """Read an archive into an empty hub database (for audits); refuses one that holds any history.

    coord archive import november.jsonl --database-url sqlite:///audit/coord.db
    """
    from coordhub.core import archive
    from coordhub.errors import Conflict, Invalid

    store = _open(data_dir, database_url)
    try:
        with open(file, "rb") as stream, _progress("bytes") as bar:
            task = bar.add_task("import", total=file.stat().st_size)
            written = archive.import_archive(store, stream, lambda n: bar.advance(task, n))
    except Conflict as exc:
        fail(exc.message, EXIT_CONFLICT)
    except Invalid as exc:
        fail(f"{file}: {exc.message}", EXIT_USAGE)
    except Exception as exc:  # the database refused a row (a duplicate key in a hand-made file)
        fail(f"{file}: the database refused a row: {exc}", EXIT_REFUSED)
    finally:
        store.close()
    print(f"imported {written} rows", file=sys.stderr)
