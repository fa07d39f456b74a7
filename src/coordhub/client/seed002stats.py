"""Seed 002's ``get_stats()`` and ``generate_message_id()`` on the hub, and what each figure counts here.

Seed 002's ``CoordinationStats`` counted its Redis keys: ``total_messages``
the timeline (every instance's messages, its newest 1000 only),
``pending_messages`` the global set of unacknowledged ids,
``active_instances``/``instance_names`` the instances whose presence read
active, and ``messages_by_type`` nothing (always ``{}``). The hub shows a
session only its own messages and the broadcasts, and keeps an ack per
recipient, so the figures here are the caller's (:func:`stats`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordhub.client.seed002 import CoordinationClient

STATS_WINDOW = 1000  # messages counted, newest first: seed 002's timeline stopped at 1000 too


@dataclass(frozen=True)
class CoordinationStats:
    """Seed 002's statistics, as the hub can give them to one session (:func:`stats` says what each counts)."""

    total_messages: int = 0
    pending_messages: int = 0
    messages_by_type: dict[str, int] = field(default_factory=dict)
    active_instances: int = 0
    instance_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Seed 002's JSON shape: ``total_messages pending_messages messages_by_type active_instances
        instance_names``."""
        return {"total_messages": self.total_messages, "pending_messages": self.pending_messages,
                "messages_by_type": dict(self.messages_by_type), "active_instances": self.active_instances,
                "instance_names": list(self.instance_names)}


async def stats(client: CoordinationClient) -> CoordinationStats:
    """The caller's statistics: two reads of the hub (its messages, then presence), raising what they raise.

    * ``total_messages``: the messages the caller can see (sent to it, or broadcast), counted among the newest
      :data:`STATS_WINDOW`, read or not; seed 002 counted every instance's, which the hub shows nobody.
    * ``pending_messages``: those of them that ask for an ack the caller has not given (seed 002 had one ack per
      message, for every instance at once).
    * ``messages_by_type``: those of them per type label (seed 002 left it empty); a message sent with no type
      (``coord msg send`` without ``--type``) is counted in the total only.
    * ``active_instances``, ``instance_names``: the sessions whose presence is active or idle, by name.
    """
    seen = await client.check_messages(limit=STATS_WINDOW)
    kinds = Counter(str(m.type) for m in seen if m.type)  # MessageType is a StrEnum: str() is its value
    active = sorted(name for name, p in (await client.get_presence()).items() if p.active)
    return CoordinationStats(total_messages=len(seen),
                             pending_messages=sum(1 for m in seen if m.requires_ack and not m.acknowledged),
                             messages_by_type=dict(kinds), active_instances=len(active), instance_names=active)


def generate_message_id() -> str:
    """A new id in seed 002's form, ``msg-`` and 8 hex digits (``msg-1a2b3c4d``).

    The hub names a message it stores by a UUID of its own; given to
    :meth:`~coordhub.client.seed002.CoordinationClient.publish_message` as
    ``message_id``, this id is the publish's idempotency key (a retry with it
    sends nothing twice), not the message's id.
    """
    return f"msg-{uuid.uuid4().hex[:8]}"
