"""Read connections recover by themselves when the database drops them (coordhub.store.readers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from coordhub.store import open_store
from tests.conftest import scratch_database

READERS = 4  # the store's reader threads (ThreadedStore's default)


def _slow_read(tx: Any) -> int:
    time.sleep(0.05)  # held long enough that concurrent reads land on different reader threads
    return 1


@pytest.mark.postgres
def test_reads_after_the_database_dropped_every_idle_connection_are_answered() -> None:
    """A restart of PostgreSQL (here: every session of the database terminated) kills the connection each reader
    thread kept; the next read on such a thread is tried once more on a new connection instead of answering
    503 though the database is up (seen in CI: a 503 for an inbox read after the hub had recovered)."""
    with scratch_database("coordhub_readers") as url:
        store = open_store(url)
        store.open()
        try:
            async def reads(n: int) -> list[Any]:
                return await asyncio.gather(*(store.read(_slow_read) for _ in range(n)), return_exceptions=True)

            assert asyncio.run(reads(2 * READERS)) == [1] * (2 * READERS)  # every reader thread holds one now
            with psycopg.connect(url, autocommit=True) as admin:
                killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
            assert killed is not None and killed[0] >= READERS
            assert asyncio.run(reads(2 * READERS)) == [1] * (2 * READERS)
        finally:
            store.close()
