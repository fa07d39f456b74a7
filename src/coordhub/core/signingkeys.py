"""Signing keys: the OpenPGP public keys a session registers, against which its turns' signatures are checked.

A key belongs to one session (:class:`KeyTaken`) and a session holds at most
:data:`MAX_KEYS_PER_SESSION`. Seed 004 checked a signature against a keyring
every receiver kept; here the hub checks it once, at send, against the
author's registered keys (:func:`armored_keys`, :mod:`coordhub.core.conversations`).

Registering takes proof of possession (:func:`check_proof`): a detached
signature, by the key, over a statement naming this hub, the registering
session and the key (:func:`proof_statement`). Public keys are public, so
without it anyone could register another's key first: the owner could then
not register it (a key belongs to one session), and turns the owner signed
would verify as the squatter's when the squatter passed them on.
"""

from __future__ import annotations

from typing import Any

from coordhub import openpgp
from coordhub.clock import isoformat
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.errors import Conflict, Invalid, NotFound
from coordhub.store.base import Row
from coordhub.store.tx import Tx

MAX_KEYS_PER_SESSION = 16


class KeyTaken(Conflict):
    """A public key another session already registered (409)."""

    code = "key_taken"


def proof_statement(hub_id: str, session_id: str, fingerprint: str) -> bytes:
    """The text a key's owner signs to register it: this hub, the session that registers it, its fingerprint
    (upper-case hex), one per line."""
    return (f"coordhub key registration\nhub: {hub_id}\nsession: {session_id}\nfingerprint: {fingerprint}\n"
            .encode())


def check_proof(hub_id: str, session_id: str, armored: str, fingerprint: str, proof: str) -> None:
    """Raise :class:`~coordhub.errors.Invalid` (field ``proof``, the ``statement`` to sign in its details) unless
    ``proof`` is a valid detached signature by the key ``armored`` (whose primary fingerprint is ``fingerprint``)
    over :func:`proof_statement`. Blocking: runs ``gpg``."""
    statement = proof_statement(hub_id, session_id, fingerprint)
    verdict = openpgp.verify(statement, proof, [armored]) if proof.strip() else None
    if verdict is None or not verdict.valid or verdict.fingerprint != fingerprint:
        why = "no proof" if verdict is None else verdict.reason or "signed by another key"
        raise Invalid(f"registering key {fingerprint} takes proof that you hold it: a detached armored signature "
                      f"by it over the statement in this error's details (`gpg --detach-sign --armor`; "
                      f"`coord conv keys add` makes it) ({why})", field="proof", statement=statement.decode())


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
