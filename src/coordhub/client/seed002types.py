"""Seed 002's Python API: its error and value types (:mod:`coordhub.client.seed002` makes and raises them).

The names and fields are seed 002's own (``CoordinationMessage``, ``PresenceInfo`` …), so that code written for
it keeps working; the hub's additions come after them with defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coordhub.client.seed002answers import iso_time as _time
from coordhub.core.seed002 import MessageType, seed_message, seed_notification, seed_presence


class CoordinationError(Exception):
    """A call failed: the hub refused it (``status``, ``code``), a read could not reach the hub (``status`` 0),
    the hub answered something no hub answers (``status`` 0, ``code``
    :data:`~coordhub.client.seed002answers.BAD_ANSWER`), or the credential acts as no session (403
    ``no_session``: a ``--no-auth`` hub and no session named).

    Seed 002's error names are subclasses, so ``except PublishError`` keeps working.
    """

    def __init__(self, message: str, status: int = 0, code: str = "unreachable") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class PublishError(CoordinationError):
    """Publishing failed (the hub refused the message)."""


class AcknowledgeError(CoordinationError):
    """Acknowledging failed (the hub refused; an unknown message is ``False``, not an error)."""


class PresenceError(CoordinationError):
    """A presence call failed."""


@dataclass(frozen=True)
class MessagePayload:
    """A message's text (seed 002's only content fields)."""

    subject: str
    description: str

    def to_dict(self) -> dict[str, str]:
        """Seed 002's JSON shape: ``{"subject", "description"}``."""
        return {"subject": self.subject, "description": self.description}


@dataclass(frozen=True)
class CoordinationMessage:
    """A message as one session sees it (seed 002's fields; ``ack_by`` is that session when it acked).

    ``id`` is the seed id of an imported message, else the hub id
    (``hub_id``); both are accepted wherever an id is asked for. A publish
    queued while the hub was unreachable has ``queued=True`` and no id yet.
    """

    id: str | None
    type: MessageType | str | None
    from_instance: str
    to_instance: str
    timestamp: datetime | None
    requires_ack: bool
    acknowledged: bool
    payload: MessagePayload
    ack_by: str | None = None
    ack_timestamp: datetime | None = None
    hub_id: str | None = None
    read: bool = False
    queued: bool = False

    @property
    def msg_type(self) -> MessageType | None:
        """The type as :class:`MessageType`, None for a label outside seed 002's set."""
        return MessageType.__members__.get(self.type) if self.type else None

    def to_dict(self) -> dict[str, Any]:
        """Seed 002's JSON shape (``id type from to timestamp requires_ack acknowledged payload``, ``ack_by`` and
        ``ack_timestamp`` when acked; times to the second, ``Z``), then the hub's ``hub_id`` and ``read``."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "from": self.from_instance, "to": self.to_instance,
                               "timestamp": _stamp(self.timestamp), "requires_ack": self.requires_ack,
                               "acknowledged": self.acknowledged, "payload": self.payload.to_dict()}
        if self.ack_by:
            out["ack_by"] = self.ack_by
        if self.ack_timestamp:
            out["ack_timestamp"] = _stamp(self.ack_timestamp)
        return {**out, "hub_id": self.hub_id, "read": self.read}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (indented, as seed 002's was)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_hub(cls, m: dict[str, Any], viewer: str) -> CoordinationMessage:
        """From a hub message (``viewer``'s read and ack state)."""
        s = seed_message(m, viewer)
        return cls(id=s["id"], type=known_type(s["type"]), from_instance=s["from"], to_instance=s["to"],
                   timestamp=_time(s["timestamp"]), requires_ack=s["requires_ack"], acknowledged=s["acknowledged"],
                   payload=MessagePayload(**s["payload"]), ack_by=s["ack_by"], ack_timestamp=_time(s["ack_timestamp"]),
                   hub_id=s["hub_id"], read=s["read"])


def since_time(value: datetime | str | None) -> datetime | None:
    """A ``since`` as a UTC-aware time: a datetime, or ISO 8601 text (``Z`` allowed); one without an offset is UTC.

    Raises ``ValueError`` for text that is no time or a value of another type.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"since: a datetime or ISO 8601 text, not {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class MessageQuery:
    """Seed 002's query object for :meth:`~coordhub.client.seed002.CoordinationClient.get_messages`: its six
    fields and defaults, checked when made as seed 002's model checked them.

    ``msg_type`` becomes a :class:`MessageType` (its name in any case is taken too); ``since`` (a datetime or
    ISO 8601 text, UTC when it names no offset) keeps the messages sent at or after it; ``limit`` is 1 to 1000.
    Raises ``ValueError`` for an unknown type, a ``since`` that is no time, or a limit out of range (seed 002's
    pydantic model raised its ``ValidationError``, a ``ValueError`` too).
    """

    to_instance: str | None = None
    from_instance: str | None = None
    msg_type: MessageType | str | None = None
    pending_only: bool = False
    since: datetime | str | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if self.msg_type is not None:
            self.msg_type = MessageType(str(self.msg_type).strip().upper())
        self.since = since_time(self.since)
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= 1000:
            raise ValueError(f"limit: a whole number from 1 to 1000, not {self.limit!r}")


@dataclass(frozen=True)
class AckResult:
    """What an ack did: ``comment_message_id`` is the reply that carried the comment; ``queued`` while offline."""

    message_id: str
    acknowledged_by: str | None
    comment_message_id: str | None = None
    queued: bool = False


@dataclass(frozen=True)
class PresenceInfo:
    """One session's presence (seed 002's fields, plus the hub's ``state``: active, idle, stale or offline)."""

    instance_id: str
    active: bool
    last_heartbeat: datetime | None
    session_id: str | None
    stale: bool
    state: str
    incarnation: int = 0
    seconds_since_heartbeat: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Seed 002's JSON shape (``instance_id active last_heartbeat session_id``), then the hub's ``stale``
        and ``state``."""
        return {"instance_id": self.instance_id, "active": self.active, "last_heartbeat": _stamp(self.last_heartbeat),
                "session_id": self.session_id, "stale": self.stale, "state": self.state}


@dataclass(frozen=True)
class NotificationEvent:
    """A notification: seed 002's ``message_published`` events, or another hub event by its kind.

    ``cursor`` is the hub event id (acknowledge up to it).
    """

    event: str
    message_id: str | None
    msg_type: MessageType | str | None
    from_instance: str | None
    to_instance: str | None
    requires_ack: bool | None
    timestamp: datetime | None
    cursor: int
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Seed 002's JSON shape (``event message_id type from to requires_ack timestamp``), then the hub's
        ``cursor`` (and ``detail`` for an event other than a sent message)."""
        out = {"event": self.event, "message_id": self.message_id, "type": self.msg_type, "from": self.from_instance,
               "to": self.to_instance, "requires_ack": self.requires_ack, "timestamp": _stamp(self.timestamp),
               "cursor": self.cursor}
        return {**out, "detail": self.detail} if self.detail else out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict())


def publish_arguments(positional: tuple[str | bool | None, ...], to: str | None, ack: bool | None,
                      sender: str | None, message_id: str | None) -> tuple[str, bool, str | None, str | None]:
    """``publish_message``'s arguments after the first three: ``(to_instance, requires_ack, from_instance,
    message_id)``, from ``positional`` in seed 002's client's order when its second is text (``from_instance,
    to_instance, requires_ack, message_id``), else in its README's (``to_instance, requires_ack``), and the keywords;
    ``TypeError`` for an argument given both ways or too many, as Python says for a call that does not fit."""
    names: tuple[str, ...] = ("from_instance", "to_instance", "requires_ack", "message_id")
    if len(positional) < 2 or not isinstance(positional[1], str):
        names = ("to_instance", "requires_ack")
    if len(positional) > len(names):
        raise TypeError(f"publish_message() takes at most {3 + len(names)} positional arguments after self")
    given = {"to_instance": to, "requires_ack": ack, "from_instance": sender, "message_id": message_id}
    for name, value in zip(names, positional, strict=False):
        if given[name] is not None:
            raise TypeError(f"publish_message() got multiple values for argument {name!r}")
        given[name] = value
    return (str(given["to_instance"] or "orchestrator"), given["requires_ack"] is not False,
            None if given["from_instance"] is None else str(given["from_instance"]),
            None if given["message_id"] is None else str(given["message_id"]))


def known_type(label: str | None) -> MessageType | str | None:
    """A type label as :class:`MessageType` when it is one of seed 002's (its code reads ``.value``), else as is."""
    return MessageType.__members__.get(label, label) if label else label


def _stamp(when: datetime | None) -> str | None:
    """A time as seed 002 wrote it: UTC, to the second, with ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def presence_info(r: dict[str, Any]) -> PresenceInfo:
    """Seed 002's :class:`PresenceInfo` of the hub's presence record ``r`` (its shape checked by the caller)."""
    s = seed_presence(r)
    return PresenceInfo(s["instance_id"], s["active"], _time(s["last_heartbeat"]), s["session_id"], s["stale"],
                        s["state"], s["incarnation"] or 0, s["seconds_since_heartbeat"])


def notification_event(e: dict[str, Any]) -> NotificationEvent:
    """Seed 002's :class:`NotificationEvent` of the hub's event ``e`` (its shape checked by the caller)."""
    n = seed_notification(e)
    return NotificationEvent(event=n["event"], message_id=n.get("message_id"), msg_type=known_type(n.get("type")),
                             from_instance=n.get("from"), to_instance=n.get("to"),
                             requires_ack=n.get("requires_ack"), timestamp=_time(n.get("timestamp")), cursor=n["id"],
                             subject=n.get("subject"), detail=n.get("detail") or {})
