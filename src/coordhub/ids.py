"""Ids of the records the hub creates: messages, leases, todos, workflows and their steps, tokens.

Each is a UUID version 7 (RFC 9562 §5.7): 48 bits of Unix time in
milliseconds, then 74 random bits, in the usual 36-character text form, so
an id still parses as any UUID does. Ids made later sort after earlier ones,
so inserting one into a unique index on the id touches the index's last leaf
page rather than a random page of it: with version 4 ids every message sent
in a write batch dirtied its own index page, which the commit then wrote to
the WAL (issue 15: ~15 % of the writer's CPU per send). An id says when its
record was made to the millisecond, which the record's ``created_at`` says
anyway; ids are names, never credentials (a token's secret is separate).
"""

from __future__ import annotations

import re
import uuid

import uuid_utils


def new_id() -> str:
    """A new record id: a UUIDv7 in text form, e.g. ``019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12``."""
    return str(uuid_utils.uuid7())


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: A UUID as the hub's routes take a record id: 36 characters, 32 hex digits, or 36 in braces, in any case, or a
#: ``urn:uuid:`` URN of one (RFC 9562 §4).
_SPELLED = re.compile(rf"(?:urn:uuid:)?({_UUID}|[0-9a-f]{{32}}|\{{{_UUID}\}})", re.IGNORECASE)


EXAMPLE = "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"  # an id, for messages that say what one looks like


def spells_id(text: str) -> bool:
    """Whether ``text`` spells a record id in one of the ways :func:`canonical` reads (36 characters, 32 hex digits,
    36 in braces, any case, or a ``urn:uuid:`` URN of one).

    A superset of what the hub's routes take as a record id (their ``uuid.UUID`` path parameters refuse
    ``URN:UUID:`` in upper case and a URN of 32 digits or braces), so a client that refuses what fails here
    refuses nothing the hub would take.
    """
    return _SPELLED.fullmatch(text) is not None


def canonical(text: str) -> str:
    """``text`` in the hub's own spelling of an id when it spells a UUID, else ``text`` unchanged.

    A UUID may be written in upper case, in braces, as 32 hex digits or as a
    ``urn:uuid:`` URN (RFC 9562 §4); the hub stores and answers the lower-case
    36-character form (:func:`new_id`), and its routes take a record id in any
    of those spellings. A value that may be a record's id or a free name (a
    thread is named by a message's id or by any text) goes through here, so it
    matches the id however it was spelt: ``"019AD3F0-6C1E-…"`` becomes
    ``"019ad3f0-6c1e-…"``; ``"bd-12"`` stays ``"bd-12"``.

    Only those spellings (:data:`_SPELLED`): :class:`uuid.UUID` also reads ``0x…``, ``_`` and ``+`` in its hex
    (``int(…, 16)``), hyphens anywhere and ``uuid:``, which no route takes as an id, so through it distinct free
    names merged (``0x`` and 30 hex digits named the thread of ``00…`` and those digits) and were stored as
    another name.
    """
    spelled = _SPELLED.fullmatch(text)
    return text if spelled is None else str(uuid.UUID(spelled[1]))
