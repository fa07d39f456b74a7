"""Who is acting: the actor of a request and the rules for session ids.

Contract §2.2: identity comes from the credential, never from an argument. A
body or query field that names a session (``session_id``, ``from_session``,
``updated_by``, ``created_by``, ``completed_by``) may only repeat the caller's
own id; naming another session is refused (403) and changes nothing.

Session ids compare case-insensitively (issue 7: ``desktop-0o8a1rl/claude-main``
is ``DESKTOP-0O8A1RL/claude-main``), by one mechanism: the ``sessions`` table
maps the case-folded id to the first spelling seen, and every id entering the
hub is replaced by that spelling where it enters (:func:`canonical` for
filters and readers, :func:`enroll` for token minting, :func:`address` for
recipients; ``api/auth.py`` for actors). Stored ids are therefore always
the canonical spelling and the rest of the core compares them exactly.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coordhub.errors import Forbidden, Invalid

if TYPE_CHECKING:  # the CLI imports this module for is_broadcast; keep the store out of its start-up
    from coordhub.store.base import Row
    from coordhub.store.tx import Tx

# Seed 000 ids look like MACHINE/claude-main; seed 002 instance ids are bare
# words ("backend", "orchestrator"). Both fit: 1-3 slash-separated parts. Used
# with fullmatch: a pattern anchored with "$" would let "name\n" through.
_SESSION_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,100}(?:/[A-Za-z0-9_.@+-]{1,100}){0,2}")
# Words that address the whole fleet, compared case-insensitively: seed 000
# sends ALL_SESSIONS, its CLI takes ALL/fleet/broadcast, seed 002 says "all".
BROADCAST_NAMES = frozenset({"all_sessions", "all", "fleet", "broadcast"})
MAX_SESSION_ID = 200
# A machine or project as seed 004 addresses it (``<machine>.<project>``): what a session declares
# (core.addressing), what a project halt names (core.scope), what the client derives (client.address).
ADDRESS_PART = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAIN_SESSION_NAME = "claude-main"   # seed 000: a machine's session is <MACHINE>/claude-main (main_session)
ADMIN_NAME = "admin"                # the bootstrap admin token's session
SYSTEM_SENDER = "coordhub"          # the hub's own messages (dead-letter notices)
SYSTEM_SESSION = "coordhub/system"  # the hub's own start-up bookkeeping
HUB_NAMES = frozenset({SYSTEM_SENDER, SYSTEM_SESSION})


@dataclass(frozen=True)
class Actor:
    """The session a request acts as, and whether its token is an admin token.

    ``token_epoch``: its session's token epoch when its bearer token was authenticated (None: no token, as in
    ``--no-auth`` mode or the hub's own work). Every write it makes compares it with the session's row in its own
    transaction (:meth:`Hub.mutate`), so a token revoked through any hub process writes nothing once the
    revocation is answered, whatever a process's token cache still holds (``Tokens.revoke`` moves the epoch on).
    Not part of the actor's identity (equality, ``repr``).
    """

    session_id: str
    is_admin: bool = False
    token_epoch: int | None = field(default=None, compare=False, repr=False)


def validate_session_id(value: str, field: str = "session_id") -> str:
    """Return ``value`` if it is a well-formed session id; raise ``Invalid`` (422) otherwise.

    Well-formed: 1 to 3 parts joined by ``/``, each of letters, digits and
    ``_ . @ + -``, at most 200 characters in all (seed 001's column width).
    """
    if len(value) > MAX_SESSION_ID or not _SESSION_ID.fullmatch(value):
        raise Invalid(
            f"{field} {value!r} is not a session id: use MACHINE/name, e.g. HOWARD-HOME/claude-main "
            "(letters, digits, _ . @ + -; at most 3 parts and 200 characters)",
            field=field,
        )
    if is_broadcast(value):
        raise Invalid(f"{field} {value!r} is reserved for broadcast", field=field)
    return value


def is_broadcast(name: str) -> bool:
    """True when ``name`` addresses the whole fleet (any case of :data:`BROADCAST_NAMES`)."""
    return name.strip().lower() in BROADCAST_NAMES


def validate_acting_name(value: str, field: str = "session_id", *, admin: bool = False) -> str:
    """Return ``value`` if a credential or a ``--no-auth`` request may act under it; ``Invalid`` otherwise.

    On top of :func:`validate_session_id`: the hub's own names
    (:data:`HUB_NAMES`) are never an acting identity, so nobody can send as
    the hub; ``admin`` (the bootstrap admin token's name) is reserved for
    admin tokens. Compared case-insensitively, as session ids are (issue 7).
    """
    validate_session_id(value, field)
    folded = value.lower()
    if folded in HUB_NAMES:
        raise Invalid(f"{field} {value!r} is reserved: it is the hub's own name", field=field)
    if folded == ADMIN_NAME and not admin:
        raise Invalid(f"{field} {value!r} is reserved for admin tokens (`coord token create NAME --admin`)",
                      field=field)
    return value


def fold(session_id: str) -> str:
    """The key session ids compare by: lower case (ids are ASCII, so this is the store's SQL ``lower()``)."""
    return session_id.lower()


def same_session(a: str, b: str) -> bool:
    """True when two ids name one session (they differ at most in case)."""
    return fold(a) == fold(b)


def canonical(tx: Tx, spelling: str) -> str:
    """The stored (first seen) spelling of a session id, or ``spelling`` itself when the hub has never met it."""
    row = tx.sessions.by_key(spelling)
    return str(row["session_id"]) if row is not None else spelling


def enroll(tx: Tx, spelling: str, now: float) -> str:
    """Record a session as known (a token is minted for it, or it acts); return its canonical spelling."""
    return tx.sessions.touch(spelling, now)


def address(tx: Tx, spelling: str, now: float) -> tuple[str, bool]:
    """``(canonical spelling, known)`` of a recipient, recording the spelling if it is new.

    A message may go to a session that has not yet appeared (it may come
    later): its spelling is recorded so the session finds it under any
    spelling, but ``known`` stays False until it has a token or acts.
    """
    spelling, known, _ = addressed(tx, spelling, now)
    return spelling, known


def addressed(tx: Tx, spelling: str, now: float) -> tuple[str, bool, Row]:
    """:func:`address`, with the recipient's ``sessions`` row (a send reads its incarnation from it)."""
    row = tx.sessions.address(spelling, now)
    return str(row["session_id"]), row["known_since"] is not None, row


def close_matches(tx: Tx, spelling: str, acting: str, limit: int = 3) -> list[str]:
    """Known session ids that look like ``spelling`` (difflib, case-insensitive), best first; for typo warnings.

    Only the most recently seen known sessions are candidates
    (``Sessions.known_ids``, 256, the ``acting`` session among them: it is
    seen now): difflib compares each one, and this runs inside the send's
    transaction, so its cost must stay bounded (about 10 ms at 256
    candidates on the 2-core test machine).
    """
    known = {fold(s): s for s in tx.sessions.known_ids(acting)}
    return [known[k] for k in difflib.get_close_matches(fold(spelling), list(known), n=limit, cutoff=0.6)]


def unknown_recipient_warning(to: str, did_you_mean: list[str]) -> str:
    """The one-line warning front ends show for a message to a session the hub has never seen."""
    hint = f"; did you mean {' or '.join(did_you_mean)}?" if did_you_mean else ""
    return f"the hub has never seen {to} (no token, never acted): the message waits in case it comes later{hint}"


def assert_acting_as(actor: Actor, claimed: str | None, field: str) -> None:
    """Refuse (403) a field that names a session other than the actor's own (in any case); None passes."""
    if claimed is not None and not same_session(claimed, actor.session_id):
        raise Forbidden(
            f"{field} {claimed!r} is not you: this token acts as {actor.session_id!r}; "
            "identity comes from the token, not from the request",
            field=field,
            acting_as=actor.session_id,
        )


def address_part(value: str) -> str:
    """``value`` as a machine or project name (:data:`ADDRESS_PART`), the one way every front end makes one.

    Lower case, each run of other characters replaced by ``-``, ``-`` and
    ``_`` stripped from its ends, then cut to 64: ``My.Project`` becomes
    ``my-project``, ``api_`` and ``web-`` become ``api`` and ``web``. The cut
    comes last, as in the client before this function, so a name cut right
    after a ``-`` keeps it (``a`` x 63 + ``.b`` becomes ``a`` x 63 + ``-``),
    and applied again the function drops it: compare names made by it with
    :func:`coordhub.core.scope.project_of`, which applies it twice. Always
    all of it, as the client did before this function (and as every client
    out there still does): a name the hub would take as it is (``api_``) is
    normalised too, so a client of any version declares the same address for
    the same directory (review: ``api_`` was kept, so turns addressed to
    ``machine.api`` no longer reached it). The hub still takes a declared or
    stored ``api_`` (:data:`ADDRESS_PART`). ``ValueError`` when no letter or
    digit is left.
    """
    text = re.sub(r"[^a-z0-9_-]+", "-", value.strip().lower()).strip("-_")[:64]
    if not ADDRESS_PART.fullmatch(text):
        raise ValueError(f"{value[:80]!r} has no letters or digits to make a machine or project name of")
    return text


def main_session(machine: str) -> str:
    """Seed 000's session of ``machine``: ``<MACHINE>/claude-main`` (what a bare machine name stands for, as a
    message's recipient, a client's default session, or the creator a ``--no-auth`` todo names by its
    ``created_by_machine``). Not validated: callers check the result as the session id they use it as."""
    return f"{machine}/{MAIN_SESSION_NAME}"


def machine_recipient(tx: Tx, machine: str) -> str:
    """The session a bare name given as a machine addresses (``coord msg send NAME``, sent as ``to_machine``):
    seed 000's ``NAME/claude-main`` (:func:`main_session`), unless the hub has never seen that session but knows
    one named exactly ``NAME`` (seed 002's instances register bare names, e.g. ``backend``): then that one.

    When both or neither are known, seed 000's rule stands (and a send warns of the unknown recipient). Decided
    in the send's own transaction, before the recipient's row is written (:func:`addressed` records a new
    spelling), so nothing is stored for a session the sender did not mean. At most two reads of one row by key
    (both read ahead on PostgreSQL: ``api/routes/messages.py``), and only for a send naming a machine. Raises
    ``Invalid`` (field ``to_machine``) for a name with a ``/``, a broadcast word, or one that makes no session id.
    """
    if "/" in machine:
        raise Invalid(f"to_machine {machine!r} is a machine name, without '/': give a session id as to_session",
                      field="to_machine")
    main = validate_session_id(main_session(validate_session_id(machine, "to_machine")), "to_machine")
    if tx.sessions.is_known(main) or not tx.sessions.is_known(machine):
        return main
    return machine


def machine_of(session_id: str) -> str | None:
    """The machine part of a ``MACHINE/name`` session id (seed 000), or None for a bare id (seed 002)."""
    return session_id.split("/", 1)[0] if "/" in session_id else None


_ORCHESTRATED = re.compile(r"[^/]+/(?:(agent)|worker-[0-9a-f]{8})", re.IGNORECASE)


def orchestrator_role(session_id: str) -> str | None:
    """``"host"`` for a machine's orchestrator host (``<m>/agent``), ``"worker"`` for one of its workers
    (``<m>/worker-<8 hex>``), None for anyone else (a person's session, a script).

    Compared case-insensitively, as session ids are: a session first seen in
    another letter case keeps that spelling, and its token acts under it, so
    a case-sensitive test would let ``LAPTOP/WORKER-…`` pass for a person.
    """
    match = _ORCHESTRATED.fullmatch(session_id)
    return None if match is None else "host" if match.group(1) else "worker"


def is_orchestrated(session_id: str) -> bool:
    """Whether a session is the orchestrator's (:func:`orchestrator_role`): a host or a worker.

    Issue 11: the host pauses and resumes its workers itself (SIGSTOP and
    SIGCONT) as halts stand and lift, so these sessions are left out of the
    pause after a resume (:mod:`coordhub.core.pause`); nor may they resume
    anything themselves (:func:`coordhub.core.scope.may_act_on`).
    """
    return orchestrator_role(session_id) is not None


def attributed_machine(actor: Actor, claimed: str | None, field: str = "created_by_machine") -> str | None:
    """The machine a record is attributed to: the actor's own; a ``claimed`` one must agree (403 otherwise).

    Attribution comes from the credential like every identity field (issue 7,
    point 5): the machine is the MACHINE part of the acting session, compared
    case-insensitively; a bare session id (no machine part) may claim none.
    """
    mine = machine_of(actor.session_id)
    if claimed is not None and (mine is None or claimed.lower() != mine.lower()):
        raise Forbidden(
            f"{field} {claimed!r} is not your machine: this token acts as {actor.session_id!r}"
            + ("" if mine is not None else ", which names no machine")
            + "; attribution comes from the token, not from the request (leave it out)",
            field=field, acting_as=actor.session_id)
    return mine


def require_admin(actor: Actor, what: str) -> None:
    """Refuse (403) unless the actor's token is an admin token."""
    if not actor.is_admin:
        raise Forbidden(f"{what} needs an admin token; {actor.session_id!r} is not an admin")


def recipient(to_session: str | None) -> str | None:
    """The recipient session of a message, or None for a broadcast to the fleet.

    Seed 001 sent broadcasts with ``to_session`` omitted or null; seed 000 with
    the literal ``"ALL_SESSIONS"``. Both (and any :data:`BROADCAST_NAMES`) mean broadcast.
    """
    if to_session is None or to_session.strip() == "" or is_broadcast(to_session):
        return None
    return validate_session_id(to_session, "to_session")
