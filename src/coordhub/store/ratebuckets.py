"""Per-token rate budgets shared by the hub processes of one PostgreSQL database (issue 14 point 2).

Each hub keeps its token buckets in memory (the request path never waits for
the database) and, a few times a second, charges what it let through to one
shared bucket per key in ``rate_buckets`` with a single statement, reading
back every charged key's level. See :class:`coordhub.api.auth.RateLimiter` for
how the hub uses the levels, and docs/scaling.md for the trade-off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

# One statement for all known keys: refill each bucket for the time since its last charge (capped at the burst),
# take what was spent, and never let the debt pass one burst (a flood then waits one burst's refill, no more).
_CHARGE = """
UPDATE rate_buckets AS b
SET tokens = greatest(-%(burst)s, least(%(burst)s, b.tokens + greatest(0, %(now)s - b.at) * %(rate)s) - u.s),
    at = greatest(b.at, %(now)s)
FROM unnest(%(keys)s::text[], %(spent)s::float8[]) AS u(k, s)
WHERE b.key = u.k
RETURNING b.key, b.tokens
"""
# Keys met for the first time start full, less what was spent. A key another hub created meanwhile is left to
# a second charge.
_CREATE = """
INSERT INTO rate_buckets (key, tokens, at)
SELECT k, greatest(-%(burst)s, %(burst)s - s), %(now)s FROM unnest(%(keys)s::text[], %(spent)s::float8[]) AS u(k, s)
ON CONFLICT (key) DO NOTHING
RETURNING key, tokens
"""


class RateBuckets(Protocol):
    """What the hub's charging task needs of shared buckets: :class:`SharedBuckets` (PostgreSQL),
    :class:`coordhub.store.sqlitebuckets.SQLiteBuckets` (workers of one SQLite file) or
    :class:`coordhub.store.redisbuckets.RedisBuckets`."""

    where: str  # what the hub's log names when a charge fails

    def charge(self, rate: float, burst: int, now: float, spent: dict[str, int]) -> dict[str, float]:
        """Charge ``spent`` (key → requests); return each charged key's level (tokens left, negative: debt)."""

    def close(self) -> None:
        """Release the connection."""


class SharedBuckets:
    """Charges spent requests to ``rate_buckets`` over one dedicated connection (thread-safe, blocking)."""

    where = "database"  # named in the hub's log when the charge fails

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._lock = threading.Lock()

    def charge(self, rate: float, burst: int, now: float, spent: dict[str, int]) -> dict[str, float]:
        """Charge ``spent`` (key → requests let through since the last charge); return each key's level now.

        ``now`` is the database's time (epoch seconds, the hubs' shared clock).
        Raises the driver's error when the database cannot be reached (the
        caller fails open: its own buckets go on limiting per process).
        """
        levels: dict[str, float] = {}
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                for sql in (_CHARGE, _CREATE, _CHARGE):  # known keys; new keys; new keys another hub made first
                    keys = [k for k in spent if k not in levels]
                    if not keys:
                        break
                    params = {"burst": float(burst), "rate": float(rate), "now": now, "keys": keys,
                              "spent": [float(spent[k]) for k in keys]}
                    levels.update((r["key"], float(r["tokens"])) for r in self._conn.execute(sql, params))
            except Exception:
                conn, self._conn = self._conn, None
                try:
                    conn.close()
                except Exception:
                    pass
                raise
        return levels

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
