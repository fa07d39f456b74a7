"""Idempotency keys: a retried mutation returns its first response and has no second effect.

Contract §2.5. Scope is the acting session plus the key; the record is
written in the same transaction as the mutation, so either both exist or
neither does. A replay with a different request (method, path or body) is
refused with 422, as the IETF draft "The Idempotency-Key HTTP Header Field"
specifies. Only successful responses are stored: a request that failed had no
effect, so retrying it with the same key simply tries again. Records are kept
``retain_idempotency_hours`` (7 days by default; ``coordhub.core.retention``).

Secrets are never kept (issue 7): a response that carries one is a
:class:`SecretBody`, and what is stored for its replays is the same record
with the secret fields removed and ``<field>_shown: false`` plus a
``message`` saying why — a replay answers the record, never the secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from coordhub.errors import IdempotencyKeyReused, Invalid
from coordhub.headers import IDEMPOTENCY_HEADER
from coordhub.store.tx import Tx

MAX_KEY = 200


class SecretBody(dict[str, Any]):
    """A response body holding secrets in ``fields`` (e.g. a new token), shown once and never stored.

    The live response carries each secret and ``<field>_shown: true``;
    :meth:`at_rest` is what the idempotency table keeps for replays.
    """

    def __init__(self, body: dict[str, Any], fields: tuple[str, ...], replay_message: str) -> None:
        super().__init__(body)
        self.fields = fields
        self.replay_message = replay_message
        for field in fields:
            self[f"{field}_shown"] = True

    def at_rest(self) -> dict[str, Any]:
        """The body without its secrets, marked not shown, with the message a replay carries."""
        kept = {k: v for k, v in self.items() if k not in self.fields}
        return {**kept, **{f"{field}_shown": False for field in self.fields}, "message": self.replay_message}


@dataclass(frozen=True)
class IdempotentRequest:
    """The key a client sent and a fingerprint of the request it came with."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, key: str, method: str, path: str, body: bytes) -> IdempotentRequest:
        """Fingerprint = SHA-256 of method, path and the body; raise ``Invalid`` for an unusable key.

        A JSON body is fingerprinted in canonical form (sorted keys, no
        spaces), so a replay that serialises the same JSON differently (a
        catch-up script, another client) is still recognised as the same request.
        """
        if not key or len(key) > MAX_KEY or not key.isprintable():
            raise Invalid(f"{IDEMPOTENCY_HEADER} must be 1-{MAX_KEY} printable characters", field=IDEMPOTENCY_HEADER)
        digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + _canonical(body)).hexdigest()
        return cls(key, digest)


def _canonical(body: bytes) -> bytes:
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return body


def replay(tx: Tx, scope: str, req: IdempotentRequest) -> tuple[int, Any] | None:
    """The stored ``(status, body)`` of an earlier request with this key, or None if the key is new.

    Raises ``IdempotencyKeyReused`` when the key was used for a different request.
    """
    row = tx.idempotency.get(scope, req.key)
    if row is None:
        return None
    if row["request_hash"] != req.fingerprint:
        raise IdempotencyKeyReused(
            f"{IDEMPOTENCY_HEADER} {req.key!r} was already used for a different request; use a new key",
            key=req.key)
    return int(row["status"]), json.loads(row["body"])


def remember(tx: Tx, scope: str, req: IdempotentRequest, status: int, body: Any, now: float) -> None:
    """Store the first response of a key (a :class:`SecretBody` without its secrets)."""
    if isinstance(body, SecretBody):
        body = body.at_rest()
    tx.idempotency.put({"scope": scope, "key": req.key, "request_hash": req.fingerprint, "status": status,
                        "body": json.dumps(body, separators=(",", ":")), "created_at": now})

