"""How seed 002's Redis data, once read (:mod:`coordhub.importers.redis`), becomes the hub's import items (issue 10).

**Mapping.** Seed 002 had one ack flag per message and no read state. A
message in ``pending`` (needs an ack, has none) becomes unread and
unacknowledged for its recipient (for a broadcast: for everyone); any other
message is imported as read, acked by its recipient (a broadcast: by
``ack_by``) if it was acknowledged, so years of history do not all arrive as
news. An ``ack_comment`` becomes a reply from the acker to the sender.
Instance names are session ids as they are; a name the hub cannot take
(``admin``, ``all``, one with spaces …) is reported with the ``--rename
OLD=NEW`` that would map it, and its records are left out.

**Checked as the hub checks.** Every item is checked against the API's own
models (:func:`coordhub.api.import_schemas.problem`) before it is sent, so a
record the hub would refuse (a notification's ``message_id`` with a tab …)
is reported as left out, with the reason, by the import and by ``--dry-run``
alike, and never holds up the others; an ack comment whose message is left
out goes with it. Lone surrogates (``\\ud800`` escapes in JSON) are not
text: they become U+FFFD, with a note, as invalid UTF-8 does. An id derived
from a seed id (``<id>.ack-comment``) that would pass the hub's 200
characters is shortened with a digest of the seed id, so every run derives
the same one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from coordhub.api.import_schemas import problem
from coordhub.clock import isoformat, parse_iso
from coordhub.core.seed002 import BROADCAST, MessageType, content_digest, instance_problem
from coordhub.strictjson import MAX_DEPTH

if TYPE_CHECKING:
    from coordhub.importers.redis import RawKeys

SUBJECT_MAX = 500      # the hub's subject limit (api/schemas.py Subject)
BODY_MAX = 524_288     # the hub's body limit (api/schemas.py Text)
LINE_MAX = 200         # the hub's label limit (message_type, ids)
MAX_READERS = 1000     # read_by of one broadcast (api/import_schemas.py)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
COMMENT_SUFFIX = ".ack-comment"
JSON_DEPTH = MAX_DEPTH  # nesting read from a JSON value in Redis: what the hub takes in a request body
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})


class Problem(NamedTuple):
    """Something in Redis that was left out (``skipped``) or mapped with a change (``note``)."""

    kind: str      # message, presence, notification, key
    ref: str       # the message id, instance or key
    reason: str
    skipped: bool = True


@dataclass
class Snapshot:
    """What was read: import items in the order to send them, and what could not be mapped."""

    items: list[dict[str, Any]] = field(default_factory=list)
    keys: Counter[str] = field(default_factory=Counter)       # keys found, by layout role
    problems: list[Problem] = field(default_factory=list)
    unknown_types: Counter[str] = field(default_factory=Counter)

    def skip(self, kind: str, ref: str, reason: str) -> None:
        self.problems.append(Problem(kind, ref, reason))

    def note(self, kind: str, ref: str, reason: str) -> None:
        self.problems.append(Problem(kind, ref, reason, skipped=False))


def map_snapshot(raw: RawKeys, prefix: str, renames: dict[str, str], snap: Snapshot) -> Snapshot:
    """Map what was read under ``prefix`` to import items in ``snap`` (in the order to send them); return it."""
    names = _Names(renames, snap)
    known = names.known(raw)
    messages: list[tuple[float, str, dict[str, Any]]] = []
    comments: list[tuple[float, str, dict[str, Any]]] = []
    for mid, fields in raw.messages.items():
        mapped = _message(mid, fields, raw, names, known, snap)
        if mapped is None:
            continue
        item, comment = mapped
        if not _checked(item, item["id"], snap):
            if comment is not None:
                snap.skip("message", comment["id"], f"the ack comment of {mid}, which is left out: left out")
            continue
        messages.append((_epoch(item["created_at"]), mid, item))
        if comment is not None:
            comment["reply_to_digest"] = content_digest(item["from_session"], _epoch(item["created_at"]),
                                                        item["subject"], item["body"])
            if _checked(comment, comment["id"], snap):
                comments.append((_epoch(comment["created_at"]), mid, comment))
    missing = sorted((raw.timeline.keys() | raw.pending | raw.inbox_ids) - raw.messages.keys() - raw.unreadable)
    if missing:
        snap.skip("message", ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""),
                  f"{len(missing)} id(s) in the timeline, inboxes or pending set have no {prefix}:msg:{{id}} key "
                  "(expired after seed 002's 30-day TTL, or deleted): nothing left to import")
    snap.items += [item for _, _, item in sorted(messages, key=lambda t: t[:2])]
    snap.items += [item for _, _, item in sorted(comments, key=lambda t: t[:2])]
    snap.items += [item for item in _presence(raw.presence, names, snap)
                   if _checked(item, item["session_id"], snap)]
    for instance, entries in sorted(raw.queues.items()):
        snap.items += [item for item in _notifications(instance, entries, raw, names, snap)
                       if _checked(item, f"{instance}: {item['message_id'][:60]!r}", snap)]
    return snap


def _checked(item: dict[str, Any], ref: str, snap: Snapshot) -> bool:
    """Whether the hub would take ``item`` (lone surrogates replaced first, with a note); if not, reported."""
    scrubbed = False
    for name, value in item.items():
        if isinstance(value, str) and _SURROGATE.search(value):
            item[name], scrubbed = _SURROGATE.sub("\ufffd", value), True
        elif isinstance(value, list) and any(isinstance(v, str) and _SURROGATE.search(v) for v in value):
            item[name], scrubbed = [_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for v in value], True
    if scrubbed:
        snap.note(item["kind"], ref, "lone surrogates (not Unicode text) replaced by U+FFFD")
    why = problem(item)
    if why is not None:
        snap.skip(item["kind"], ref, f"the hub would refuse it ({why}): left out")
        return False
    return True


class _Names:
    """Instance names → session ids: ``--rename`` first (exact, then any case), then checked."""

    def __init__(self, renames: dict[str, str], snap: Snapshot) -> None:
        self.renames = renames
        self.folded = {k.lower(): v for k, v in renames.items()}
        self.snap = snap
        self.reported: set[str] = set()

    def map(self, name: str) -> tuple[str, str | None]:
        """``(session id, problem)``; the problem names the ``--rename`` that would fix it."""
        mapped = self.renames.get(name) or self.folded.get(name.lower()) or name
        why = instance_problem(mapped)
        if why is None:
            return mapped, None
        return mapped, (f"instance {name!r} cannot be a session id on the hub ({why}); map it with "
                        f"--rename {json.dumps(name + '=NEW-NAME')}")

    def known(self, raw: RawKeys) -> list[str]:
        """Every instance the data names that can be a session (readers of old broadcasts), sorted."""
        names: set[str] = set(raw.inboxes) | set(raw.queues)
        names |= {k.rpartition(".")[0] for k in raw.presence if "." in k}
        for fields in raw.messages.values():
            names |= {v for k in ("from", "from_instance", "to", "to_instance") if (v := fields.get(k))}
        mapped = {self.map(n)[0] for n in names if n.lower() != BROADCAST and self.map(n)[1] is None}
        folded: dict[str, list[str]] = {}
        for n in mapped:
            folded.setdefault(n.lower(), []).append(n)
        for spellings in folded.values():
            if len(spellings) > 1:
                self.snap.note("instance", " / ".join(sorted(spellings)), "these differ only in case; the hub "
                               "compares session ids case-insensitively, so they become one session")
        return sorted({spellings[0] for spellings in folded.values()}, key=str.lower)


def decode_json(text: str) -> tuple[Any, str | None]:
    """``text`` parsed as JSON: ``(value, None)``, or ``(None, why)`` when it is not JSON or nests deeper than
    :data:`JSON_DEPTH` arrays and objects. Never raises, whatever the text.

    The one parse of every JSON value read from Redis. Python's parser raises
    ``RecursionError``, not ``ValueError``, for deep nesting (``[`` × 100,000),
    and a value nested just short of that would fail later, where it is
    encoded again or shown. Otherwise as lenient as Python's parser (NaN, lone
    surrogates: :func:`_checked` replaces those), unlike
    :func:`coordhub.strictjson.loads`, which refuses them.
    """
    deep = f"nested deeper than {JSON_DEPTH} arrays and objects"
    try:
        value = json.loads(text)
    except RecursionError:
        return None, deep
    except ValueError as exc:  # JSONDecodeError, or an integer over the interpreter's digit limit
        return None, str(exc)
    level = [value]
    for _ in range(JSON_DEPTH):
        level = [v for x in level if isinstance(x, dict | list) for v in (x.values() if isinstance(x, dict) else x)]
    if any(isinstance(x, dict | list) for x in level):
        return None, deep
    return value, None


def _pick(fields: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = fields.get(name)
        if value is not None and value != "":
            return value
    return None


def _payload(mid: str, fields: dict[str, str], snap: Snapshot) -> dict[str, Any]:
    raw = fields.get("payload")
    if not raw:
        return {}
    data, why = decode_json(raw)
    if why is not None:
        snap.note("message", mid, f"its payload is not JSON ({why}): its text is taken as the description")
    return data if isinstance(data, dict) else {"description": raw}


def _epoch(value: str) -> float:
    return parse_iso(value)


def when(value: str | None) -> float | None:
    """Unix seconds of a seed-002 time: ISO 8601 (``Z``, an offset, or none: UTC) or Unix seconds/milliseconds.

    None for anything else, or a time before 2000 or past the year 9999 (in UTC).
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        try:
            number = parse_iso(text)  # an offset can carry 9999-12-31 past the year 9999 in UTC
        except (ValueError, OverflowError):
            return None
    else:
        if number > 1e11:  # milliseconds
            number /= 1000.0
    return number if 946_684_800 <= number < 253_402_300_800 else None


def _flag(value: str | None, default: bool, snap: Snapshot, ref: str, name: str) -> bool:
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    snap.note("message", ref, f"{name} {value!r} is not a boolean: taken as {default}")
    return default


def _line(text: str, limit: int) -> tuple[str, bool]:
    """One line of at most ``limit`` characters; whether it had to change."""
    line = _CONTROL.sub(" ", text).strip()
    if len(line) > limit:
        line = line[:limit - 1] + "…"
    return line, line != text


def _message(mid: str, fields: dict[str, str], raw: RawKeys, names: _Names, known: list[str],
             snap: Snapshot) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The import item of one message (and of its ack comment), or None (reported) when it cannot be mapped."""
    if len(mid) > LINE_MAX or _CONTROL.search(mid):
        snap.skip("message", mid[:80], f"its id is not one line of at most {LINE_MAX} characters")
        return None
    if fields.get("id") not in (None, mid):
        snap.note("message", mid, f"its id field says {fields['id']!r}: the key's id is kept")
    payload = _payload(mid, fields, snap)
    sender_name = _pick(fields, "from", "from_instance", "sender")
    if sender_name is None:
        snap.skip("message", mid, "no sender (from): left out")
        return None
    to_name = _pick(fields, "to", "to_instance", "recipient")
    if to_name is None:
        owners = [name for name, ids in raw.inboxes.items() if mid in ids]
        if len(owners) != 1:
            snap.skip("message", mid, "no recipient (to), and no single inbox holds it: left out")
            return None
        to_name = owners[0]
        snap.note("message", mid, f"no recipient field: taken from the inbox it is in ({to_name})")
    sender, why = names.map(sender_name)
    to, why_to = (None, None) if to_name.lower() == BROADCAST else names.map(to_name)
    if why or why_to:
        snap.skip("message", mid, str(why or why_to))
        return None
    created = _created(mid, fields, raw, snap)
    if created is None:
        return None
    subject_text = _pick(fields, "subject", "payload.subject") or str(payload.get("subject") or "")
    subject, cut = _line(subject_text, SUBJECT_MAX)
    if cut:
        snap.note("message", mid, f"subject made one line of at most {SUBJECT_MAX} characters")
    if not subject:
        subject = "(no subject)"
    body = _pick(fields, "description", "payload.description", "body") or str(payload.get("description") or "")
    if "\x00" in body or len(body) > BODY_MAX:
        body = body.replace("\x00", "")[:BODY_MAX]
        snap.note("message", mid, f"description without NUL characters, at most {BODY_MAX} characters")
    msg_type = _type(_pick(fields, "type", "msg_type", "message_type"), mid, snap)
    requires_ack = _flag(_pick(fields, "requires_ack"), True, snap, mid, "requires_ack")
    pending = mid in raw.pending
    ack_by_name = _pick(fields, "ack_by", "acknowledged_by")
    said_acked = _flag(_pick(fields, "acknowledged", "acked"), False, snap, mid, "acknowledged") or bool(ack_by_name)
    if pending and said_acked:
        snap.note("message", mid, "in the pending set but marked acknowledged: imported as unacknowledged "
                                  "(the pending set decides)")
    acked = said_acked and not pending
    acked_at = when(_pick(fields, "ack_timestamp", "acked_at")) if acked else None
    item: dict[str, Any] = {
        "kind": "message", "id": mid, "from_session": sender, "to_session": to, "subject": subject, "body": body,
        "message_type": msg_type, "requires_ack": requires_ack, "created_at": isoformat(created),
        "acked_at": isoformat(acked_at or created) if acked else None}
    acker = _acker(mid, to, ack_by_name if acked else None, names, snap)
    needs_you = requires_ack and not acked
    if to is not None:
        item["acked_by"] = to if acked else None
        item["read_by"] = [] if needs_you else [to]
    else:
        item["acked_by"] = acker
        readers = [] if needs_you else [s for s in known if s.lower() not in (sender.lower(), (acker or "").lower())]
        item["read_by"] = readers[:MAX_READERS]
    comment = _pick(fields, "ack_comment")
    reply = None
    if acked and comment:
        reply = _comment(mid, item, acker or to, comment, snap)
    return item, reply


def _created(mid: str, fields: dict[str, str], raw: RawKeys, snap: Snapshot) -> float | None:
    stamp = _pick(fields, "timestamp", "created_at", "sent_at")
    created = when(stamp)
    if created is None:
        scored = raw.timeline.get(mid)
        created = when(str(scored)) if scored else None
        if created is None:
            snap.skip("message", mid, f"no usable timestamp ({stamp!r}) and not in the timeline: left out")
            return None
        snap.note("message", mid, f"timestamp {stamp!r} unusable: taken from the timeline")
    return created


def _type(value: str | None, mid: str, snap: Snapshot) -> str | None:
    if value is None:
        snap.note("message", mid, "no type: imported without one")
        return None
    label, changed = _line(value, LINE_MAX)
    if changed or not label:
        snap.note("message", mid, f"type {value[:80]!r} is not a one-line label: imported without a type")
        return None
    if label not in MessageType.__members__:
        snap.unknown_types[label] += 1
    return label


def _acker(mid: str, to: str | None, ack_by: str | None, names: _Names, snap: Snapshot) -> str | None:
    """Who acked, as a session; for a direct message always its recipient (seed 002 let anyone ack)."""
    if ack_by is None:
        return None
    session, why = names.map(ack_by)
    if to is not None:
        if session.lower() != to.lower():
            snap.note("message", mid, f"acknowledged by {ack_by}, not its recipient {to}: recorded as {to}'s ack "
                                      "(ack state is per recipient on the hub)")
        return to
    if why:
        snap.note("message", mid, f"acknowledged by {ack_by!r}, which cannot be a session: the ack is left out")
        return None
    return session


def _comment(mid: str, item: dict[str, Any], acker: str | None, comment: str, snap: Snapshot) -> dict[str, Any] | None:
    if acker is None:
        snap.skip("message", mid + COMMENT_SUFFIX, "its ack comment has no acker that can be a session: left out")
        return None
    cid = mid + COMMENT_SUFFIX
    if len(cid) > LINE_MAX:  # the same id on every run: the seed id's start and a digest of all of it
        cid = f"{mid[:LINE_MAX - 34 - len(COMMENT_SUFFIX)]}~{hashlib.sha256(mid.encode()).hexdigest()[:32]}" \
              + COMMENT_SUFFIX
        snap.note("message", mid, f"its ack comment's id {mid + COMMENT_SUFFIX!r} is over {LINE_MAX} characters: "
                                  f"imported as {cid}")
    return {"kind": "message", "id": cid, "from_session": acker, "to_session": item["from_session"],
            "subject": _line(f"Re: {item['subject']}", SUBJECT_MAX)[0], "body": comment.replace("\x00", "")[:BODY_MAX],
            "message_type": None, "requires_ack": False, "created_at": item["acked_at"],
            "read_by": [item["from_session"]], "acked_by": None, "acked_at": None, "reply_to": mid}


def _presence(fields: dict[str, str], names: _Names, snap: Snapshot) -> list[dict[str, Any]]:
    """Presence items from the ``presence`` hash (``{instance}.{field}``; also a JSON object per instance)."""
    by_instance: dict[str, dict[str, str]] = {}
    for name, value in fields.items():
        instance, dot, attr = name.rpartition(".")
        if dot:
            by_instance.setdefault(instance, {})[attr] = value
            continue
        data, _ = decode_json(value)
        if isinstance(data, dict):
            by_instance.setdefault(name, {}).update({k: str(v) for k, v in data.items()})
        else:
            snap.skip("presence", name, "a presence field that is neither INSTANCE.FIELD nor a JSON object: left out")
    items = []
    for instance, attrs in sorted(by_instance.items()):
        session, why = names.map(instance)
        seen = when(attrs.get("last_heartbeat"))
        if why:
            snap.skip("presence", instance, why)
        elif seen is None:
            snap.skip("presence", instance, f"no usable last_heartbeat ({attrs.get('last_heartbeat')!r}): left out")
        else:
            client, changed = _line(attrs.get("session_id") or "", LINE_MAX)
            if changed:
                snap.note("presence", instance, f"its client_session {attrs['session_id'][:80]!r} made one line "
                                                f"of at most {LINE_MAX} characters")
            items.append({"kind": "presence", "session_id": session, "last_seen": isoformat(seen),
                          "client_session": client or None})
    return items


def _notifications(instance: str, entries: list[str], raw: RawKeys, names: _Names,
                   snap: Snapshot) -> list[dict[str, Any]]:
    """Notification items of one instance's queue, oldest first (the queue is newest first)."""
    target, why = names.map(instance)
    if why:
        snap.skip("notification", instance, f"{len(entries)} queued notification(s) left out: {why}")
        return []
    items, seen = [], Counter[str]()
    for raw_entry in reversed(entries):
        seen[raw_entry] += 1
        key = "seed002:notification:" + hashlib.sha256(
            f"{instance}\x00{seen[raw_entry]}\x00{raw_entry}".encode()).hexdigest()[:40]
        item = _notification(instance, target, raw_entry, key, raw, names, snap)
        if item is not None:
            items.append(item)
    return items


def _notification(instance: str, target: str, entry: str, key: str, raw: RawKeys, names: _Names,
                  snap: Snapshot) -> dict[str, Any] | None:
    ref = f"{instance}: {entry[:60]}"
    data, why = decode_json(entry)
    if why is not None:
        snap.skip("notification", ref, f"not JSON ({why}): left out")
        return None
    if not isinstance(data, dict):
        snap.skip("notification", ref, "not a JSON object: left out")
        return None
    mid, sender_name = data.get("message_id"), data.get("from") or data.get("from_instance")
    if not isinstance(mid, str) or not mid or not isinstance(sender_name, str) or not sender_name:
        snap.skip("notification", ref, "no message_id or from: left out")
        return None
    sender, why = names.map(sender_name)
    to_name = data.get("to") or data.get("to_instance") or instance
    to, why_to = (None, None) if str(to_name).lower() == BROADCAST else names.map(str(to_name))
    if why or why_to:
        snap.skip("notification", ref, str(why or why_to))
        return None
    sent = when(data.get("timestamp"))
    if sent is None:
        message = raw.messages.get(mid)
        sent = when(_pick(message, "timestamp")) if message else None
        if sent is None:
            snap.skip("notification", ref, f"no usable timestamp ({data.get('timestamp')!r}): left out")
            return None
    raw_type = data.get("type") or data.get("msg_type")
    msg_type = _type(str(raw_type), mid, snap) if raw_type else None
    requires_ack = _flag(str(data["requires_ack"]) if "requires_ack" in data else None, True, snap, ref,
                         "requires_ack")
    return {"kind": "notification", "key": key, "session_id": target, "message_id": mid,
            "message_type": msg_type, "from_session": sender, "to_session": to, "requires_ack": requires_ack,
            "sent_at": isoformat(sent)}
