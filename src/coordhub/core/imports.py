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
    live incarnation would have the messages sent to it flagged as its
    predecessor's to every later incarnation.
    Never overrides presence the session itself reported to the hub.
``notification``
    An event of a session's offline notification queue, kept as a
    ``message.sent`` event for it (so it is one of its unread notifications)
    under the importer's ``key``, recorded in ``imported`` (so never a key of
    the messages' ledger below, :data:`LEDGER_PREFIX`).

Idempotent: importing an item again reports ``already`` and writes nothing,
except that a message's read and ack state may move forward (never back).
A seed id that already names a different message on the hub (two sources
reusing one 32-bit id) is imported under the id derived from the seed id and
a fingerprint of its content, and the result says so. Items that cannot be
written, or whose values the API's schema refused (``invalid``), are
``skipped`` with the reason, having written nothing (every check comes
before the first write, the spelling of a session it names included); the
rest of the batch still is.

**The ledger and retention.** Every imported message is recorded in
``imported`` twice: under its hub id (with its
:func:`~coordhub.core.seed002.content_digest`; who owns that id, even once
the message is gone) and under its seed id and digest (which hub id it got).
So a message is always resolved to the hub id it was first imported under;
an ack comment's ``reply_to`` (with ``reply_to_digest``) finds the message it
answers even when another team's message has the same seed id; and a message
that retention pruned is reported ``already`` ("pruned"), never imported
again. The pruner ages an imported message from when it was imported (the
ledger's time), not from its original time: a migration keeps the history
for the hub's ``retain_messages_hours``, after which read and acked history
goes like any other (see :mod:`coordhub.core.retention`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from coordhub.clock import parse_iso
from coordhub.core.events import emit
from coordhub.core.identity import Actor, address, canonical, fold, require_admin, same_session, validate_acting_name
from coordhub.core.messages import BROADCAST
from coordhub.core.seed002 import ORIGIN_NAMESPACE, content_digest, hub_message_id
from coordhub.errors import CoordError, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

IMPORT_CLIENT = "seed002-import"  # the ``client`` of an imported presence
OUTCOMES = ("imported", "already", "skipped")
MESSAGE_ID_KEY = "seed002:message-id:"   # + hub id → the digest of the message imported under it
MESSAGE_KEY = "seed002:message:"         # + seed id "#" digest → the hub id it was imported under
SPLIT_KEY = "seed002:message-split:"     # + seed id: it names more than one imported message
LEDGER_PREFIX = "seed002:message"        # what the three keys above start with, and no notification's key may
PRUNED = "pruned by retention since it was imported: not imported again"
END_OF_9999 = 253_402_300_800.0  # epoch seconds of 10000-01-01T00:00:00Z, past every time the hub renders
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(?:[^\s/?#]*@)?([^\s?#]*)(?:\?[^\s#]*)?(?:#\S*)?")


def shown_source(source: str) -> str:
    """``source`` with every URL in it cut to scheme, host, port and path: no userinfo, query or fragment.

    The source is kept in the ``import.applied`` event, which every session
    reads; an importer older than its own masking (or another client) may send
    a URL with a password in it (``redis://u:pw@h`` or ``?password=``).
    """
    return _URL.sub(lambda m: m.group(1) + m.group(2), source)


def apply(tx: Tx, actor: Actor, source: str, items: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Write a batch of items (see the module docstring); one result per item, in order, and counts.

    Each result is ``{"kind", "ref", "outcome", "id"?, "reason"?}``:
    ``outcome`` is one of :data:`OUTCOMES`, ``id`` what the item is on the hub
    (a message id, a session id, an event id), ``reason`` why it was skipped
    or a note on how it was mapped. Raises ``Forbidden`` unless the actor is
    an admin. Emits one ``import.applied`` event (counts only) when anything
    was written. ``source`` is recorded and answered as :func:`shown_source` makes it.
    """
    require_admin(actor, "importing records")
    source = shown_source(source)
    results = [_one(tx, item, now) for item in items]
    counts = {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES}
    if counts["imported"]:
        emit(tx, "import.applied", now, session_id=actor.session_id, source=source, **counts)
    return {"source": source, "results": results, "counts": counts}


def _one(tx: Tx, item: dict[str, Any], now: float) -> dict[str, Any]:
    kind = item["kind"]
    ref = item.get("id") or item.get("key") or item.get("session_id")
    if "invalid" in item:  # its values were refused by the API's schema (api/import_schemas.py)
        return {"kind": kind, "ref": item["ref"], "outcome": "skipped", "reason": item["invalid"]}
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


def _spellings(tx: Tx, **names: str | None) -> dict[str, str | None]:
    """What :func:`_names` would answer (None stays None), read only: each name checked, nothing recorded.

    Raises ``Invalid`` for a name that cannot be a session. Two names of one
    item that differ only in case get the first one's spelling, as recording
    them in order would give them.
    """
    for field, name in names.items():
        if name is not None:
            validate_acting_name(name, field)
    spelled: dict[str, str] = {}
    return {field: None if name is None else spelled.setdefault(fold(name), canonical(tx, name))
            for field, name in names.items()}


def _time(value: str, field: str) -> float:
    """Epoch seconds of an item's ISO 8601 time, from 2000 up to the end of 9999 in UTC; ``Invalid`` otherwise.

    ``parse_iso`` takes 9999-12-31T23:59:59-23:59, which is in the year 10000 in UTC: stored, every answer that
    rendered the record (an imported broadcast: every session's inbox) failed with a 500 (review).
    """
    try:
        when = parse_iso(value)
    except (ValueError, OverflowError):
        when = None
    if when is None or when >= END_OF_9999:
        raise Invalid(f"{field} {value!r} is not an ISO 8601 time from 2000 to 9999 (UTC)", field=field)
    return when


def _message(tx: Tx, item: dict[str, Any], now: float) -> dict[str, Any]:
    ref = item["id"]
    created = _time(item["created_at"], "created_at")
    acked_at = _time(item["acked_at"], "acked_at") if item.get("acked_at") else None
    parent, orphan = _parent(tx, item.get("reply_to"), item.get("reply_to_digest"))
    for name in item.get("read_by") or ():
        validate_acting_name(name, "read_by")
    digest = content_digest(item["from_session"], created, item["subject"], item["body"])
    hub_id, found, seen = _resolve(tx, ref, digest)
    if seen and found is None:
        return {"outcome": "already", "id": hub_id, "reason": PRUNED, "pruned": True}
    if hub_id is not None and not seen and orphan is not None:
        raise Invalid(orphan, field="reply_to")  # nothing of the item written yet
    named = {"from_session": item["from_session"], "to_session": item["to_session"], "acked_by": item.get("acked_by")}
    n = _spellings(tx, **named)  # every refusal below comes before anything of the item is written
    sender, to, acked_by = str(n["from_session"]), n["to_session"], n["acked_by"]
    if to is not None and acked_by is not None and not same_session(acked_by, to):
        raise Invalid(f"acked_by {acked_by!r} is not the recipient {to!r} of a direct message", field="acked_by")
    note = None
    if hub_id is None:  # the seed id's own hub id is another message's: one derived from this one's content
        hub_id = str(uuid.uuid5(ORIGIN_NAMESPACE, f"{ref}#{_fingerprint(sender, to, created, item)}"))
        found = tx.messages.get(hub_id, "")
        seen = found is not None
        note = f"seed id {ref} already names another message on the hub: imported as {hub_id}"
        if not seen and orphan is not None:
            raise Invalid(orphan, field="reply_to")
    n = _names(tx, now, **named)  # the same spellings, now recorded
    sender, to, acked_by = str(n["from_session"]), n["to_session"], n["acked_by"]
    read_by = [address(tx, s, now)[0] for s in item.get("read_by") or ()]
    settled = (read_by, acked_by, acked_at, created)
    _remember(tx, ref, digest, hub_id, split=note is not None, now=now)
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


def _digest_of(row: Row) -> str:
    return content_digest(str(row["from_session"]), float(row["created_at"]), str(row["subject"]), str(row["body"]))


def _resolve(tx: Tx, ref: str, digest: str) -> tuple[str | None, Row | None, bool]:
    """``(hub id, its row, imported before)`` of the message with seed id ``ref`` and content ``digest``.

    The ledger first (the hub id it was imported under, even if the message
    was pruned since; a row there with other content was pruned and its id
    reused); else the seed id's own hub id, when it is free or holds this
    very message (imported before the ledger kept messages); else ``(None,
    None, False)``: another message holds it, and the caller derives an id
    from the content.
    """
    done = tx.imported.get(f"{MESSAGE_KEY}{ref}#{digest}")
    if done is not None:
        hub_id = str(done["ref"])
        row = tx.messages.get(hub_id, "")
        return hub_id, (row if row is not None and _digest_of(row) == digest else None), True
    hub_id = hub_message_id(ref)
    row = tx.messages.get(hub_id, "")
    owner = tx.imported.get(MESSAGE_ID_KEY + hub_id)
    if row is None and owner is None:
        return hub_id, None, False
    if row is not None and row["origin_id"] == ref and _digest_of(row) == digest:
        return hub_id, row, True
    return None, None, False


def _remember(tx: Tx, ref: str, digest: str, hub_id: str, split: bool, now: float) -> None:
    """Record in the ledger that seed id ``ref`` with content ``digest`` is the message ``hub_id`` (once)."""
    for key, ledger_ref in ((f"{MESSAGE_KEY}{ref}#{digest}", hub_id), (MESSAGE_ID_KEY + hub_id, digest),
                            *([(SPLIT_KEY + ref, None)] if split else [])):
        if tx.imported.get(key) is None:
            tx.imported.add(key, "message", ledger_ref, now)


def _parent(tx: Tx, reply_to: str | None, digest: str | None) -> tuple[Row | None, str | None]:
    """``(the message replied to, None)``, or ``(None, why it cannot be found)``; ``(None, None)`` for no reply_to.

    With ``digest``, the message imported with that seed id and content
    (wherever a collision put it); without, the seed id's own hub id, unless
    the seed id names more than one imported message.
    """
    if reply_to is None:
        return None, None
    if digest is not None:
        hub_id, row, seen = _resolve(tx, reply_to, digest)
        if row is not None:
            return row, None
        if seen:
            return None, f"the message it answers ({reply_to}) was pruned by retention"
        return None, f"reply_to {reply_to!r} names no message imported so far with that content"
    if tx.imported.get(SPLIT_KEY + reply_to) is not None:
        return None, (f"reply_to {reply_to!r} names more than one imported message (sources reusing one id): "
                      "give reply_to_digest to say which")
    parent = tx.messages.get(hub_message_id(reply_to), "")
    if parent is None:
        return None, f"reply_to {reply_to!r} names no message imported so far"
    return parent, None


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
    if key.startswith(LEDGER_PREFIX):  # one table holds both: such a key would stand for an imported message
        raise Invalid(f"notification key {key[:80]!r} starts with {LEDGER_PREFIX!r}, the messages' ledger's: "
                      "derive it otherwise (coord import redis uses seed002:notification:…)", field="key")
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
