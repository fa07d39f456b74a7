"""Imports: another coordination system's records written onto the hub, each at most once (issue 10).

An importer (``coord import redis`` for seed 002) reads its source, maps what
it found to *items* and sends them here in batches; :func:`apply` writes one
batch in one transaction, as an admin. Three kinds of item:

``message``
    A message with its sender, recipient (``None``: every session), original
    time and seed id (``origin_id``; its hub id is derived from it, see
    :mod:`coordhub.core.seed002`). Its per-recipient state is given: the
    sessions that have read it (``read_by``) and who acked it and when. A
    direct message nobody read gets an unread receipt, so it shows up as news.
    Imported messages carry no ack deadline: a seed never redelivered, and
    weeks-old pending messages would otherwise all be dead-lettered at once.
    ``reply_to`` names the seed id of a message imported earlier.
``presence``
    A session last seen at a time, recorded as one ended incarnation
    (offline): a process of the old system never talks to the hub, and a
    live incarnation would hide from its successor the messages sent to it.
    Never overrides presence the session itself reported to the hub.
``notification``
    An event of a session's offline notification queue, kept as a
    ``message.sent`` event for it (so it is one of its unread notifications)
    under the importer's ``key``, recorded in ``imported``.

Idempotent: importing an item again reports ``already`` and writes nothing,
except that a message's read and ack state may move forward (never back).
A seed id that already names a different message on the hub (two sources
reusing one 32-bit id) is imported under the id derived from the seed id and
a fingerprint of its content, and the result says so. Items that cannot be
written are ``skipped`` with the reason; the rest of the batch still is.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from coordhub.clock import parse_iso
from coordhub.core.events import emit
from coordhub.core.identity import Actor, address, require_admin, validate_acting_name
from coordhub.core.messages import BROADCAST
from coordhub.core.seed002 import ORIGIN_NAMESPACE, hub_message_id
from coordhub.errors import CoordError, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

IMPORT_CLIENT = "seed002-import"  # the ``client`` of an imported presence
OUTCOMES = ("imported", "already", "skipped")


def apply(tx: Tx, actor: Actor, source: str, items: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Write a batch of items (see the module docstring); one result per item, in order, and counts.

    Each result is ``{"kind", "ref", "outcome", "id"?, "reason"?}``:
    ``outcome`` is one of :data:`OUTCOMES`, ``id`` what the item is on the hub
    (a message id, a session id, an event id), ``reason`` why it was skipped
    or a note on how it was mapped. Raises ``Forbidden`` unless the actor is
    an admin. Emits one ``import.applied`` event (counts only) when anything
    was written.
    """
    require_admin(actor, "importing records")
    results = [_one(tx, item, now) for item in items]
    counts = {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES}
    if counts["imported"]:
        emit(tx, "import.applied", now, session_id=actor.session_id, source=source, **counts)
    return {"source": source, "results": results, "counts": counts}


def _one(tx: Tx, item: dict[str, Any], now: float) -> dict[str, Any]:
    kind = item["kind"]
    ref = item.get("id") or item.get("key") or item.get("session_id")
    try:
        if kind == "message":
            return {"kind": kind, "ref": ref, **_message(tx, item, now)}
        if kind == "presence":
            return {"kind": kind, "ref": ref, **_presence(tx, item, now)}
        return {"kind": kind, "ref": ref, **_notification(tx, item, now)}
    except CoordError as exc:  # checked before anything of the item is written
        return {"kind": kind, "ref": ref, "outcome": "skipped", "reason": exc.message}


def _names(tx: Tx, now: float, **names: str | None) -> dict[str, str | None]:
    """The canonical spellings of the sessions an item names (None stays None), each recorded as addressed.

    Every name is checked before any is recorded, so an item refused here
    has written nothing. Raises ``Invalid`` for a name that cannot be a session.
    """
    for field, name in names.items():
        if name is not None:
            validate_acting_name(name, field)
    return {field: None if name is None else address(tx, name, now)[0] for field, name in names.items()}


def _time(value: str, field: str) -> float:
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise Invalid(f"{field} {value!r} is not an ISO 8601 time from 2000 on", field=field) from None


def _message(tx: Tx, item: dict[str, Any], now: float) -> dict[str, Any]:
    ref = item["id"]
    created = _time(item["created_at"], "created_at")
    acked_at = _time(item["acked_at"], "acked_at") if item.get("acked_at") else None
    parent = _parent(tx, item.get("reply_to"))
    for name in item.get("read_by") or ():
        validate_acting_name(name, "read_by")
    n = _names(tx, now, from_session=item["from_session"], to_session=item["to_session"],
               acked_by=item.get("acked_by"))
    sender, to, acked_by = str(n["from_session"]), n["to_session"], n["acked_by"]
    if to is not None and acked_by not in (None, to):
        raise Invalid(f"acked_by {acked_by!r} is not the recipient {to!r} of a direct message", field="acked_by")
    read_by = [address(tx, s, now)[0] for s in item.get("read_by") or ()]
    hub_id, note = hub_message_id(ref), None
    found = tx.messages.get(hub_id, "")
    if found is not None and not _same(found, ref, sender, created, item):
        hub_id = str(uuid.uuid5(ORIGIN_NAMESPACE, f"{ref}#{_fingerprint(sender, to, created, item)}"))
        found = tx.messages.get(hub_id, "")
        note = f"seed id {ref} already names another message on the hub: imported as {hub_id}"
    settled = (read_by, acked_by, acked_at, created)
    if found is not None:
        _settle(tx, int(found["seq"]), to, settled, new=False)
        return {"outcome": "already", "id": hub_id}
    row: Row = {"id": hub_id, "from_session": sender, "to_session": to, "project_key": None,
                "subject": item["subject"], "body": item["body"],
                "thread_id": None if parent is None else parent["thread_id"] or parent["id"],
                "reply_to": None if parent is None else parent["id"], "importance": "normal",
                "message_type": item.get("message_type"), "requires_ack": int(item["requires_ack"]),
                "created_at": created, "to_incarnation": None, "origin_id": ref}
    seq = tx.messages.add(row)
    _settle(tx, seq, to, settled, new=True)
    out: dict[str, Any] = {"outcome": "imported", "id": hub_id}
    if note:
        out["reason"] = note
    return out


def _parent(tx: Tx, reply_to: str | None) -> Row | None:
    if reply_to is None:
        return None
    parent = tx.messages.get(hub_message_id(reply_to), "")
    if parent is None:
        raise Invalid(f"reply_to {reply_to!r} names no message imported so far", field="reply_to")
    return parent


def _same(found: Row, ref: str, sender: str, created: float, item: dict[str, Any]) -> bool:
    """Whether the stored message is this item imported before (same origin, sender, time and text)."""
    return bool(found["origin_id"] == ref and found["from_session"] == sender and found["created_at"] == created
                and found["subject"] == item["subject"] and found["body"] == item["body"])


def _fingerprint(sender: str, to: str | None, created: float, item: dict[str, Any]) -> str:
    text = "\x00".join((sender, to or "", repr(created), item["subject"], item["body"]))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _settle(tx: Tx, seq: int, to: str | None, state: tuple[list[str], str | None, float | None, float],
            new: bool) -> None:
    """Give the message its recipients' read/ack state; a new direct message nobody read gets an unread receipt."""
    read_by, acked_by, acked_at, created = state
    if to is not None:
        if acked_by == to:
            tx.messages.add_settled_receipt(to, seq, acked_at or created, acked_at or created)
        elif to in read_by:
            tx.messages.add_settled_receipt(to, seq, created, None)
        elif new:
            tx.messages.add_receipt(to, seq, None)
        return
    for session in read_by:
        if session != acked_by:
            tx.messages.add_settled_receipt(session, seq, created, None)
    if acked_by is not None:
        tx.messages.add_settled_receipt(acked_by, seq, acked_at or created, acked_at or created)


def _presence(tx: Tx, item: dict[str, Any], now: float) -> dict[str, Any]:
    last = _time(item["last_seen"], "last_seen")
    session = str(_names(tx, now, session_id=item["session_id"])["session_id"])
    row = tx.sessions.get(session) or {}
    imported_before = row.get("incarnation") == 1 and row.get("client") == IMPORT_CLIENT
    if row.get("incarnation") and not imported_before:
        return {"outcome": "skipped", "id": session,
                "reason": f"{session} has reported its presence to the hub itself; that is newer"}
    if imported_before and (row.get("last_heartbeat") or 0.0) >= last:
        return {"outcome": "already", "id": session}
    tx.sessions.import_presence(session, last, IMPORT_CLIENT, item.get("client_session"))
    return {"outcome": "imported", "id": session}


def _notification(tx: Tx, item: dict[str, Any], now: float) -> dict[str, Any]:
    key = item["key"]
    done = tx.imported.get(key)
    if done is not None:
        return {"outcome": "already", "id": done["ref"]}
    sent = _time(item["sent_at"], "sent_at")
    n = _names(tx, now, session_id=item["session_id"], from_session=item["from_session"],
               to_session=item["to_session"])
    target, sender, to = str(n["session_id"]), str(n["from_session"]), n["to_session"]
    hub_id = hub_message_id(item["message_id"])
    message = tx.messages.get(hub_id, "")
    event = emit(tx, "message.sent", now, session_id=sender, subject_id=hub_id, target=target,
                 to_session=to or BROADCAST, message_type=item.get("message_type"),
                 requires_ack=item["requires_ack"], subject=None if message is None else message["subject"],
                 origin_id=item["message_id"], sent_at=sent, imported=True)
    tx.imported.add(key, "notification", str(event), now)
    return {"outcome": "imported", "id": str(event)}
