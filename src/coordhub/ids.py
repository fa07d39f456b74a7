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

import uuid_utils


def new_id() -> str:
    """A new record id: a UUIDv7 in text form, e.g. ``019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12``."""
    return str(uuid_utils.uuid7())
