"""Turn bounds: what a conversation may hold and what a session may store per UTC day.

A conversation holds at most :data:`MAX_TURNS_PER_CONVERSATION` turns and
:data:`MAX_CONVERSATION_BYTES` of text (409 ``conversation_full``); a session
stores at most :data:`MAX_SESSION_TURNS_PER_DAY` turns and
:data:`MAX_SESSION_BYTES_PER_DAY` a UTC day (429 ``turn_quota``). Refused
turns are stored too, so they count. :func:`check` runs in the send's
transaction, before the turn is recorded and the day charged; as for the write
quota (:mod:`coordhub.core.quota`), no other hub process writes in between, so
the daily bound holds across every hub on one database.

A full conversation can still be released: seed 004's ``release`` turn is what
ends its turns' pending state, so without it they would stay in the
recipient's inbox for good (review). An accepted release of at most
:data:`MAX_RELEASE_BYTES` may pass the conversation's bounds by up to
:data:`RELEASE_HEADROOM_TURNS` turns and that many times
:data:`MAX_RELEASE_BYTES`, a fixed headroom only releases use, so a
conversation still holds a bounded amount. The daily bounds hold for releases
too. (``complete`` and ``escalate`` are ordinary turns in seed 004: they end
nothing, so they get no headroom.)
"""

from __future__ import annotations

from typing import Any

from coordhub.core.identity import Actor
from coordhub.errors import Conflict, RateLimited
from coordhub.store.base import Row
from coordhub.store.tx import Tx

MAX_TURNS_PER_CONVERSATION = 10_000     # recorded turns, accepted or refused
MAX_CONVERSATION_BYTES = 64 * 2**20     # stored text of its turns
MAX_SESSION_TURNS_PER_DAY = 20_000      # turns one session stores in a UTC day
MAX_SESSION_BYTES_PER_DAY = 256 * 2**20  # and their stored text
DAY = 86_400
MAX_RELEASE_BYTES = 16 * 2**10          # the stored text of a release that may use the headroom
RELEASE_HEADROOM_TURNS = 100            # releases a full conversation still takes


class ConversationFull(Conflict):
    """The conversation holds its bound of turns or bytes (409; ``bound``, ``limit``): open a new one."""

    code = "conversation_full"


class TurnQuota(RateLimited):
    """The session stored its bound of turns or bytes today (429; ``bound``, ``limit``, ``retry_after``)."""

    code = "turn_quota"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after)
        self.details.update(details)


def check(tx: Tx, actor: Actor, conv: Row | None, size: int, now: float, *, release: bool = False) -> bool:
    """Refuse a turn that would take its conversation or its author's day past a bound (409, 429); return whether
    it is the author's first turn stored this UTC day (its charge then forgets the days before:
    :meth:`~coordhub.store.tables.quota.DailyQuota.charge`).

    ``release``: the turn is an accepted ``release``; one of at most :data:`MAX_RELEASE_BYTES` is held to the
    conversation's bounds plus the release headroom (see the module docstring)."""
    if conv is not None:
        turns_bound, bytes_bound = MAX_TURNS_PER_CONVERSATION, MAX_CONVERSATION_BYTES
        if release and size <= MAX_RELEASE_BYTES:
            turns_bound += RELEASE_HEADROOM_TURNS
            bytes_bound += RELEASE_HEADROOM_TURNS * MAX_RELEASE_BYTES
        if int(conv["turns"]) + 1 > turns_bound:
            raise ConversationFull(f"{conv['conversation_id']} holds {MAX_TURNS_PER_CONVERSATION} turns, the bound "
                                   "of a conversation: continue in a new one (a release of at most "
                                   f"{MAX_RELEASE_BYTES} bytes still goes in)", bound="turns",
                                   limit=MAX_TURNS_PER_CONVERSATION)
        if int(conv["bytes"]) + size > bytes_bound:
            raise ConversationFull(f"{conv['conversation_id']} would hold over {MAX_CONVERSATION_BYTES} bytes of "
                                   "turns, the bound of a conversation: continue in a new one (a release of at most "
                                   f"{MAX_RELEASE_BYTES} bytes still goes in)", bound="bytes",
                                   limit=MAX_CONVERSATION_BYTES)
    day = int(now // DAY)
    used = tx.turn_quota.used(actor.session_id, day)
    turns, stored = (int(used["turns"]), int(used["bytes"])) if used else (0, 0)
    wait = max(1, int((day + 1) * DAY - now))
    if turns + 1 > MAX_SESSION_TURNS_PER_DAY:
        raise TurnQuota(f"{actor.session_id} stored {turns} turns today, the bound of a session per UTC day "
                        f"({MAX_SESSION_TURNS_PER_DAY})", wait, bound="turns_per_day",
                        limit=MAX_SESSION_TURNS_PER_DAY)
    if stored + size > MAX_SESSION_BYTES_PER_DAY:
        raise TurnQuota(f"{actor.session_id} would store over {MAX_SESSION_BYTES_PER_DAY} bytes of turns today, the "
                        "bound of a session per UTC day", wait, bound="bytes_per_day", limit=MAX_SESSION_BYTES_PER_DAY)
    return used is None
