"""The HTTP header names of the hub's API, defined once for the hub and every client (docs/api.md).

The hub (:mod:`coordhub.api`, :mod:`coordhub.mcp`), the clients
(:mod:`coordhub.client`) and the CLI's fast path (:mod:`coordhub.cli.fast`)
all name a header from here. This module imports nothing and sits below
every layer, as :mod:`coordhub.errors` does, so a front end that must start
in tens of milliseconds (the fast path, the hooks: standard library only)
names a header without importing the ``api`` package and FastAPI with it.

Names are spelled as the hub documents them and as clients send them. Field
names are case-insensitive (RFC 9110 §5.1): Starlette sends an answer's
names in lower case and ASGI servers give a request's in lower case, so
look one up in such a mapping by ``name.lower()`` (as
:func:`coordhub.api.headers.header` and :data:`coordhub.client.wire.NEXT_CURSOR` do).
"""

# ---- request headers ---------------------------------------------------------------

#: On a ``--no-auth`` hub: the session a request acts as. Beside a token it must name the token's own session
#: (403 ``session_mismatch`` otherwise: :func:`coordhub.api.auth.check_named_session`).
SESSION_HEADER = "X-Coord-Session"
#: ``1``: the request is also a heartbeat of its session (:mod:`coordhub.api.activity`).
HEARTBEAT_HEADER = "X-Coord-Heartbeat"
#: A write replayed from a client's softfail queue: when it was first tried (ISO 8601).
QUEUED_AT_HEADER = "X-Coord-Queued-At"
#: A write's idempotency key: the same key again answers the stored answer instead of writing twice.
IDEMPOTENCY_HEADER = "Idempotency-Key"

# ---- answer headers ----------------------------------------------------------------

#: ``true`` on an answer replayed for an idempotency key already used.
REPLAY_HEADER = "Idempotent-Replayed"
#: An event stream's answer: the id of the event it starts after.
CURSOR_HEADER = "X-Coord-Cursor"
#: An audit page: the bound through which retention pruned events after ``after``.
GAP_HEADER = "Coord-Gap"
# Where a list the hub answered in part goes on (absent: the list ends with this answer):
NEXT_CURSOR_HEADER = "Coord-Next-Cursor"  # todos, components, workflows, work items: ask again with cursor= this
NEXT_AFTER_SEQ_HEADER = "Coord-Next-After-Seq"  # unread messages, a thread: ask again with after_seq= this
NEXT_BEFORE_SEQ_HEADER = "Coord-Next-Before-Seq"  # message history: ask again with before_seq= this
NEXT_AFTER_FENCE_HEADER = "Coord-Next-After-Fence"  # leases: ask again with after_fence= this
NEXT_AFTER_HEADER = "Coord-Next-After"  # conversation turns, audit pages: ask again with after= this
