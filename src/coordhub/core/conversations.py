"""Conversations: seed 004's typed, sequenced, signed turns between projects, held by the hub.

Seed 004's agents talk by dropping org-mode files into each other's
``inbox/from-agents/`` folders; every receiver then runs the same checks on
every file. Here a turn is sent to the hub once, the checks run once, at
send time, and the outcome is recorded with the turn (issue 9):

====================================================  ===========
check (seed 004's receiver order)                      decision
====================================================  ===========
frontmatter missing or malformed, unknown type         refused (422, nothing recorded)
``PROTOCOL_VERSION`` other than :data:`~coordhub.core.orgturn.PROTOCOL_VERSION`   ``query``
a signature that does not verify against the author's registered keys   ``reject``
an identical retry (same conversation, author, content hash)   ``dedup`` (the first turn's answer)
``REQUIRES_TOOLS`` the destination has not declared    ``query``
otherwise                                              ``process``
====================================================  ===========

``query`` and ``reject`` turns are recorded, visible to their author (with
the reason) and admins, and never shown to the receiver as work. Accepted
(``process``) turns take the conversation's next **sequence** in the same
transaction as the insert, so sequences are gapless and unique however many
senders race (the seed let authors choose them, and two writers collided).

**Addressing** is seed 004's ``<machine>.<project>``: a session declares its
machine and project (:func:`set_profile`, or the ``from_*`` fields of a
send); a turn to an address reaches every session that declared it, waits
while none is online, and is refused at send when no session ever declared it
(:class:`UnknownDestination`, the seed's exit 2). ``local.<project>`` is the
sender's own machine. On a hub with auth a session whose id names a machine
(``MACHINE/name``) can only declare that machine.

**Pending** (seed 004): a turn is pending for its destination until a
``release`` turn follows it in its conversation.

**Parties.** Anyone may open a conversation (its first turn); after that it
accepts turns, releases and reads only from its parties: the sessions whose
address sent or received one of its accepted turns, the session that opened
it, and admins. A party brings a new address in by sending it a turn (seed
004: a file reaches whoever it is addressed to). Anyone else is answered 404
exactly as for an id nobody used.

**Bounds.** A conversation holds at most :data:`MAX_TURNS_PER_CONVERSATION`
turns and :data:`MAX_CONVERSATION_BYTES` of text (409
``conversation_full``); a session stores at most
:data:`MAX_SESSION_TURNS_PER_DAY` turns and :data:`MAX_SESSION_BYTES_PER_DAY`
a UTC day (429 ``turn_quota``). A turn's text is stored once where its body
can be read back from its file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import events, orgturn, presence
from coordhub.core.events import emit
from coordhub.core.hub import WithStatus
from coordhub.core.identity import Actor, machine_of
from coordhub.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from coordhub.openpgp import Verdict
from coordhub.store.base import Row
from coordhub.store.tx import Tx

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
LOCAL = "local"           # seed 004: local.<project> is this machine
MAX_PAGE = 1000
MAX_KEYS_PER_SESSION = 16
PROCESS, DEDUP, QUERY, REJECT = "process", "dedup", "query", "reject"
MAX_TURNS_PER_CONVERSATION = 10_000     # recorded turns, accepted or refused
MAX_CONVERSATION_BYTES = 64 * 2**20     # stored text of its turns
MAX_SESSION_TURNS_PER_DAY = 20_000      # turns one session stores in a UTC day
MAX_SESSION_BYTES_PER_DAY = 256 * 2**20  # and their stored text
SHOW_PAGE = 100                         # turns per page of a conversation, by default
SHOW_BYTES = 4 * 2**20                  # about this much stored text per page (at least one turn)
DAY = 86_400


class UnknownDestination(Invalid):
    """A turn's address was never declared by any session (422; ``known`` lists the addresses that were)."""

    code = "unknown_destination"


class ConversationFull(Conflict):
    """The conversation holds its bound of turns or bytes (409; ``bound``, ``limit``): open a new one."""

    code = "conversation_full"


class TurnQuota(RateLimited):
    """The session stored its bound of turns or bytes today (429; ``bound``, ``limit``, ``retry_after``)."""

    code = "turn_quota"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after)
        self.details.update(details)


class KeyTaken(Conflict):
    """A public key another session already registered (409)."""

    code = "key_taken"


class SequenceTaken(Conflict):
    """``expect_sequence`` is not the sequence the hub would assign (409; ``next_sequence`` says which it is)."""

    code = "sequence_taken"


@dataclass(frozen=True)
class Draft:
    """A turn as sent, parsed and checked for form but not yet decided (see :func:`draft`).

    ``content`` is the org text that will be stored; ``signature`` an armored
    detached signature over ``content`` as UTF-8, or None.
    """

    to: str
    turn: orgturn.Turn
    content: str
    signature: str | None
    expect_sequence: int | None
    from_machine: str | None
    from_project: str | None
    release_once: bool = False  # POST …/release: a conversation already released answers its release (200)


def name(value: str, field: str) -> str:
    """A machine or project name in lower case; ``Invalid`` unless it is ``[a-z0-9][a-z0-9_-]{0,63}``."""
    folded = value.strip().lower()
    if not NAME.fullmatch(folded):
        raise Invalid(f"{field} {value[:80]!r} is not a name (letters, digits, _ and -; no dots; at most 64)",
                      field=field)
    return folded


def split_address(value: str, field: str = "to") -> tuple[str, str]:
    """``(machine, project)`` of ``<machine>.<project>``; ``Invalid`` when malformed."""
    machine, dot, project = value.strip().partition(".")
    if not dot:
        raise Invalid(f"destination must be <machine>.<project>; got {value[:140]!r}", field=field)
    return name(machine, field), name(project, field)


def draft(*, to: str, content: str | None = None, signature: str | None = None,
          expect_sequence: int | None = None, from_machine: str | None = None, from_project: str | None = None,
          conversation_id: str | None = None, type: str | None = None, title: str | None = None,
          body: str | None = None, requires_tools: list[str] | None = None, release_status: str | None = None,
          protocol_version: str | None = None, now: float) -> Draft:
    """Parse a send: either the file form (``content``, optionally ``signature``) or the field form.

    The field form renders a seed-format file with the hub's clock as its
    ``TIMESTAMP``; it cannot carry a signature. Raises ``Invalid`` (422) for
    malformed input: both or neither form, a bad frontmatter value, a
    signature that is not one armored detached signature.
    """
    fields = (conversation_id, type, title, body, requires_tools, release_status, protocol_version)
    if content is not None:
        if any(f is not None for f in fields):
            raise Invalid("send either `content` (a seed-004 file) or the fields (conversation_id, type, …), "
                          "not both", field="content")
        if signature is not None:
            orgturn.check_signature(signature)
        turn = orgturn.parse(content)
    else:
        if signature is not None:
            raise Invalid("a signature covers a file's exact bytes: send it with `content`", field="signature")
        if conversation_id is None or type is None or body is None:
            raise Invalid("a turn needs `content`, or conversation_id, type and body", field="content")
        keys = {"TITLE": title or conversation_id, "CONVERSATION_ID": conversation_id, "MESSAGE_TYPE": type,
                "SEQUENCE": "0", "TIMESTAMP": orgturn.utc_text(dt.datetime.fromtimestamp(now, dt.UTC)),
                "PROTOCOL_VERSION": protocol_version or orgturn.PROTOCOL_VERSION}
        if requires_tools:
            orgturn.check_tools(requires_tools, "requires_tools")
            keys["REQUIRES_TOOLS"] = ", ".join(requires_tools)
        if release_status is not None:
            keys["RELEASE_STATUS"] = release_status
        turn = orgturn.build(keys, body)
        turn = orgturn.Turn(**{**turn.__dict__, "sequence": None})
        content = orgturn.render(keys, body)
        if len(content.encode("utf-8")) > orgturn.MAX_CONTENT_BYTES:
            raise Invalid(f"the turn is over {orgturn.MAX_CONTENT_BYTES} bytes", field="body",
                          limit=orgturn.MAX_CONTENT_BYTES)
    return Draft(to=to, turn=turn, content=content, signature=signature, expect_sequence=expect_sequence,
                 from_machine=from_machine, from_project=from_project)


# ---- profiles and addresses -----------------------------------------------------

def _tools(row: Row | None) -> list[str]:
    raw = row.get("tools") if row else None
    return list(json.loads(raw)) if raw else []


def render_profile(row: Row | None, session_id: str) -> dict[str, Any]:
    """A session's conversation profile: its address and declared tools."""
    machine = row.get("machine") if row else None
    project = row.get("project") if row else None
    return {"session_id": session_id, "machine": machine, "project": project,
            "address": f"{machine}.{project}" if machine and project else None, "tools": _tools(row)}


def profile(tx: Tx, actor: Actor) -> dict[str, Any]:
    """The actor's profile (nulls and no tools when it declared nothing)."""
    return render_profile(tx.sessions.get(actor.session_id), actor.session_id)


def set_profile(tx: Tx, actor: Actor, *, machine: str | None = None, project: str | None = None,
                tools: list[str] | None = None, now: float) -> dict[str, Any]:
    """Declare the actor's machine, project and/or tools; omitted ones keep their value.

    A session may declare only the machine its id names (``MACHINE/name``),
    so one token cannot take another machine's turns (403); a session whose
    id names no machine (seed 002's ``backend``) cannot declare one, since
    nothing would bind it to a machine. Admins (and ``--no-auth`` callers) may
    declare any machine.
    """
    row = tx.sessions.get(actor.session_id) or {}
    new_machine = row.get("machine") if machine is None else name(machine, "machine")
    new_project = row.get("project") if project is None else name(project, "project")
    own = machine_of(actor.session_id)
    if new_machine is not None and not actor.is_admin and (own is None or new_machine != own.lower()):
        why = (f"whose machine is {own.lower()!r}" if own is not None else
               "which names no machine: use a token named MACHINE/name (`coord token create "
               f"{new_machine}/{actor.session_id}`)")
        raise Forbidden(f"machine {new_machine!r} is not yours: this token acts as {actor.session_id!r}, {why}",
                        field="machine", acting_as=actor.session_id)
    if tools is not None:
        orgturn.check_tools(tools)
    new_tools = json.dumps(list(dict.fromkeys(tools))) if tools is not None else row.get("tools")
    if (new_machine, new_project, new_tools) != (row.get("machine"), row.get("project"), row.get("tools")):
        tx.conversations.set_profile(actor.session_id, new_machine, new_project, new_tools)
        emit(tx, "conversation.profile", now, session_id=actor.session_id, machine=new_machine,
             project=new_project, tools=json.loads(new_tools) if new_tools else [])
    return profile(tx, actor)


def addresses(tx: Tx, now: float) -> list[dict[str, Any]]:
    """Every declared address with its sessions (and their presence) and pending count, sorted by address."""
    by: dict[str, dict[str, Any]] = {}
    for row in tx.conversations.addresses():
        addr = f"{row['machine']}.{row['project']}"
        entry = by.setdefault(addr, {"address": addr, "machine": row["machine"], "project": row["project"],
                                     "sessions": [], "pending": 0})
        entry["sessions"].append({"session_id": row["session_id"], "state": presence.state_of(row, now),
                                  "tools": _tools(row)})
    for row in tx.conversations.pending_counts(list(by)):
        by[row["to_address"]]["pending"] = int(row["pending"])
    return [by[k] for k in sorted(by)]


def _known(tx: Tx) -> list[str]:
    return sorted({f"{r['machine']}.{r['project']}" for r in tx.conversations.addresses()})


def _own_address(tx: Tx, actor: Actor, d: Draft, now: float) -> tuple[str, str]:
    if d.from_machine is not None or d.from_project is not None:
        p = set_profile(tx, actor, machine=d.from_machine, project=d.from_project, now=now)
    else:
        p = profile(tx, actor)
    if p["machine"] is None or p["project"] is None:
        raise Invalid(f"{actor.session_id} has no conversation address yet: declare its machine and project "
                      "(`coord conv profile`, or from_machine/from_project on the send)", field="from_project")
    return p["machine"], p["project"]


# ---- keys -------------------------------------------------------------------------

def render_key(row: Row, *, armored: bool = True) -> dict[str, Any]:
    """The JSON form of a registered key."""
    out = {"session_id": row["session_id"], "fingerprint": row["fingerprint"],
           "created_at": isoformat(row["created_at"])}
    if armored:
        out["armored"] = row["armored"]
    return out


def add_key(tx: Tx, actor: Actor, armored: str, fingerprint: str, now: float) -> dict[str, Any]:
    """Register a public key (its ``fingerprint`` computed by :func:`coordhub.openpgp.fingerprint`) for the actor.

    Registering the same key again is a no-op. A key another session holds
    is refused (409 ``key_taken``): public keys are readable by everyone, and
    a copy registered by someone else would make that session's turns verify
    as the owner's. At most :data:`MAX_KEYS_PER_SESSION` keys per session (422).
    """
    row: Row = {"session_id": actor.session_id, "fingerprint": fingerprint, "armored": armored.strip() + "\n",
                "created_at": now}
    holder = tx.signing_keys.holder(fingerprint, actor.session_id)
    if holder is not None:
        raise KeyTaken(f"key {fingerprint} is registered by another session; a key belongs to one session "
                       "(the other session deletes it first)", field="armored", fingerprint=fingerprint)
    if tx.signing_keys.count(actor.session_id) >= MAX_KEYS_PER_SESSION:
        raise Invalid(f"{actor.session_id} already has {MAX_KEYS_PER_SESSION} keys; delete one first",
                      field="armored")
    if tx.signing_keys.add(row):
        emit(tx, "conversation.key_added", now, session_id=actor.session_id, fingerprint=fingerprint)
    return render_key(row, armored=False)


def keys(tx: Tx, session_id: str) -> list[dict[str, Any]]:
    """A session's registered keys, armored."""
    return [render_key(r) for r in tx.signing_keys.of(session_id)]


def armored_keys(tx: Tx, session_id: str) -> list[str]:
    """The armored text of a session's keys (what a signature is checked against)."""
    return [str(r["armored"]) for r in tx.signing_keys.of(session_id)]


def delete_key(tx: Tx, actor: Actor, fingerprint: str, now: float) -> dict[str, Any]:
    """Remove one of the actor's keys; 404 when it has no such key."""
    if not tx.signing_keys.delete(actor.session_id, fingerprint.upper()):
        raise NotFound(f"{actor.session_id} has no key {fingerprint[:80]!r}")
    emit(tx, "conversation.key_deleted", now, session_id=actor.session_id, fingerprint=fingerprint.upper())
    return {"deleted": 1}


# ---- turns --------------------------------------------------------------------------

def file_name(row: Row) -> str:
    """Seed 004's file name for an accepted turn, made unique by its sequence.

    ``YYYYMMDDTHHMMSSZ-from-<sender project>-<conversation>-<sequence>.org``:
    the seed's pattern, plus the sequence, since the seed's own names collided
    (and silently replaced each other) for two turns sent in one second.
    """
    stamp = dt.datetime.fromtimestamp(row["created_at"], dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    sender = str(row["from_address"]).partition(".")[2]
    suffix = f"-{row['sequence']}" if row["sequence"] is not None else f"-refused-{row['id']}"
    return f"{stamp}-from-{sender}-{row['conversation_id']}{suffix}.org"


def render(row: Row, *, pending: bool | None = None, decision: str | None = None) -> dict[str, Any]:
    """The JSON form of a turn."""
    verified = None  # unsigned, or signed by a session that registered no key: the hub could not check
    if row["signer"] is not None:
        verified = True
    elif row["signature"] is not None and row["decision"] == REJECT:
        verified = False
    return {"id": row["id"], "conversation_id": row["conversation_id"], "sequence": row["sequence"],
            "stated_sequence": row["stated_sequence"], "type": row["type"], "title": row["title"],
            "author": row["author"], "from": row["from_address"], "to": row["to_address"],
            "created_at": isoformat(row["created_at"]), "timestamp": orgturn.utc_text(
                dt.datetime.fromtimestamp(row["created_at"], dt.UTC)),
            "stated_timestamp": row["stated_timestamp"], "protocol_version": row["protocol_version"],
            "requires_tools": json.loads(row["requires_tools"]), "body": body_of(row), "content": row["content"],
            "content_sha256": row["content_sha256"], "signature": row["signature"], "signer": row["signer"],
            "verified": verified, "decision": decision or row["decision"], "reason": row["reason"],
            "pending": bool(pending), "file_name": file_name(row)}


def body_of(row: Row) -> str:
    """A stored turn's body: its ``body`` column, or read back from its file when stored once (migration 0020)."""
    mode = int(row.get("body_in_content") or 0)
    if not mode:
        return str(row["body"])
    body = orgturn.split(str(row["content"]))[1]
    return body[:-1] if mode == 2 and body.endswith("\n") else body


def _body_storage(content: str, body: str) -> tuple[str, int]:
    """``(body column, body_in_content)`` for a turn: the body is stored apart only when the file does not give it
    back exactly (see :func:`body_of`)."""
    again = orgturn.split(content)[1]
    if again == body:
        return "", 1
    if again.endswith("\n") and again[:-1] == body:
        return "", 2
    return body, 0


def _pending(tx: Tx, row: Row) -> bool:
    if row["decision"] != PROCESS or row["type"] == "release":
        return False
    conv = tx.conversations.get(row["conversation_id"])
    return conv is not None and row["sequence"] > conv["last_release"]


def _decide(tx: Tx, d: Draft, author: str, verdict: Verdict | None, to: tuple[str, str]) -> tuple[str, str | None]:
    """The decision for a well-formed turn, in seed 004's receiver order (see the module docstring)."""
    turn = d.turn
    if turn.protocol_version != orgturn.PROTOCOL_VERSION:
        return QUERY, f"PROTOCOL_VERSION mismatch: expected {orgturn.PROTOCOL_VERSION}, got {turn.protocol_version}"
    if verdict is not None and not verdict.valid:
        return REJECT, f"signature does not verify against {author}'s registered keys: {verdict.reason}"
    if turn.requires_tools:
        declared: set[str] = set()
        for row in tx.conversations.at_address(*to):
            declared.update(_tools(row))
        missing = [t for t in turn.requires_tools if t not in declared]
        if missing:
            return QUERY, f"required tools unavailable: {', '.join(missing)}"
    return PROCESS, None


def send(tx: Tx, actor: Actor, d: Draft, verdict: Verdict | None, now: float) -> WithStatus:
    """Record a turn from the actor and decide it; return the turn with its HTTP status.

    ``verdict`` is the signature check made before the transaction
    (:func:`coordhub.openpgp.verify` against :func:`armored_keys` of the
    actor), None when the turn is unsigned or the actor registered no key.
    Status 201 for a recorded turn (any decision), 200 for a dedup (the body
    is the first turn, ``decision`` ``dedup``). Raises
    :class:`UnknownDestination`, :class:`SequenceTaken`, ``Invalid``.
    """
    machine, project = _own_address(tx, actor, d, now)
    turn = d.turn
    conv = tx.conversations.get(turn.conversation_id)
    if conv is not None and not _takes_part(tx, actor, conv, f"{machine}.{project}"):
        raise NotFound(_unseen(turn.conversation_id, actor))
    if d.release_once and conv is not None and 0 < conv["last_sequence"] == conv["last_release"]:
        done = tx.conversations.at_sequence(turn.conversation_id, conv["last_release"])
        if done is not None:  # already released: the release that did it, not a second one
            return WithStatus(200, render(done, pending=False, decision=DEDUP))
    to_machine, to_project = split_address(d.to)
    if to_machine == LOCAL:
        to_machine = machine
    to = f"{to_machine}.{to_project}"
    if not tx.conversations.at_address(to_machine, to_project):
        known = _known(tx)
        raise UnknownDestination(f"destination {to} not found; known destinations: {', '.join(known) or '(none)'}",
                                 field="to", known=known)
    sha = turn.sha256()
    decision, reason = _decide(tx, d, actor.session_id, verdict, (to_machine, to_project))
    if decision == PROCESS and (verdict is None or verdict.valid):
        first = tx.conversations.same_content(turn.conversation_id, actor.session_id, sha)
        if first is not None:
            return WithStatus(200, render(first, pending=_pending(tx, first), decision=DEDUP))
    sequence = None
    content = d.content
    pending = False
    if decision == PROCESS:
        sequence = (conv["last_sequence"] if conv else 0) + 1
        if d.expect_sequence is not None and d.expect_sequence != sequence:
            raise SequenceTaken(f"sequence {d.expect_sequence} of {turn.conversation_id} is not next: the hub "
                                f"assigns {sequence}; renumber (and re-sign) and send again",
                                next_sequence=sequence)
        if d.signature is not None and turn.sequence != sequence:
            raise SequenceTaken(f"the signed file says SEQUENCE {turn.sequence}, but the hub assigns {sequence} in "
                                f"{turn.conversation_id}: a signed file is kept byte for byte, so its SEQUENCE must be "
                                "the one it gets; renumber, re-sign and send again", field="SEQUENCE",
                                next_sequence=sequence, stated_sequence=turn.sequence)
        if d.signature is None:  # unsigned: the stored file says what the hub decided
            content = orgturn.with_key(orgturn.with_key(content, "SEQUENCE", str(sequence)),
                                       "TIMESTAMP", turn.timestamp_utc)
    body, body_in_content = _body_storage(content, turn.body)
    size = len(content.encode("utf-8")) + len(body.encode("utf-8"))
    _check_bounds(tx, actor, conv, size, now)
    if sequence is not None:
        if conv is None:
            tx.conversations.create({"conversation_id": turn.conversation_id, "title": turn.title,
                                     "project": project, "created_by": actor.session_id, "created_at": now,
                                     "updated_at": now, "last_sequence": 0, "last_release": 0})
        tx.conversations.advance(turn.conversation_id, sequence, turn.type == "release", now)
        pending = turn.type != "release"  # nothing released it yet: it is the newest turn
    row: Row = {"conversation_id": turn.conversation_id, "sequence": sequence, "type": turn.type,
                "author": actor.session_id, "from_address": f"{machine}.{project}", "to_address": to,
                "to_machine": to_machine, "created_at": now, "stated_timestamp": turn.timestamp,
                "stated_sequence": turn.sequence, "protocol_version": turn.protocol_version,
                "requires_tools": json.dumps(list(turn.requires_tools)), "title": turn.title, "body": body,
                "content": content, "content_sha256": sha, "signature": d.signature,
                "signer": verdict.fingerprint if verdict is not None and verdict.valid else None,
                "decision": decision, "reason": reason, "size": size, "body_in_content": body_in_content}
    row["id"] = tx.conversations.add_turn(row)
    if conv is not None or decision == PROCESS:
        tx.conversations.count_turn(turn.conversation_id, size)
    tx.conversations.charge(actor.session_id, int(now // DAY), size)
    # seen by the parties only: the author, and the sessions of the machine it is addressed to (which read that
    # machine's turns anyway: GET …/turns), not by every session (ids and titles are the parties' business)
    parties = events.MACHINE_TARGET + to_machine
    if decision == PROCESS:
        emit(tx, "conversation.turn", now, session_id=actor.session_id, project_key=to_project,
             subject_id=turn.conversation_id, target=parties, id=row["id"], conversation_id=turn.conversation_id,
             sequence=sequence, type=turn.type, to=to, **{"from": row["from_address"]},
             file_name=file_name(row), title=turn.title)
        if turn.type == "release":
            emit(tx, "conversation.released", now, session_id=actor.session_id, project_key=to_project,
                 subject_id=turn.conversation_id, target=parties, conversation_id=turn.conversation_id,
                 sequence=sequence)
    else:
        emit(tx, "conversation.refused", now, session_id=actor.session_id, project_key=to_project,
             subject_id=turn.conversation_id, target=actor.session_id, id=row["id"],
             conversation_id=turn.conversation_id, decision=decision, reason=reason, to=to)
    return WithStatus(201, render(row, pending=pending))


def _check_bounds(tx: Tx, actor: Actor, conv: Row | None, size: int, now: float) -> None:
    """Refuse a turn that would take its conversation or its author's day past a bound (409, 429)."""
    if conv is not None:
        if int(conv["turns"]) + 1 > MAX_TURNS_PER_CONVERSATION:
            raise ConversationFull(f"{conv['conversation_id']} holds {MAX_TURNS_PER_CONVERSATION} turns, the bound "
                                   "of a conversation: continue in a new one", bound="turns",
                                   limit=MAX_TURNS_PER_CONVERSATION)
        if int(conv["bytes"]) + size > MAX_CONVERSATION_BYTES:
            raise ConversationFull(f"{conv['conversation_id']} would hold over {MAX_CONVERSATION_BYTES} bytes of "
                                   "turns, the bound of a conversation: continue in a new one", bound="bytes",
                                   limit=MAX_CONVERSATION_BYTES)
    day = int(now // DAY)
    used = tx.conversations.quota(actor.session_id, day)
    turns, stored = (int(used["turns"]), int(used["bytes"])) if used else (0, 0)
    wait = max(1, int((day + 1) * DAY - now))
    if turns + 1 > MAX_SESSION_TURNS_PER_DAY:
        raise TurnQuota(f"{actor.session_id} stored {turns} turns today, the bound of a session per UTC day "
                        f"({MAX_SESSION_TURNS_PER_DAY})", wait, bound="turns_per_day",
                        limit=MAX_SESSION_TURNS_PER_DAY)
    if stored + size > MAX_SESSION_BYTES_PER_DAY:
        raise TurnQuota(f"{actor.session_id} would store over {MAX_SESSION_BYTES_PER_DAY} bytes of turns today, the "
                        "bound of a session per UTC day", wait, bound="bytes_per_day", limit=MAX_SESSION_BYTES_PER_DAY)


# ---- reads --------------------------------------------------------------------------

def _address_of(tx: Tx, session_id: str) -> str | None:
    address: str | None = render_profile(tx.sessions.get(session_id), session_id)["address"]
    return address


def _takes_part(tx: Tx, actor: Actor, conv: Row, address: str | None) -> bool:
    """Whether the actor is a party to an existing conversation: an admin, the session that opened it, or a
    session whose ``address`` sent or received one of its accepted turns."""
    if actor.is_admin or conv["created_by"] == actor.session_id:
        return True
    return address is not None and tx.conversations.takes_part(conv["conversation_id"], address)


def _unseen(conversation_id: str, actor: Actor) -> str:
    """The one 404 message for a conversation that does not exist and one the actor takes no part in."""
    return f"no conversation {conversation_id[:140]!r} for {actor.session_id}"


def _may_see(tx: Tx, actor: Actor, row: Row) -> bool:
    if actor.is_admin or row["author"] == actor.session_id:
        return True
    if row["decision"] != PROCESS:
        return False
    mine = _address_of(tx, actor.session_id)
    return mine is not None and tx.conversations.takes_part(row["conversation_id"], mine)


def turn(tx: Tx, actor: Actor, turn_id: int) -> dict[str, Any]:
    """One turn the actor may see (its author, a participant address, an admin); 404 otherwise."""
    row = tx.conversations.turn(turn_id)
    if row is None or not _may_see(tx, actor, row):
        raise NotFound(f"no turn {turn_id} for {actor.session_id}")
    return render(row, pending=_pending(tx, row))


def _render_conversation(tx: Tx, conv: Row) -> dict[str, Any]:
    """A conversation's summary: its row, its participants and its pending count, all without reading a turn's
    text (a listing renders many)."""
    released = conv["last_release"] == conv["last_sequence"]
    return {"conversation_id": conv["conversation_id"], "title": conv["title"], "project": conv["project"],
            "state": "released" if released else "open",
            "participants": tx.conversations.participants(conv["conversation_id"]),
            "last_sequence": conv["last_sequence"],
            "pending": tx.conversations.pending_in(conv["conversation_id"], int(conv["last_release"])),
            "created_by": conv["created_by"],
            "created_at": isoformat(conv["created_at"]), "updated_at": isoformat(conv["updated_at"])}


def listing(tx: Tx, actor: Actor, *, state: str | None = None, project: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Conversations the actor takes part in (all for an admin), most recently updated first."""
    if state not in (None, "open", "released"):
        raise Invalid("state must be open or released", field="state")
    party = None if actor.is_admin else (actor.session_id, _address_of(tx, actor.session_id))
    rows = tx.conversations.listing(min(max(limit, 1), MAX_PAGE), state, project, party)
    return [_render_conversation(tx, conv) for conv in rows]


def show(tx: Tx, actor: Actor, conversation_id: str, *, after: int = 0, limit: int = SHOW_PAGE) -> dict[str, Any]:
    """A conversation and one page of its turns: accepted ones and the actor's own refused ones, by id (the order
    the hub recorded them, which is sequence order for accepted turns), those with id above ``after``.

    At most ``limit`` turns and about :data:`SHOW_BYTES` of text per page (at least one turn);
    ``next_after`` is the cursor of the next page (the last id answered), None on the last page. 404 when
    the conversation does not exist or the actor is no party to it, unless it wrote refused turns under that
    id before anyone opened it (it sees those).
    """
    limit = min(max(limit, 1), MAX_PAGE)
    conv = tx.conversations.get(conversation_id)
    if conv is None:  # only refused turns so far: their author sees them
        if not tx.conversations.authored(conversation_id, actor.session_id):
            raise NotFound(_unseen(conversation_id, actor))
        rows, more = tx.conversations.page(conversation_id, actor.session_id, after, limit, SHOW_BYTES,
                                           only_author=True)
        first = tx.conversations.page(conversation_id, actor.session_id, 0, 1, SHOW_BYTES, only_author=True)[0]
        return {"conversation_id": conversation_id, "title": first[0]["title"] if first else conversation_id,
                "project": None, "state": "open", "participants": [], "last_sequence": 0, "pending": 0,
                "created_by": actor.session_id, "created_at": isoformat(first[0]["created_at"]) if first else None,
                "updated_at": isoformat(rows[-1]["created_at"]) if rows else None,
                "turns": [render(r) for r in rows], "next_after": rows[-1]["id"] if more and rows else None}
    if not _takes_part(tx, actor, conv, _address_of(tx, actor.session_id)):
        raise NotFound(_unseen(conversation_id, actor))
    rows, more = tx.conversations.page(conversation_id, actor.session_id, after, limit, SHOW_BYTES)
    return {**_render_conversation(tx, conv),
            "turns": [render(r, pending=r["decision"] == PROCESS and r["type"] != "release"
                             and r["sequence"] > conv["last_release"]) for r in rows],
            "next_after": rows[-1]["id"] if more and rows else None}


def next_sequence(tx: Tx, actor: Actor, conversation_id: str) -> int:
    """The sequence the next accepted turn of a conversation will get (1 for a new one); 404 for a conversation
    the actor is no party to, as for one that does not exist."""
    conv = tx.conversations.get(orgturn.check_conversation_id(conversation_id))
    if conv is not None and not _takes_part(tx, actor, conv, _address_of(tx, actor.session_id)):
        raise NotFound(_unseen(conversation_id, actor))
    return (conv["last_sequence"] if conv else 0) + 1


def _address_for(tx: Tx, actor: Actor, address: str | None) -> str:
    if address is None:
        mine = _address_of(tx, actor.session_id)
        if mine is None:
            raise Invalid(f"{actor.session_id} has no conversation address: declare one (`coord conv profile`) "
                          "or name it", field="address")
        return mine
    machine, project = split_address(address, "address")
    if machine == LOCAL:
        own = tx.sessions.get(actor.session_id) or {}
        machine = own.get("machine") or machine
    addr = f"{machine}.{project}"
    if not actor.is_admin and addr != _address_of(tx, actor.session_id):
        raise Forbidden(f"{addr} is not {actor.session_id}'s address: only its own sessions (or an admin) "
                        "read its inbox", field="address")
    return addr


def inbox(tx: Tx, actor: Actor, address: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Pending turns to the actor's address (or, for an admin, any address), oldest first."""
    if address is None and actor.is_admin and _address_of(tx, actor.session_id) is None:
        return []  # an admin without an address has no inbox of its own; it names one with ``address``
    addr = _address_for(tx, actor, address)
    return [render(r, pending=True) for r in tx.conversations.pending_to(addr, min(max(limit, 1), MAX_PAGE))]


def unshown(tx: Tx, actor: Actor, limit: int, now: float) -> dict[str, Any]:
    """Pending turns to the actor's address its agent has not been shown yet (oldest first), now marked shown.

    What the prompt and post-tool-use hooks inject, under their cap, with the
    unread messages (``POST /messages/unshown``): ``more`` counts the ones
    left for next time (at most :data:`MAX_PAGE` are counted).
    """
    row = tx.sessions.get(actor.session_id)
    addr = _address_of(tx, actor.session_id)
    if row is None or addr is None:
        return {"turns": [], "more": 0}
    rows = tx.conversations.pending_to(addr, limit + MAX_PAGE, int(row["turns_shown"]))
    shown, more = rows[:limit], len(rows) - min(len(rows), limit)
    if shown:
        tx.conversations.set_turns_shown(actor.session_id, int(shown[-1]["id"]))
    return {"turns": [render(r, pending=True) for r in shown], "more": more}


def for_machine(tx: Tx, actor: Actor, machine: str | None, after: int, limit: int) -> list[dict[str, Any]]:
    """Accepted turns to any project on ``machine`` (default: the actor's) with id above ``after``, oldest first.

    What ``coord conv sync`` pages through. A non-admin reads only its own
    declared machine.
    """
    own = (tx.sessions.get(actor.session_id) or {}).get("machine")
    want = own if machine is None or machine == LOCAL else name(machine, "to_machine")
    if want is None and not actor.is_admin:
        raise Invalid(f"{actor.session_id} has no machine declared: declare one (`coord conv profile`)",
                      field="to_machine")
    if not actor.is_admin and want != own:
        raise Forbidden(f"machine {want!r} is not {actor.session_id}'s", field="to_machine")
    page = min(max(limit, 1), MAX_PAGE)
    # an admin naming no machine (and declaring none) reads every machine's turns
    rows = tx.conversations.to_machine(want, after, page) if want else tx.conversations.accepted(after, page)
    releases: dict[str, int] = {}
    out = []
    for r in rows:
        if r["conversation_id"] not in releases:
            conv = tx.conversations.get(r["conversation_id"])
            releases[r["conversation_id"]] = conv["last_release"] if conv else 0
        out.append(render(r, pending=r["type"] != "release" and r["sequence"] > releases[r["conversation_id"]]))
    return out


def status(tx: Tx, actor: Actor, machine: str | None, now: float, halt_active: bool) -> dict[str, Any]:
    """Seed 004's ``cross-agent-status --json``: per project on ``machine`` (default: the actor's), pending first.

    ``most_recent`` is the newest pending turn's file name and age in seconds. The file name holds its
    conversation's id, which only the parties see: of another machine than its own, a non-admin gets the
    counts and ages, and ``filename`` null.
    """
    own = (tx.sessions.get(actor.session_id) or {}).get("machine")
    want = own if machine is None or machine == LOCAL else name(machine, "machine")
    reveal = actor.is_admin or want == own
    projects = sorted({r["project"] for r in tx.conversations.addresses() if r["machine"] == want})
    counts = {r["to_address"]: r for r in tx.conversations.pending_counts([f"{want}.{p}" for p in projects])}
    rows = []
    for p in projects:
        c = counts.get(f"{want}.{p}")
        newest = tx.conversations.turn(int(c["newest"])) if c else None
        rows.append({"name": p, "pending_count": int(c["pending"]) if c else 0,
                     "most_recent": {"filename": file_name(newest) if reveal else None,
                                     "age_seconds": int(now - newest["created_at"])}
                     if newest else None})
    rows.sort(key=lambda r: (-r["pending_count"], r["name"]))
    return {"scanned_at": isoformat(now), "machine": want, "halt_active": halt_active, "projects": rows}


def release_draft(tx: Tx, actor: Actor, conversation_id: str, *, to: str | None, release_status: str | None,
                  body: str | None, now: float) -> Draft:
    """A release turn for a conversation (field form); ``to`` defaults to the last other party that wrote in it."""
    conv = tx.conversations.get(orgturn.check_conversation_id(conversation_id))
    mine = _address_of(tx, actor.session_id)
    if conv is None or not _takes_part(tx, actor, conv, mine):
        raise NotFound(_unseen(conversation_id, actor))
    if to is None:
        to = tx.conversations.last_other_sender(conversation_id, mine)
        if to is None:
            raise Invalid("nobody else wrote in this conversation: name the destination (`to`)", field="to")
    d = draft(to=to, conversation_id=conversation_id, type="release", title=conv["title"],
              body=body or "Released.", release_status=release_status or "complete", now=now)
    return dataclasses.replace(d, release_once=True)
