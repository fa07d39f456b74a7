"""A session's stream slots as PostgreSQL advisory locks: ``streams_per_token`` across every hub on one database.

Hubs behind a load balancer share one database, so the database is where a
session's streams (SSE and long-polls) can be counted wherever they landed
(:class:`coordhub.api.streams.StreamSlots`). Slot ``i`` of a key is the
session-level advisory lock ``(high, low * per_key + i)`` in the two-int4 form
(the writers' lock, :mod:`coordhub.store.postgres`, is in the bigint form, a
separate space), where ``high`` and ``low`` come from the key's BLAKE2b digest:
31 bits each, less ``log2(per_key)``, so both stay positive int4 values and
two sessions share one budget only once in about 2**56 pairs. A hub holds a slot
while its slots connection holds the lock: ``pg_try_advisory_lock`` refuses a
lock another connection holds at once, nothing waits, and the server drops the
locks of a connection that ends, so a hub killed with its streams open frees
their slots with it.

A connection takes a lock it already holds again (the locks stack), so the
process remembers which locks it holds, as
:class:`coordhub.api.streams.SharedSlots` does with its byte-range locks: two
keys whose digests collide share one budget rather than exceed it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg

from coordhub.errors import Unavailable, first_line

_HALF = 1 << 31  # each key of a lock lies below it (a positive int4)
log = logging.getLogger(__name__)

# Which locks of a key's block some connection holds: read first, so that a key whose slots are all held is
# refused in one round trip, and a free one is usually the first tried.
_HELD = """
SELECT objid::int8 AS low FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid = %s::int8::oid
  AND objid BETWEEN %s::int8::oid AND %s::int8::oid
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class Ticket(NamedTuple):
    """A slot held: its lock's two keys, and the connection (by generation) it is held on."""

    high: int
    low: int
    generation: int


class AdvisorySlots:
    """Takes and gives back stream slots over one dedicated connection (blocking; use from one thread only).

    ``connect`` opens an autocommit psycopg connection whose rows are dicts.
    Raises :class:`~coordhub.errors.Unavailable` when the database cannot be
    asked; the connection is then dropped (its locks with it) and the next
    call opens another.

    Each slot is held on the server's session of this connection: behind a
    pooler in transaction mode the locks would land on any server connection,
    so the hubs must reach PostgreSQL directly or through a session-mode pooler
    (docs/scaling.md).
    """

    where = "database"  # what the hub's log names when it cannot count here

    def __init__(self, connect: Callable[[], Any], per_key: int) -> None:
        self.per_key = per_key
        self._span = _HALF // per_key  # the low key reduced modulo this: low * per_key + i < 2**31
        self._connect = connect
        self._conn: Any = None
        self._generation = 0  # moves on each new connection: a ticket of an older one holds nothing
        self._held: set[tuple[int, int]] = set()  # the locks this process holds, on the current connection

    def _keys(self, key: str) -> tuple[int, int]:
        """The key's high key and the first low key of its block."""
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        return digest >> 33, (digest & 0xFFFFFFFF) % self._span * self.per_key

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except psycopg.Error as exc:
                raise Unavailable(f"cannot count stream slots in the database: {first_line(exc)}") from exc
            self._generation += 1
        return self._conn

    def _lost(self, exc: psycopg.Error) -> Unavailable:
        """Drop the connection (the server drops its locks with it) and what this process thought it held."""
        self.close()
        return Unavailable(f"cannot count stream slots in the database: {first_line(exc)}")

    def take(self, key: str) -> Ticket | None:
        """A free slot of ``key``, now held by this hub; None when every one is held by some hub on the database.

        One round trip reads which of the key's slots are held anywhere;
        then each free one is tried in turn until one is taken (another hub
        may take it in between). A single statement locking "the first free
        one" could lock more than one: PostgreSQL applies no ``LIMIT`` before
        a locking function (its manual warns of exactly this).
        """
        conn = self._connection()
        high, base = self._keys(key)
        try:
            taken = {row["low"] for row in conn.execute(_HELD, (high, base, base + self.per_key - 1)).fetchall()}
            for low in range(base, base + self.per_key):
                if low in taken or (high, low) in self._held:
                    continue
                row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS taken", (high, low)).fetchone()
                if row is not None and row["taken"]:
                    self._held.add((high, low))
                    return Ticket(high, low, self._generation)
        except psycopg.Error as exc:
            raise self._lost(exc) from exc
        return None

    def give(self, ticket: Ticket) -> None:
        """Give back the slot of ``ticket`` (:meth:`take`'s); nothing when the connection it was held on is gone."""
        lock = (ticket.high, ticket.low)
        if ticket.generation != self._generation or self._conn is None or lock not in self._held:
            return
        self._held.discard(lock)
        try:
            row = self._conn.execute("SELECT pg_advisory_unlock(%s, %s) AS given", lock).fetchone()
        except psycopg.Error as exc:
            raise self._lost(exc) from exc
        if row is None or not row["given"]:  # not held by this server session: a pooler between (see above)
            log.warning("a stream slot's lock %s was not held by the hub's connection when given back", lock)

    def close(self) -> None:
        """Close the connection, which gives back every slot it holds."""
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
