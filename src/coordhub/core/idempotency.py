"""Idempotency keys: a retried mutation returns its first response and has no second effect.

Contract §2.5. Scope is the acting session plus the key; the record is
written in the same transaction as the mutation, so either both exist or
neither does. A replay with a different request (method, path or body) is
refused with 422, as the IETF draft "The Idempotency-Key HTTP Header Field"
specifies. Only successful responses are stored: a request that failed had no
effect, so retrying it with the same key simply tries again. Records are kept
at least :data:`RETENTION_SECONDS`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from coordhub.errors import IdempotencyKeyReused, Invalid
from coordhub.store.tx import Tx

RETENTION_SECONDS = 7 * 24 * 3600.0
MAX_KEY = 200


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
            raise Invalid(f"Idempotency-Key must be 1-{MAX_KEY} printable characters", field="Idempotency-Key")
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
            f"Idempotency-Key {req.key!r} was already used for a different request; use a new key",
            key=req.key)
    return int(row["status"]), json.loads(row["body"])


def remember(tx: Tx, scope: str, req: IdempotentRequest, status: int, body: Any, now: float) -> None:
    """Store the first response of a key."""
    tx.idempotency.put({"scope": scope, "key": req.key, "request_hash": req.fingerprint, "status": status,
                        "body": json.dumps(body, separators=(",", ":")), "created_at": now})


def purge(tx: Tx, now: float) -> int:
    """Forget records older than the retention period; return how many."""
    return tx.idempotency.purge(now - RETENTION_SECONDS)
