"""The store: all durable state, behind one small interface (``base.Store``).

Only this package knows SQL. ``open_store(url)`` picks the backend from the
database URL.
"""

from __future__ import annotations

from coordhub.store.base import Store


def open_store(url: str, *, sqlite_synchronous: str = "FULL", shared: bool = False) -> Store:
    """Build (but do not open) the store a database URL names.

    ``sqlite:///path/to/file.db`` selects SQLite, ``postgresql://…`` (or
    ``postgres://…``) PostgreSQL. Raises ``ValueError`` for any other scheme, and
    ``RuntimeError`` with the install command when the PostgreSQL driver is missing. ``shared``: several
    processes on this machine will serve from one SQLite file (PostgreSQL is always shareable).
    """
    if url.startswith("sqlite:///"):
        from coordhub.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), synchronous=sqlite_synchronous, shared=shared)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        try:
            from coordhub.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "PostgreSQL support needs its driver: pip install 'coordhub[postgres]'"
            ) from exc
        return PostgresStore(url.replace("postgresql+psycopg://", "postgresql://"))
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://…")


__all__ = ["Store", "open_store"]
