"""Turns: one turn as sent (:class:`Draft`, parsed by :func:`draft`), its decisions, its file name and JSON form.

A turn is sent in seed 004's file form (``content``, optionally signed) or as
fields the hub renders into that form. Once recorded it carries one of the
decisions :data:`PROCESS`, :data:`DEDUP`, :data:`QUERY`, :data:`REJECT`
(how they are reached: :mod:`coordhub.core.conversations`), and is answered in
the JSON form of :func:`render`, named as seed 004 names its files
(:func:`file_name`). A turn's text is stored once where its body can be read
back from its file (:func:`body_storage`, :func:`body_of`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import orgturn
from coordhub.errors import Invalid
from coordhub.store.base import Row

PROCESS, DEDUP, QUERY, REJECT = "process", "dedup", "query", "reject"
MAX_AHEAD = 300  # seconds a turn's stated TIMESTAMP may be after the hub's clock (:func:`check_clock`)
RELEASE_BODY = "Released."  # a release turn's text when its sender gave none (hub and `coord conv release --sign`)


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

    def plain(self) -> dict[str, Any]:
        """The draft as plain data (strings, numbers, None, lists and dicts of them), as a
        :class:`~coordhub.core.calls.Call` carries it to the writer process; :meth:`from_plain` inverts."""
        t = self.turn
        return {"to": self.to, "content": self.content, "signature": self.signature,
                "expect_sequence": self.expect_sequence, "from_machine": self.from_machine,
                "from_project": self.from_project,
                "turn": {"conversation_id": t.conversation_id, "type": t.type, "title": t.title,
                         "sequence": t.sequence, "timestamp": t.timestamp, "protocol_version": t.protocol_version,
                         "requires_tools": list(t.requires_tools), "body": t.body, "keys": dict(t.keys)}}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Draft:
        """The draft :meth:`plain` gave (nothing parsed again: the serving process checked its form)."""
        turn = dict(plain["turn"])
        turn["requires_tools"] = tuple(turn["requires_tools"])
        return cls(to=plain["to"], turn=orgturn.Turn(**turn), content=plain["content"],
                   signature=plain["signature"], expect_sequence=plain["expect_sequence"],
                   from_machine=plain["from_machine"], from_project=plain["from_project"])


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
        # Stripped as a file's values are read (review: "5 " was judged a version mismatch, then stored as "5")
        keys = {"TITLE": (title or conversation_id).strip(), "CONVERSATION_ID": conversation_id.strip(),
                "MESSAGE_TYPE": type.strip(), "SEQUENCE": "0",
                "TIMESTAMP": orgturn.utc_text(dt.datetime.fromtimestamp(now, dt.UTC)),
                "PROTOCOL_VERSION": (protocol_version or orgturn.PROTOCOL_VERSION).strip()}
        if requires_tools:
            orgturn.check_tools(requires_tools, "requires_tools")
            keys["REQUIRES_TOOLS"] = ", ".join(requires_tools)
        if release_status is not None:
            keys["RELEASE_STATUS"] = release_status.strip()
        turn = orgturn.build(keys, body)
        turn = orgturn.Turn(**{**turn.__dict__, "sequence": None})
        content = orgturn.render(keys, body)
        if len(content.encode("utf-8")) > orgturn.MAX_CONTENT_BYTES:
            raise Invalid(f"the turn is over {orgturn.MAX_CONTENT_BYTES} bytes", field="body",
                          limit=orgturn.MAX_CONTENT_BYTES)
    return Draft(to=to, turn=turn, content=content, signature=signature, expect_sequence=expect_sequence,
                 from_machine=from_machine, from_project=from_project)


def check_clock(turn: orgturn.Turn, now: float) -> None:
    """Refuse (422 on ``TIMESTAMP``) a turn whose stated time is more than :data:`MAX_AHEAD` seconds after ``now``,
    the hub's clock; any earlier time is taken.

    Seed 004's ``#+TIMESTAMP`` is the author's clock, written by the author; no script of the seed checked it, and
    its ``cross-agent-status`` compared it as text to decide what was pending: a release stamped ahead of the other
    machine's clock hid every turn sent after it until that time came. The hub orders turns by its own sequence and
    dates them by its own clock (``created_at``, the file name, a synced file's mtime), keeping the author's time
    beside as ``stated_timestamp``. A time still to come is never true, and the signed bytes carry it to every
    receiver, which cannot tell; so it is refused, naming both clocks, and the sender sets its clock (or the file's
    ``TIMESTAMP``) and sends again. A time past is taken at any age: a file written a while before it was sent, a
    turn queued while the hub was unreachable, history brought in by ``coord conv import``.
    """
    stated = orgturn.parse_timestamp(turn.timestamp).astimezone(dt.UTC)
    ahead = stated.timestamp() - now
    if ahead > MAX_AHEAD:
        hub_time = orgturn.utc_text(dt.datetime.fromtimestamp(now, dt.UTC))
        raise Invalid(f"TIMESTAMP {turn.timestamp} is {_span(ahead)} ahead of the hub's clock ({hub_time}; at most "
                      f"{MAX_AHEAD // 60} minutes are allowed): the sender's clock is wrong; set it (or the file's "
                      "TIMESTAMP) and send again", field="TIMESTAMP", ahead_seconds=int(ahead), hub_time=hub_time,
                      limit=MAX_AHEAD)


def _span(seconds: float) -> str:
    """``seconds`` as people read a clock's error: ``2h03m``, ``7m12s``."""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


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


def body_storage(content: str, body: str) -> tuple[str, int]:
    """``(body column, body_in_content)`` for a turn: the body is stored apart only when the file does not give it
    back exactly (see :func:`body_of`)."""
    again = orgturn.split(content)[1]
    if again == body:
        return "", 1
    if again.endswith("\n") and again[:-1] == body:
        return "", 2
    return body, 0
