"""Per-token rate budgets shared by the worker processes of one SQLite file (``coord serve --workers N``).

The same contract as :class:`coordhub.store.ratebuckets.SharedBuckets` (issue
14 point 2) on the ``rate_buckets`` table both backends have: each worker
limits in memory and, a few times a second, charges what it let through and
adopts every charged key's shared level. One short write transaction per
charge, taken in turn with the writers (the same ``flock``), so it never
sleeps in SQLite's busy handler.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

# Refill for the time since the last charge (capped at the burst), take what was spent, never owe more than one
# burst; a key met for the first time starts full, less what was spent.
_CHARGE = """
INSERT INTO rate_buckets (key, tokens, at) VALUES (:key, max(-:burst, :burst - :spent), :now)
ON CONFLICT (key) DO UPDATE
SET tokens = max(-:burst, min(:burst, tokens + max(0, :now - at) * :rate) - :spent), at = max(at, :now)
RETURNING tokens
"""


class SQLiteBuckets:
    """Charges spent requests to ``rate_buckets`` in the shared file (thread-safe, blocking)."""

    where = "database"  # named in the hub's log when the charge fails

    def __init__(self, connect: Callable[[], sqlite3.Connection],
                 lock: Callable[[], Callable[[], None]] | None) -> None:
        self._connect = connect
        self._lock = lock
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.Lock()

    def charge(self, rate: float, burst: int, now: float, spent: dict[str, int]) -> dict[str, float]:
        """Charge ``spent`` (key → requests let through since the last charge); return each key's level now.

        ``now`` is epoch seconds (the processes share the machine's clock).
        Raises ``sqlite3.Error`` when the file cannot take the charge (the
        caller fails open: its own buckets go on limiting per process).
        """
        with self._mutex:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            release = self._lock() if self._lock is not None else None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    levels = {}
                    for key, n in spent.items():
                        row = conn.execute(_CHARGE, {"key": key, "burst": float(burst), "spent": float(n),
                                                     "now": now, "rate": float(rate)}).fetchone()
                        levels[key] = float(row["tokens"])
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if release is not None:
                    release()
        return levels

    def close(self) -> None:
        """Close the connection."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
