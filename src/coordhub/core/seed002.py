"""Seed 002's vocabulary as the hub understands it: message types, ids, instance names and its record shapes.

Seed 002 ("CLI Coordination", Redis) names messages ``msg-`` plus 8 hex
digits and its agents by bare instance ids (``backend``, ``orchestrator``);
its types are a fixed enum. Every seed-002 front end (the ``coord msg
publish/check/ack`` verbs, the Python API, the MCP tools) and the Redis
importer share what is here, so the rules are stated once.

**Ids.** The hub's message ids are UUIDs. A message imported from seed 002
keeps its seed id as ``origin_id`` and gets the hub id
:func:`hub_message_id` derives from it (a name-based UUID, RFC 9562 §5.5), so
any client can turn ``msg-1a2b3c4d`` into the hub id without asking the hub,
and importing the same message twice finds the same row. Front ends accept
either form wherever a message id is asked for, and show the seed id where
there is one (:func:`display_id`).

Standard library only: the CLI imports this module on its start-up path.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from coordhub.core.identity import is_broadcast, validate_acting_name
from coordhub.errors import Invalid


class MessageType(enum.StrEnum):
    """Seed 002's message types at its last version (26; its README lists the first eight kinds).

    The hub stores a message type as a free label; these are the ones seed
    002's tools and scripts accepted, and the ones the seed-002 verbs accept.
    """

    READY_FOR_REVIEW = "READY_FOR_REVIEW"
    REVIEW_COMPLETE = "REVIEW_COMPLETE"
    REVIEW_FAILED = "REVIEW_FAILED"
    CONTRACT_CHANGE_PROPOSED = "CONTRACT_CHANGE_PROPOSED"
    CONTRACT_REVIEW_NEEDED = "CONTRACT_REVIEW_NEEDED"
    CONTRACT_FEEDBACK = "CONTRACT_FEEDBACK"
    CONTRACT_APPROVED = "CONTRACT_APPROVED"
    CONTRACT_REJECTED = "CONTRACT_REJECTED"
    META_CHANGE_REQUEST = "META_CHANGE_REQUEST"
    META_CHANGE_COMPLETE = "META_CHANGE_COMPLETE"
    INTERFACE_UPDATE = "INTERFACE_UPDATE"
    BLOCKING_ISSUE = "BLOCKING_ISSUE"
    GENERAL = "GENERAL"
    STATUS_UPDATE = "STATUS_UPDATE"
    HEARTBEAT = "HEARTBEAT"
    NOTIFICATION = "NOTIFICATION"
    DEVOPS_STARTED = "DEVOPS_STARTED"
    DEVOPS_STEP_UPDATE = "DEVOPS_STEP_UPDATE"
    DEVOPS_COMPLETE = "DEVOPS_COMPLETE"
    DEVOPS_FAILED = "DEVOPS_FAILED"
    SESSION_START = "SESSION_START"
    SESSION_END = "SESSION_END"
    SWARM_STARTED = "SWARM_STARTED"
    SWARM_REVIEWER_COMPLETE = "SWARM_REVIEWER_COMPLETE"
    SWARM_COMPLETE = "SWARM_COMPLETE"
    SWARM_FAILED = "SWARM_FAILED"


# The eight kinds of seed 002's README table, in its order.
README_TYPES = ("READY_FOR_REVIEW", "REVIEW_COMPLETE", "REVIEW_FAILED", "CONTRACT_CHANGE_PROPOSED",
                "CONTRACT_APPROVED", "META_CHANGE_REQUEST", "GENERAL", "NOTIFICATION")
# Types whose README direction is "Feature → Orchestrator": the seed's publish script sent them there by default.
TO_ORCHESTRATOR = frozenset({"READY_FOR_REVIEW", "CONTRACT_CHANGE_PROPOSED", "META_CHANGE_REQUEST"})
BROADCAST = "all"  # seed 002's recipient for every instance
HUB_BROADCAST = "ALL_SESSIONS"  # how the hub's JSON names a broadcast's recipient
SEED_ID_PREFIX = "msg-"  # how every seed-002 message id began (its client's msg-1a2b3c4d, its hooks' msg-<time>-<pid>)
# Namespace of the hub ids of imported seed-002 messages (fixed forever: changing it orphans every import).
ORIGIN_NAMESPACE = uuid.UUID("5eed0002-c0de-4b1d-9a7e-0000000000a2")


def message_type(text: str) -> MessageType:
    """The seed-002 type named by ``text`` (any case); ``Invalid`` listing every type otherwise."""
    try:
        return MessageType(text.strip().upper())
    except ValueError:
        others = [t.value for t in MessageType if t.value not in README_TYPES]
        raise Invalid(f"unknown message type {text!r}: use one of {', '.join(README_TYPES)} "
                      f"(or, from seed 002's later versions, {', '.join(others)})", field="msg_type") from None


def hub_message_id(ref: str) -> str:
    """The hub id of a message named by ``ref``: a UUID as is (normalised), a seed-002 id by its name-based UUID.

    Never raises: a reference that names no message maps to a UUID the hub
    answers 404 for.
    """
    text = ref.strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(ORIGIN_NAMESPACE, text))


def message_ref(text: str) -> str:
    """The hub id ``text`` names when it is a seed-002 message id (``msg-`` …; :func:`hub_message_id`), else
    ``text`` in the hub's spelling of an id (:func:`~coordhub.ids.canonical`: unchanged when it spells none).

    For the places outside seed 002's own verbs where a user pastes a message id (``coord msg read``, a reply's
    ``reply_to``, a thread's name): only the ``msg-`` form is read as a seed id, so any other text that is no UUID
    is still refused or taken as a free name, as before.
    """
    if text.strip().startswith(SEED_ID_PREFIX):
        return hub_message_id(text)
    from coordhub.ids import canonical  # not at the top: this module stays standard library only on import

    return canonical(text)


def unknown_message(ref: str, shown_by: str = "`coord msg inbox`") -> str | None:
    """What to say when the hub answers 404 for the message named ``ref`` as the user typed it; None for a UUID.

    For a seed id the hub saw only its name-based UUID (:func:`hub_message_id`), which the user never typed,
    so its own words would name that; for a UUID they name the id as given. ``shown_by`` names where the
    caller sees message ids (the CLI's inbox, the MCP tool, the Python call).
    """
    try:
        uuid.UUID(ref.strip())
        return None
    except ValueError:
        return (f"no message {ref!r}: neither a hub id (a UUID, as {shown_by} shows it) nor the seed id of an "
                "imported message of yours")


def content_digest(sender: str, created: float, subject: str, body: str) -> str:
    """What tells apart two imported messages that share a seed id: a digest of sender (any case), time and text.

    The importer names the message an ack comment answers by its seed id
    and this digest (two teams' Redis may both hold ``msg-aaaa0001``), and
    the hub records it for every message it imports, so both derive it from
    the same values: ``created`` is the Unix time the item's ``created_at``
    parses to.
    """
    text = "\x00".join((sender.lower(), repr(float(created)), subject, body))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def display_id(m: dict[str, Any]) -> str:
    """The id to show for a hub message: its seed-002 id when that id leads back to it, else the hub id."""
    origin = m.get("origin_id")
    if origin and hub_message_id(origin) == m["id"]:
        return str(origin)
    return str(m["id"])


def default_recipient(msg_type: str, sender: str | None) -> str:
    """Where seed 002's publish script sent a message given no ``--to``.

    Review, contract-change and meta-change requests go to ``orchestrator``;
    ``backend`` and ``frontend`` address each other; anything else from
    anyone else goes to every instance.
    """
    if msg_type in TO_ORCHESTRATOR:
        return "orchestrator"
    pair = {"backend": "frontend", "frontend": "backend"}
    return pair.get((sender or "").lower(), BROADCAST)


def instance_problem(name: str) -> str | None:
    """Why seed-002 instance ``name`` cannot be a hub session id, or None when it can.

    Seed 002 allowed ``[A-Za-z0-9_.-]+``; the hub takes 1-3 ``/``-separated
    parts of ``[A-Za-z0-9_.@+-]`` (200 characters at most) and reserves
    ``admin``, its own names and the broadcast words (``all``, ``fleet`` …).
    """
    try:
        validate_acting_name(name, "instance")
    except Invalid as exc:
        return exc.message
    return None


# ---- seed 002's record shapes, from the hub's JSON ------------------------------------------------

def seed_message(m: dict[str, Any], viewer: str) -> dict[str, Any]:
    """A hub message in seed 002's ``CoordinationMessage`` shape, with ``viewer``'s ack state.

    ``id`` is the seed id of an imported message (:func:`display_id`);
    ``hub_id`` is always the hub's.
    """
    acked = m.get("acked_at") is not None
    return {"id": display_id(m), "type": m.get("message_type"), "from": m["from_session"],
            "to": BROADCAST if m.get("broadcast") else m["to_session"], "timestamp": m["created_at"],
            "requires_ack": m["requires_ack"], "acknowledged": acked,
            "payload": {"subject": m["subject"], "description": m["body"]},
            "ack_by": viewer if acked else None, "ack_timestamp": m.get("acked_at"),
            "seq": m["seq"], "read": m.get("read", False), "hub_id": m["id"]}


def seed_presence(r: dict[str, Any]) -> dict[str, Any]:
    """A hub presence row in seed 002's ``PresenceInfo`` shape (plus the hub's state and incarnation)."""
    return {"instance_id": r["session_id"], "active": r.get("state") in ("active", "idle"),
            "last_heartbeat": r.get("last_heartbeat"), "session_id": r.get("client_session"),
            "stale": r.get("state") == "stale", "seconds_since_heartbeat": r.get("seconds_since_heartbeat"),
            "state": r.get("state"), "incarnation": r.get("incarnation")}


def seed_notification(e: dict[str, Any]) -> dict[str, Any]:
    """A hub event as a notification: a sent message in seed 002's ``NotificationEvent`` shape
    (``event: message_published``), any other event by its kind with its payload as ``detail``.

    A notification imported from seed 002's offline queue carries the
    message's seed id and original time (``origin_id``, ``sent_at``). Another
    event about a message (``message.redelivered``, ``message.dead_lettered`` …)
    carries its ``message_id`` too: seed 002's every notification had one, and
    code written for it reads it (``get_message(n.message_id)``); for an
    imported message that is its seed id too, which such an event's payload
    carries (``origin_id``, :func:`coordhub.core.messages.seed_id`).
    """
    p = e.get("payload") or {}
    if e["kind"] == "message.sent":
        to = p.get("to_session")
        return {"id": e["id"], "event": "message_published", "message_id": p.get("origin_id") or e["subject_id"],
                "type": p.get("message_type"), "from": e["session_id"], "to": BROADCAST if to == HUB_BROADCAST else to,
                "requires_ack": p.get("requires_ack"), "subject": p.get("subject"),
                "timestamp": p.get("sent_at") or e["created_at"]}
    out = {"id": e["id"], "event": e["kind"], "from": e["session_id"], "subject_id": e["subject_id"],
           "timestamp": e["created_at"], "detail": p}
    if not (e["kind"].startswith("message.") and e["subject_id"]):
        return out
    return {**out, "message_id": p.get("origin_id") or e["subject_id"]}  # an imported message: its seed id


def matches(m: dict[str, Any], sender: str | None, msg_type: str | None, pending_only: bool) -> bool:
    """Whether a hub message passes seed 002's ``check`` filters (sender compared case-insensitively)."""
    return ((sender is None or m["from_session"].lower() == sender.lower())
            and (msg_type is None or m["message_type"] == msg_type)
            and (not pending_only or (m["requires_ack"] and m.get("acked_at") is None)))


def addressed(m: dict[str, Any], to_instance: str | None) -> bool:
    """Whether hub message ``m`` passes seed 002's recipient filter ``to_instance``, as its query read one.

    Seed 002 kept a set of ids per recipient and put broadcasts in the set of
    ``all``: naming an instance gave its direct messages and no broadcast,
    naming ``all`` (any of the hub's broadcast words here) the broadcasts
    alone. Naming none gave every instance's messages; the hub shows a session
    only its own and the broadcasts, so None passes every message it answered.
    """
    if to_instance is None:
        return True
    return bool(m.get("broadcast")) == is_broadcast(to_instance)


INBOX_PAGE = 500  # the hub's largest inbox page (GET /messages ``limit``)
SCAN_LIMIT = 5000  # inbox messages seed 002's check looks through for its filters: ten pages at most


class InboxScan:
    """Seed 002's check-messages walk of an inbox, newest first, for the CLI's ``coord msg check`` and the Python
    API's ``check_messages`` (each asks the hub its own way, sync or async).

    Ask for :meth:`params` (``limit``, ``before_seq``), give each page to
    :meth:`take` with the hub's ``Coord-Next-Before-Seq``, and stop when it
    answers False; :attr:`found` then holds at most ``limit`` messages that
    passed ``keep``. It reads on while the hub names a seq to go on from (a
    page the hub ended at its text bound holds fewer than
    :data:`INBOX_PAGE`), until ``limit`` passed or :data:`SCAN_LIMIT`
    messages' worth of pages were read.
    """

    def __init__(self, keep: Callable[[dict[str, Any]], bool], limit: int) -> None:
        self.keep = keep
        self.limit = limit
        self.found: list[dict[str, Any]] = []
        self._before: int | None = None
        self._pages = 0

    def params(self) -> dict[str, Any]:
        """The next page's query parameters."""
        return {"limit": INBOX_PAGE, "before_seq": self._before}

    def take(self, page: list[dict[str, Any]], next_before: int | None) -> bool:
        """Keep what ``page`` holds that passes; whether to ask for the page before ``next_before``."""
        self._pages += 1
        self.found += [m for m in page if self.keep(m)]
        if len(self.found) >= self.limit:
            del self.found[self.limit:]
            return False
        self._before = next_before
        return next_before is not None and self._pages < SCAN_LIMIT // INBOX_PAGE

