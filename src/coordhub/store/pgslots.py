"""A session's stream slots as PostgreSQL advisory locks: ``streams_per_token`` across every hub on one database.

Hubs behind a load balancer share one database, so the database is where a
session's streams (SSE and long-polls) can be counted wherever they landed
(:class:`coordhub.api.streams.StreamSlots`). Slot ``i`` of a key is the
session-level advisory lock ``(NAMESPACE, h * per_key + i)``, in the two-int4
form (the writers' lock, :mod:`coordhub.store.postgres`, is in the bigint form,
a separate space), where ``h`` is the key's BLAKE2b digest reduced so that every
lock id stays below 2**31. A hub holds a slot while its slots connection holds
the lock: ``pg_try_advisory_lock`` refuses a lock another connection holds at
once, nothing waits, and the server drops the locks of a connection that ends,
so a hub killed with its streams open frees their slots with it.

A connection takes a lock it already holds again (the locks stack), so the
process remembers which lock ids it holds, as
:class:`coordhub.api.streams.SharedSlots` does with its byte-range locks: two
keys whose digests collide share one budget rather than exceed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg

from coordhub.errors import Unavailable

NAMESPACE = 0x636F6F72  # the first key of every slot lock ("coor"); the second is the slot's id
_IDS = 1 << 31  # lock ids lie below it (the second key is a signed int4)


class Ticket(NamedTuple):
    """A slot held: its lock id, and the connection (by generation) it is held on."""

    lock: int
    generation: int


class AdvisorySlots:
    """Takes and gives back stream slots over one dedicated connection (blocking; use from one thread only).

    ``connect`` opens an autocommit psycopg connection whose rows are dicts. Raises
    :class:`~coordhub.errors.Unavailable` when the database cannot be asked;
    the connection is then dropped (its locks with it) and the next call
    opens another.
    """

    where = "database"  # what the hub's log names when it cannot count here

    def __init__(self, connect: Callable[[], Any], per_key: int) -> None:
        self.per_key = per_key
        self._span = _IDS // per_key  # digests reduced modulo this: h * per_key + i < 2**31
        self._connect = connect
        self._conn: Any = None
        self._generation = 0  # moves on each new connection: a ticket of an older one holds nothing
        self._held: set[int] = set()  # the lock ids this process holds, on the current connection

    def _base(self, key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % self._span * self.per_key

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except psycopg.Error as exc:
                raise Unavailable(f"cannot count stream slots in the database: {_first_line(exc)}") from exc
            self._generation += 1
        return self._conn

    def _lost(self, exc: psycopg.Error) -> Unavailable:
        """Drop the connection (the server drops its locks with it) and what this process thought it held."""
        self.close()
        return Unavailable(f"cannot count stream slots in the database: {_first_line(exc)}")

    def take(self, key: str) -> Ticket | None:
        """A free slot of ``key``, now held by this hub; None when every one is held by some hub on the database.

        One round trip per slot tried, in order, each only while the ones
        before it are held: a single statement locking "the first free one"
        could lock more than one (PostgreSQL applies no ``LIMIT`` before a
        locking function; its manual warns of exactly this).
        """
        conn = self._connection()
        base = self._base(key)
        try:
            for i in range(self.per_key):
                lock = base + i
                if lock in self._held:
                    continue
                row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS taken", (NAMESPACE, lock)).fetchone()
                if row is not None and row["taken"]:
                    self._held.add(lock)
                    return Ticket(lock, self._generation)
        except psycopg.Error as exc:
            raise self._lost(exc) from exc
        return None

    def give(self, ticket: Ticket) -> None:
        """Give back the slot of ``ticket`` (:meth:`take`'s); nothing when the connection it was held on is gone."""
        if ticket.generation != self._generation or self._conn is None or ticket.lock not in self._held:
            return
        self._held.discard(ticket.lock)
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMESPACE, ticket.lock))
        except psycopg.Error as exc:
            raise self._lost(exc) from exc

    def close(self) -> None:
        """Close the connection, which gives back every slot it holds."""
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
