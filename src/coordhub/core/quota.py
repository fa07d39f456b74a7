"""Storage quota: what a session may write per UTC day into records retention never prunes.

Todos, workflows, work items, component states and the planning brain's
proposals stay until someone deletes them (proposals: never), so without a
bound one token could fill the hub's disk within its rate limit (a review measured about 46 MB/s). Each write of such a
record counts against its session's UTC day: at most :data:`MAX_WRITES_PER_DAY`
writes and :data:`MAX_BYTES_PER_DAY` bytes (its text, UTF-8, plus
:data:`ROW_OVERHEAD` for the row itself). Past either, the write is refused
with 429 ``write_quota`` and a ``Retry-After`` of the seconds to the next UTC
day. Admin tokens are not bounded (the person who runs the hub, an import).

Messages have a daily bound of their own (:func:`charge_message`): retention
prunes them, but never an unread direct message, so a session writing to one
that never reads (or never existed) would grow the disk without end. Events
and finished assignments are pruned by retention and leases are bounded by
count and size (:mod:`coordhub.core.leases`); conversation turns have their
own daily bound (:mod:`coordhub.core.turnbounds`).
:func:`charge` runs in the write's own transaction, before the record is
written, so a refused write leaves nothing behind. It reads the day's usage,
then counts the write, and no other hub process writes in between: on
PostgreSQL every batch holds the writers' fleet-wide advisory lock
(:mod:`coordhub.store.postgres`), on SQLite the file's write lock. So the
bound is the session's across every hub on one database, not each process's
(``tests/core/test_quota_across_hubs.py``).
"""

from __future__ import annotations

from typing import Any

from coordhub.core.identity import Actor
from coordhub.errors import RateLimited
from coordhub.store.tx import Tx

MAX_WRITES_PER_DAY = 50_000       # writes one session makes in a UTC day
MAX_BYTES_PER_DAY = 128 * 2**20   # and the bytes they store
ROW_OVERHEAD = 256                # bytes a write counts beyond its text (ids, times, indexes)
MAX_MESSAGES_PER_DAY = 100_000    # messages one session sends in a UTC day (more than one a second all day)
MAX_MESSAGE_BYTES_PER_DAY = 256 * 2**20  # and the bytes they store (:func:`size_of`)
DAY = 86_400


class WriteQuotaExceeded(RateLimited):
    """The session wrote its bound of writes or bytes today (429; ``bound``, ``limit``, ``retry_after``)."""

    code = "write_quota"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after)
        self.details.update(details)


def size_of(*texts: str | None) -> int:
    """The bytes one write counts: :data:`ROW_OVERHEAD` plus the UTF-8 length of each text given."""
    return ROW_OVERHEAD + sum(len(t.encode("utf-8", "surrogatepass")) for t in texts if t)


def charge(tx: Tx, actor: Actor, now: float, size: int, what: str) -> None:
    """Count one write of ``size`` bytes (:func:`size_of`) against the actor's UTC day.

    ``what`` names the record in the refusal ("todo", "work item", …).
    Raises :class:`WriteQuotaExceeded` (nothing counted) when the write would
    pass either bound; admins are not counted.
    """
    if actor.is_admin:
        return
    day = int(now // DAY)
    used = tx.write_quota.used(actor.session_id, day)
    writes, stored = (int(used["writes"]), int(used["bytes"])) if used else (0, 0)
    wait = max(1, int((day + 1) * DAY - now))
    if writes + 1 > MAX_WRITES_PER_DAY:
        raise WriteQuotaExceeded(
            f"{actor.session_id} made {writes} writes of todos, workflows, work items, components and proposals "
            f"today, the bound of a session per UTC day ({MAX_WRITES_PER_DAY}); this {what} was not written",
            wait, bound="writes_per_day", limit=MAX_WRITES_PER_DAY)
    if stored + size > MAX_BYTES_PER_DAY:
        raise WriteQuotaExceeded(
            f"{actor.session_id} would store over {MAX_BYTES_PER_DAY} bytes of todos, workflows, work items, "
            f"components and proposals today, the bound of a session per UTC day; this {what} was not written",
            wait, bound="bytes_per_day", limit=MAX_BYTES_PER_DAY)
    tx.write_quota.charge(actor.session_id, day, size, first=used is None)


def charge_message(tx: Tx, actor: Actor, now: float, size: int) -> None:
    """Count one message of ``size`` bytes (:func:`size_of`) against the actor's UTC day of sending.

    Raises :class:`WriteQuotaExceeded` (code ``message_quota``; nothing
    stored, the count rolled back with the send) when it passes
    :data:`MAX_MESSAGES_PER_DAY` or :data:`MAX_MESSAGE_BYTES_PER_DAY`. On
    PostgreSQL, unless the unit named its sender's row to read ahead
    (:class:`~coordhub.store.base.Ahead` ``quotas``, as the send route does),
    the judgement comes with a later round trip of the batch (at the latest
    one just before its ``COMMIT``); the send is undone then all the same.
    Admins (the hub's own notices, an operator) are not counted.
    """
    if actor.is_admin:
        return
    day = int(now // DAY)
    wait = max(1, int((day + 1) * DAY - now))

    def judge(sent: int, stored: int) -> None:
        if sent > MAX_MESSAGES_PER_DAY:
            raise MessageQuotaExceeded(
                f"{actor.session_id} sent {sent - 1} messages today, the bound of a session per UTC day "
                f"({MAX_MESSAGES_PER_DAY}); this message was not sent", wait, bound="messages_per_day",
                limit=MAX_MESSAGES_PER_DAY)
        if stored > MAX_MESSAGE_BYTES_PER_DAY:
            raise MessageQuotaExceeded(
                f"{actor.session_id} would store over {MAX_MESSAGE_BYTES_PER_DAY} bytes of messages today, the "
                "bound of a session per UTC day; this message was not sent", wait, bound="bytes_per_day",
                limit=MAX_MESSAGE_BYTES_PER_DAY)

    tx.message_quota.charge(actor.session_id, day, size, judge)


class MessageQuotaExceeded(WriteQuotaExceeded):
    """The session sent its bound of messages or message bytes today (429 ``message_quota``)."""

    code = "message_quota"
