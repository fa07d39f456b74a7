"""Who is acting: the actor of a request and the rules for session ids.

Contract §2.2: identity comes from the credential, never from an argument. A
body or query field that names a session (``session_id``, ``from_session``,
``updated_by``, ``created_by``, ``completed_by``) may only repeat the caller's
own id; naming another session is refused (403) and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coordhub.errors import Forbidden, Invalid

# Seed 000 ids look like MACHINE/claude-main; seed 002 instance ids are bare
# words ("backend", "orchestrator"). Both fit: 1-3 slash-separated parts.
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.@+-]{1,100}(/[A-Za-z0-9_.@+-]{1,100}){0,2}$")
BROADCAST_NAMES = ("ALL_SESSIONS", "ALL")  # seed 000 sends ALL_SESSIONS; both mean the fleet
MAX_SESSION_ID = 200


@dataclass(frozen=True)
class Actor:
    """The session a request acts as, and whether its token is an admin token."""

    session_id: str
    is_admin: bool = False


def validate_session_id(value: str, field: str = "session_id") -> str:
    """Return ``value`` if it is a well-formed session id; raise ``Invalid`` (422) otherwise.

    Well-formed: 1 to 3 parts joined by ``/``, each of letters, digits and
    ``_ . @ + -``, at most 200 characters in all (seed 001's column width).
    """
    if len(value) > MAX_SESSION_ID or not _SESSION_ID.match(value):
        raise Invalid(
            f"{field} {value!r} is not a session id: use MACHINE/name, e.g. HOWARD-HOME/claude-main "
            "(letters, digits, _ . @ + -; at most 3 parts and 200 characters)",
            field=field,
        )
    if value in BROADCAST_NAMES:
        raise Invalid(f"{field} {value!r} is reserved for broadcast", field=field)
    return value


def assert_acting_as(actor: Actor, claimed: str | None, field: str) -> None:
    """Refuse (403) a field that names a session other than the actor's own; None passes."""
    if claimed is not None and claimed != actor.session_id:
        raise Forbidden(
            f"{field} {claimed!r} is not you: this token acts as {actor.session_id!r}; "
            "identity comes from the token, not from the request",
            field=field,
            acting_as=actor.session_id,
        )


def require_admin(actor: Actor, what: str) -> None:
    """Refuse (403) unless the actor's token is an admin token."""
    if not actor.is_admin:
        raise Forbidden(f"{what} needs an admin token; {actor.session_id!r} is not an admin")


def recipient(to_session: str | None) -> str | None:
    """The recipient session of a message, or None for a broadcast to the fleet.

    Seed 001 sent broadcasts with ``to_session`` omitted or null; seed 000 with
    the literal ``"ALL_SESSIONS"``. Both (and ``"ALL"``) mean broadcast.
    """
    if to_session is None or to_session.strip() == "" or to_session in BROADCAST_NAMES:
        return None
    return validate_session_id(to_session, "to_session")
