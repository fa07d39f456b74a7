"""Who is calling: bearer tokens, or the body's session in ``--no-auth`` mode.

With auth (the default) every route except ``/health`` needs
``Authorization: Bearer <token>``; the token's session is the actor, and a
request field naming another session is refused with 403 (contract §2.2).

With ``--no-auth`` (seed 001's trusted network) the actor is the session the
request names (``session_id``, ``from_session``, ``created_by``,
``updated_by``, or the ``X-Coord-Session`` header) and every caller may do
admin operations.

Verified tokens are cached for :data:`CACHE_SECONDS`; revoking through this
hub clears the cache at once, so only another hub process sharing the same
PostgreSQL database may honour a revoked token for up to that long.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor, assert_acting_as, validate_acting_name, validate_session_id
from coordhub.errors import Invalid, RateLimited, Unauthorized

CACHE_SECONDS = 5.0
SESSION_HEADER = "X-Coord-Session"

bearer = HTTPBearer(auto_error=False, description="A token from `coord token create NAME`.")


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second on average, bursts of ``burst``.

    In memory and per hub process (a fleet behind several hubs gets the limit
    per process). ``rate <= 0`` disables it.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, monotonic time)

    def check(self, key: str, what: str = "requests") -> None:
        """Spend one request of ``key``; raise ``RateLimited`` (429) with the seconds to wait when there is none.

        ``what`` names the requests in the error message.
        """
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(f"rate limit of {self.rate:g} {what}/s exceeded; retry in {wait} s", wait)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1.0, now)


class Authenticator:
    """Resolves bearer tokens to actors, with a short positive cache, and applies the rate limit."""

    def __init__(self, hub: Hub, *, no_auth: bool, limiter: RateLimiter | None = None) -> None:
        self.hub = hub
        self.no_auth = no_auth
        self.limiter = limiter or RateLimiter(0, 1)
        self._cache: dict[str, tuple[Actor, float]] = {}

    def invalidate(self) -> None:
        """Forget every cached token (after a revoke)."""
        self._cache.clear()

    async def actor(self, token: str, digest: str | None = None) -> Actor:
        """The actor of a token (``digest``: its hash, if known); ``Unauthorized`` when unknown or revoked."""
        digest = digest or tokens.hash_token(token)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        actor = await self.hub.query(lambda tx, now: tokens.authenticate(tx, token))
        if actor is None:
            raise Unauthorized("unknown or revoked token; ask an admin for one (`coord token create NAME`)")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (actor, time.monotonic() + CACHE_SECONDS)
        return actor


@dataclass(frozen=True)
class Caller:
    """The resolved caller of one request.

    ``token_actor`` is None in ``--no-auth`` mode, where :meth:`act` takes the
    identity from the request instead.
    """

    token_actor: Actor | None
    header_session: str | None = None

    def act(self, *claims: tuple[str | None, str]) -> Actor:
        """The actor for a mutation, given the ``(value, field)`` pairs the request names.

        Auth mode: each named value must be the token's session (else 403).
        No-auth mode: the first named value (or the ``X-Coord-Session``
        header) is the actor; a request naming nobody is refused with 422.
        """
        if self.token_actor is not None:
            for claimed, field in claims:
                assert_acting_as(self.token_actor, claimed, field)
            return self.token_actor
        named = [(v, f) for v, f in claims if v is not None]
        if not named and self.header_session is None:
            fields = ", ".join(f for _, f in claims) or "session_id"
            raise Invalid(f"this hub runs with --no-auth: name your session in {fields} "
                          f"or the {SESSION_HEADER} header")
        value, field = named[0] if named else (self.header_session, SESSION_HEADER)
        assert value is not None
        validate_acting_name(value, field, admin=True)
        for other, other_field in named[1:]:
            if other != value:
                raise Invalid(f"{other_field} {other!r} and {field} {value!r} name different sessions")
        return Actor(value, is_admin=True)

    def viewer(self, claimed: str | None, field: str) -> str | None:
        """The session whose view a read shows (inbox owner); None if nobody is named in no-auth mode.

        In auth mode an admin may read any session's view; anyone else only
        their own (403 otherwise).
        """
        if self.token_actor is None:
            if claimed is not None:
                validate_session_id(claimed, field)
            return claimed or self.header_session
        if claimed is not None and not self.token_actor.is_admin:
            assert_acting_as(self.token_actor, claimed, field)
        return claimed or self.token_actor.session_id


async def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    """FastAPI dependency: resolve the caller or raise 401."""
    auth: Authenticator = request.app.state.auth
    if auth.no_auth:
        session = request.headers.get(SESSION_HEADER)
        auth.limiter.check(session or (request.client.host if request.client else "?"))
        return Caller(None, session)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' "
                           "(create one with `coord token create NAME`)")
    digest = tokens.hash_token(credentials.credentials)  # once: the cache key and the rate-limit key
    actor = await auth.actor(credentials.credentials, digest)
    auth.limiter.check(digest)
    return Caller(actor)
