"""The SQLite writer keeps its batches' statement journals in memory (issue 15).

A statement that may fail halfway (an UPDATE of many rows), and each unit of
a batch run again in a SAVEPOINT, has SQLite keep the pre-images of the pages
it changes in a statement journal, which it moves to a temporary file past
64 KiB. The writer's connection keeps it in memory, so a
batch creates, writes and deletes no temporary file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from coordhub.store.sqlite import SQLiteStore


def _temporary_files() -> list[str]:
    """SQLite temporary files this process holds open (they are unlinked at once: the name says ``(deleted)``)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "etilqs_" in target:  # SQLite's prefix for its temporary files
            found.append(target)
    return found


def test_a_batchs_savepoint_journal_stays_in_memory(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        def fill(tx: Any) -> None:
            tx.ex.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY, pad TEXT NOT NULL)")
            for i in range(2_000):  # ~500 pages of 4 KiB
                tx.ex.execute("INSERT INTO scratch (id, pad) VALUES (?, ?)", (i, "x" * 1000))

        store.write_sync(fill)
        seen: list[list[str]] = []

        def hold(tx: Any) -> None:  # keeps the writer busy while the next two units queue up behind it
            time.sleep(0.2)

        def rewrite(tx: Any) -> int:  # changes every page that existed before the savepoint began
            changed = tx.ex.execute("UPDATE scratch SET pad = ?", ("y" * 1000,))
            seen.append(_temporary_files())
            return changed

        first = store.submit_write(hold)
        time.sleep(0.05)
        batched = [store.submit_write(rewrite), store.submit_write(lambda tx: None)]
        first.result(10)
        assert [f.result(10) for f in batched] == [2_000, None]
        assert store._writer.batches >= 2  # type: ignore[attr-defined]  # the rewrite ran in a batch of two
    finally:
        store.close()
    assert seen == [[]], f"the writer wrote its statement journal to a temporary file: {seen}"
