"""Bearer tokens: one per session (or admin), stored only as SHA-256 hashes.

A token is 32 random bytes, URL-safe base64, prefixed ``coord_`` so it is
recognisable in logs and secret scanners, then a dot and a tag: the first
16 bytes of HMAC-SHA-256 (RFC 2104) of the part before the dot under the
database's tag key (``hub_meta.token_tag_key``, migration 0023), URL-safe
base64. The hub keeps only the hash; the token is shown once, when created.

The tag lets a hub tell a token one of its database's hubs minted from a
guess without asking the store (:func:`tagged`): a flood of bad tokens from
one address spends that address's failed sign-ins, and tagged tokens from
the same address are still looked up (``api/auth.py``). Tokens minted before
the tag (no dot) stay valid; they are looked up like any guess.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import leases
from coordhub.core.events import emit
from coordhub.core.idempotency import SecretBody
from coordhub.core.identity import (
    ADMIN_NAME,
    SYSTEM_SESSION,
    Actor,
    canonical,
    enroll,
    require_admin,
    validate_acting_name,
)
from coordhub.errors import Conflict, NotFound
from coordhub.ids import new_id
from coordhub.store.base import Row
from coordhub.store.tx import Tx

PREFIX = "coord_"
TAG_KEY = "token_tag_key"  # the hub_meta key holding the tag key (hex)
TAG_CHARS = 22  # URL-safe base64 of a 16-byte tag, unpadded
REVOKED = "unknown or revoked token; ask an admin for one (`coord token create NAME`)"  # the 401's message
REPLAY_MESSAGE = ("this repeats an earlier token create (same Idempotency-Key): the token was shown only in the "
                  "first response and is stored nowhere; if it was lost, revoke this name and create a new token")


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a token record (never the token or its hash)."""
    return {"id": row["id"], "name": row["name"], "admin": bool(row["is_admin"]),
            "created_at": isoformat(row["created_at"]), "revoked_at": isoformat(row.get("revoked_at"))}


def tag_key(tx: Tx) -> bytes:
    """The database's tag key; made here when it has none (a database emptied by hand, an archive restored)."""
    value = tx.meta.get(TAG_KEY)
    if value is None:
        tx.meta.put_absent(TAG_KEY, secrets.token_hex(32))
        value = tx.meta.get(TAG_KEY)
        assert value is not None
    return bytes.fromhex(value)


def _tag(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def tagged(value: str, key: bytes) -> bool:
    """Whether a token (or a dashboard cookie: :func:`new_secret`) carries a tag that checks under ``key``: minted
    by a hub of this database, maybe since revoked (the store still decides). No store access; one HMAC at most."""
    body, dot, tag = value.rpartition(".")
    if not dot or len(tag) != TAG_CHARS or not body.isascii():
        return False
    return hmac.compare_digest(tag, _tag(key, body))


def new_secret(tx: Tx, prefix: str = "") -> str:
    """A new bearer secret: ``prefix``, 32 random bytes in URL-safe base64, a dot and its tag (:func:`tagged`)."""
    body = prefix + secrets.token_urlsafe(32)
    return body + "." + _tag(tag_key(tx), body)


def _insert(tx: Tx, name: str, is_admin: bool, now: float) -> tuple[str, Row]:
    token = new_secret(tx, PREFIX)
    row: Row = {"id": new_id(), "name": name, "token_hash": hash_token(token), "is_admin": int(is_admin),
           "created_at": now, "revoked_at": None}
    tx.tokens.add(row)
    return token, row


def create(tx: Tx, actor: Actor, name: str, is_admin: bool, now: float) -> dict[str, Any]:
    """Create a token acting as session ``name`` (admin only); the result carries the token once.

    The token is in this result only: an idempotent replay of the request
    answers the record with ``token_shown: false`` (see :class:`SecretBody`).

    Raises ``Invalid`` for a malformed or reserved name (see
    :func:`~coordhub.core.identity.validate_acting_name`: broadcast words and
    the hub's own names never, ``admin`` only for an admin token).
    """
    require_admin(actor, "creating tokens")
    validate_acting_name(name, "name", admin=is_admin)
    name = enroll(tx, name, now)  # the session's first spelling, whatever the case of this one
    token, row = _insert(tx, name, is_admin, now)
    emit(tx, "token.created", now, session_id=actor.session_id, subject_id=row["id"], name=name, admin=is_admin)
    return SecretBody({**render(row), "token": token}, ("token",), REPLAY_MESSAGE)


def mint(tx: Tx, name: str, now: float, *, purpose: str) -> str:
    """Mint a session token for ``name`` on the hub's own authority; return it (shown to nobody else).

    For credentials the hub hands out itself: the orchestrator's per-worker
    session at dispatch (issue 11). Not reachable as an API call; the caller
    decides who may cause it. Raises ``Invalid`` for a malformed name.
    """
    validate_acting_name(name, "name")
    name = enroll(tx, name, now)
    token, row = _insert(tx, name, False, now)
    emit(tx, "token.created", now, session_id=SYSTEM_SESSION, subject_id=row["id"], name=name, admin=False,
         purpose=purpose)
    return token


def retire(tx: Tx, name: str, now: float, *, reason: str) -> dict[str, int]:
    """Revoke every live token of session ``name`` and end its live leases, on the hub's authority.

    The end of a credential the hub minted (:func:`mint`): its leases are
    recorded ``revoked`` by the hub, their fences stale at once. Nothing to
    revoke is not an error (a retried end). Returns ``{"revoked", "released_leases"}``.
    """
    count = tx.tokens.revoke(name, now)
    ended = leases.revoke_session(tx, Actor(SYSTEM_SESSION, is_admin=True), name, now)
    if count or ended:
        emit(tx, "token.revoked", now, session_id=SYSTEM_SESSION, name=name, count=count,
             released_leases=len(ended), reason=reason)
    return {"revoked": count, "released_leases": len(ended)}


def ensure_admin(tx: Tx, existing: str | None, now: float) -> str | None:
    """Bootstrap: return a new admin token unless ``existing`` is a valid admin token (then None)."""
    if existing:
        row = tx.tokens.by_hash(hash_token(existing))
        if row is not None and row["is_admin"]:
            return None
    token, row = _insert(tx, enroll(tx, ADMIN_NAME, now), True, now)
    emit(tx, "token.created", now, session_id=None, subject_id=row["id"], name=ADMIN_NAME, admin=True)
    return token


def authenticate(tx: Tx, token: str) -> Actor | None:
    """The actor a token acts as, or None when it is unknown or revoked."""
    row = tx.tokens.by_hash(hash_token(token))
    if row is None:
        return None
    return Actor(row["name"], bool(row["is_admin"]), token_epoch=int(row["token_epoch"]))


def find(tx: Tx, actor: Actor, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Every token record (admin only)."""
    require_admin(actor, "listing tokens")
    return [render(r) for r in tx.tokens.all(include_revoked)]


def revoke(tx: Tx, actor: Actor, name: str, now: float, *, keep_leases: bool = False) -> dict[str, Any]:
    """Revoke every token of ``name`` (admin only) and, unless ``keep_leases``, end its session's leases.

    Ending a session ends what it holds (issue 7): its live leases are recorded
    as ``revoked`` by the actor in the same transaction, their fences stale at
    once; the answer counts them (``released_leases``, ``lease_ids``).
    ``NotFound`` when it has no live token; ``Conflict`` when that would leave
    no admin token (the hub could not be administered any more).
    """
    require_admin(actor, "revoking tokens")
    name = canonical(tx, name)
    live = [r for r in tx.tokens.all() if r["name"] == name]
    if not live:
        raise NotFound(f"no live token named {name!r}")
    admins_here = sum(1 for r in live if r["is_admin"])
    if admins_here and admins_here >= tx.tokens.admin_count():
        raise Conflict(f"revoking {name!r} would leave no admin token; create another admin token first")
    count = tx.tokens.revoke(name, now)
    ended = [] if keep_leases else leases.revoke_session(tx, actor, name, now)
    emit(tx, "token.revoked", now, session_id=actor.session_id, name=name, count=count, released_leases=len(ended))
    return {"name": name, "revoked": count, "released_leases": len(ended), "lease_ids": ended,
            "kept_leases": keep_leases}
