"""Who is calling: bearer tokens, or the body's session in ``--no-auth`` mode.

With auth (the default) every route except ``/health`` needs
``Authorization: Bearer <token>``; the token's session is the actor, and a
request field naming another session is refused with 403 (contract §2.2).
So is an ``X-Coord-Session`` header naming another session than the token's
(or the dashboard cookie's): 403 ``session_mismatch``, from
:func:`check_named_session`, which every path that authenticates a token
applies (:func:`caller`, and with it the hot path, event streams and
long-polls; the ``/mcp`` gate). The header naming the token's own session
(in any case) is accepted and changes nothing. No token acts for another
session, the admin's included (an admin reads others' views through query
fields, never by this header), so the rule has no exception.

With ``--no-auth`` (seed 001's trusted network) the actor is the session the
request names (``session_id``, ``from_session``, ``created_by``,
``updated_by``, or the ``X-Coord-Session`` header) and every caller may do
admin operations. Its session ids are refused when malformed (``name\n``
included) or reserved (the hub's own names, broadcast words).

Every session id entering here — the actor named by a ``--no-auth`` request,
a viewer, a filter — is replaced by the stored spelling of that session
(ids compare case-insensitively; see ``core/identity.py``). Stored spellings
never change, so a known one is cached for the life of the process.

Verified tokens are cached for :data:`CACHE_SECONDS`. Every ``token.revoked``
event clears the cache as the hub's event bus publishes it: at once for a
revocation through this hub, and within milliseconds for one through another
hub process on the same PostgreSQL database (the commit announcement,
:mod:`coordhub.store.announce`; while that is lost, within the one-second
fallback poll). A lookup that raced a revocation is not cached.

The dashboard's browsers authenticate with the web-session cookie instead
(``coordhub.core.websessions``), used only when a request carries no
``Authorization`` header, and never by the cookie alone: every request the
cookie authenticates, reads and the event stream included, must also carry
the web session's secret in ``X-CSRF-Token`` (401 otherwise, counted as a
failed authentication of the address). The hub gives that secret out once,
in the sign-in answer; the page keeps it in its origin's ``localStorage``.
Cookies ignore ports, so any server on the hub's host (an agent's dev server
on another port) receives the cookie when the browser visits it; origin-
scoped storage is per scheme, host and port, so such a server never learns
the secret. A request that can change something (any method but GET, HEAD,
OPTIONS) must carry an ``Origin`` besides (which
:class:`~coordhub.api.hosts.BrowserGuard` has already matched to the
``Host``; else 403), and the cookie is ``SameSite=Strict``, so a page on
another site never sends it at all.
Web sessions are cached like tokens, and forgotten with them on every
``token.revoked``, and on every ``web.signed_out`` (any hub process's).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Scope

from coordhub.api.headers import header
from coordhub.core import tokens, websessions
from coordhub.core.automata import Meter
from coordhub.core.hub import Hub
from coordhub.core.identity import (
    Actor,
    assert_acting_as,
    fold,
    same_session,
    validate_acting_name,
    validate_session_id,
)
from coordhub.errors import Forbidden, Invalid, RateLimited, SessionMismatch, Unauthorized
from coordhub.headers import HEARTBEAT_HEADER, SESSION_HEADER
from coordhub.jsonlog import SESSION_KEY
from coordhub.store.base import Row

CACHE_SECONDS = 5.0
# The extra charge of a request's overlap work (Caller.charge_work): its steps are known only once it ran.
FREE_STEPS = 10_000  # steps a request spends for its one request of the rate limit (a literal claim: a handful)
STEPS_PER_REQUEST = 10_000  # each whole 10,000 steps beyond them costs one request more
MAX_EXTRA = 20  # requests one request is ever charged extra (REQUEST_BUDGET plus its last search's overshoot: 11)
MAX_BUCKETS = 100_000  # rate-limit buckets kept in memory
INNER_REQUEST = "coordhub.inner_request"  # scope key: a request the hub makes to itself (only the app can set it)
FAILURES_PER_SECOND = 2.0  # failed authentications per client address, on average
FAILURE_BURST = 30
MISSING_TOKEN = ("missing bearer token: send 'Authorization: Bearer <token>' "
                 "(create one with `coord token create NAME`)")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNED_OUT = "the dashboard's web session ended (signed out, expired or its token revoked): sign in again"
WRONG_SECRET = (f"missing or wrong {websessions.CSRF_HEADER}: a request made with the dashboard's cookie must carry "
                "its web session's secret (the csrf_token of the sign-in answer); the cookie alone authenticates "
                "nothing")

bearer = HTTPBearer(auto_error=False, description="A token from `coord token create NAME`.")


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second on average, bursts of ``burst``.

    In memory, on the request path. On a database shared by several hub
    processes (PostgreSQL) the hub also calls :meth:`share`, then a few times a
    second charges what each key spent to one shared bucket
    (:meth:`take_spent`, :mod:`coordhub.store.ratebuckets`) and adopts the
    shared level (:meth:`settle`): a client spreading requests over several
    hubs gets one budget (docs/scaling.md, "Rate limits across hubs").
    ``rate <= 0`` disables it.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, monotonic time)
        self.refusals = 0  # requests refused so far (metrics)
        self._spent: dict[str, int] | None = None  # when shared: requests let through since the last charge

    def check(self, key: str, what: str = "requests") -> None:
        """Spend one request of ``key``; raise ``RateLimited`` (429) with the seconds to wait when there is none.

        ``what`` names the requests in the error message.
        """
        if self.rate <= 0:
            return
        tokens, now = self._level(key)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise self._refusal(tokens, what)
        if len(self._buckets) > MAX_BUCKETS:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1.0, now)
        if self._spent is not None:
            self._spent[key] = self._spent.get(key, 0) + 1

    def charge(self, key: str, units: int) -> None:
        """Spend ``units`` more requests of ``key`` after the fact (a request's extra cost); never raises.

        The bucket may go into debt (below zero): ``key``'s next requests are
        refused until it refills past one. Shared like every other spending.
        """
        if self.rate <= 0 or units <= 0:
            return
        tokens, now = self._level(key)
        self._buckets[key] = (tokens - units, now)
        if self._spent is not None:
            self._spent[key] = self._spent.get(key, 0) + units

    def _forget_full(self, now: float) -> None:
        """Make room: keep only the buckets with less than one request left, so keys that are being refused
        stay refused however many new keys arrive (a forgotten key starts again with a full bucket); only when
        most buckets are spent, forget them all."""
        self._buckets = {k: (t, then) for k, (t, then) in self._buckets.items()
                         if t + (now - then) * self.rate < 1.0}
        if len(self._buckets) > MAX_BUCKETS * 3 // 4:
            self._buckets.clear()

    def share(self) -> None:
        """Start counting what each key spends, for :meth:`take_spent`."""
        self._spent = {}

    def take_spent(self) -> dict[str, int]:
        """What each key spent since the last call (and start counting afresh)."""
        spent, self._spent = self._spent or {}, {}
        return spent

    def settle(self, levels: dict[str, float]) -> None:
        """Adopt the shared buckets' levels (key → tokens left, negative while in debt) after a charge.

        What a key spent here while the charge was on its way is taken off
        again (it is charged next time). A debt deeper than the shared level,
        which owes at most one burst, stays: overlap work charged here
        (:meth:`charge`).
        """
        now = time.monotonic()
        pending = self._spent or {}
        for key, level in levels.items():
            # The shared buckets owe at most one burst; a debt this process charged for overlap work (charge) may be
            # deeper, and adopting the shared level would forgive it within one share round (review, 2026-12-06).
            local, _ = self._level(key)
            shared = min(float(self.burst), level - pending.get(key, 0))
            self._buckets[key] = (min(shared, local) if local < 0 else shared, now)

    def refuse_if_spent(self, key: str, what: str) -> None:
        """Raise ``RateLimited`` when ``key`` has nothing left, without spending anything."""
        if self.rate > 0:
            tokens, _ = self._level(key)
            if tokens < 1.0:
                raise self._refusal(tokens, what)

    def _level(self, key: str) -> tuple[float, float]:
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - then) * self.rate), now

    def _refusal(self, tokens: float, what: str) -> RateLimited:
        self.refusals += 1
        wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        return RateLimited(f"rate limit of {self.rate:g} {what}/s exceeded; retry in {wait} s", wait)


class Authenticator:
    """Resolves bearer tokens to actors, with a short positive cache, and applies the rate limits.

    Two limits: ``limiter`` per token (every authenticated request, REST and
    ``/mcp``), and :data:`FAILURES_PER_SECOND` failed authentications per
    client address (bursts of :data:`FAILURE_BURST`). The second is checked
    before a token missing from the cache is looked up, so a flood of unknown
    tokens costs one hash each and no store reads once its address is spent;
    a token already cached is never held up by its address, nor is one whose
    tag checks (minted by a hub of this database: :mod:`coordhub.core.tokens`),
    nor an untagged one (minted before tags) that was live when this process
    first found an address spent (each is looked up, and the store still
    decides): agents on one machine share its address, and a flood of bad
    tokens from there must not lock them out, nor the admin's ``coord halt``.
    A tagged token found revoked, or a tagged dashboard cookie found signed
    out, waits for its address like any guess.
    """

    def __init__(self, hub: Hub, *, no_auth: bool, limiter: RateLimiter | None = None) -> None:
        self.hub = hub
        self.no_auth = no_auth
        self.limiter = limiter or RateLimiter(0, 1)
        self.failures = RateLimiter(FAILURES_PER_SECOND, FAILURE_BURST)
        self._cache: dict[str, tuple[Actor, float]] = {}
        # token -> (actor, until, digest): the same cache keyed by the token as sent, so a hit costs no hash
        self._known: dict[str, tuple[Actor, float, str]] = {}
        self._generation = 0  # bumped by every invalidation: a lookup that straddles one is not cached
        self._tag_key: bytes | None = None  # the database's token tag key, once read
        self._tag_key_asked = -1.0
        self._dead: set[str] = set()  # hashes of tagged tokens found revoked, and of tagged cookies signed out
        self._live: set[str] | None = None  # hashes of the tokens live when an address was first found spent
        self._web: dict[str, tuple[websessions.WebSession, float]] = {}  # cookie hash -> (web session, until)
        self._spellings: dict[str, str] = {}  # folded id -> stored spelling (never changes once stored)

    def invalidate(self) -> None:
        """Forget every cached token and web session (after a revoke)."""
        self._cache.clear()
        self._known.clear()
        self._web.clear()
        self._generation += 1

    def revocations(self, rows: list[Row]) -> None:
        """Event-bus listener: forget every cached token when ``rows`` hold a ``token.revoked`` (any hub's)."""
        if any(r["kind"] == "token.revoked" for r in rows):
            self.invalidate()
        elif any(r["kind"] == "web.signed_out" for r in rows):  # a sign-out through another hub process
            self._web.clear()

    def forget_web(self, cookie: str) -> None:
        """Forget the cached web session of ``cookie`` (after it was signed out)."""
        self._web.pop(tokens.hash_token(cookie), None)

    async def web_session(self, cookie: str) -> websessions.WebSession | None:
        """The live web session of a cookie value (cached for :data:`CACHE_SECONDS`), or None."""
        digest = tokens.hash_token(cookie)
        hit = self._web.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        generation = self._generation
        found = await self.hub.query(lambda tx, now: websessions.resolve(tx, cookie, now))
        if found is None:
            self._web.pop(digest, None)
            return None
        if generation != self._generation:  # a revocation landed while we read: answer, but do not remember
            return found
        if len(self._web) > 10_000:
            self._web.clear()
        self._web[digest] = (found, time.monotonic() + CACHE_SECONDS)
        return found

    async def web_check(self, cookie: str, secret: str | None, address: str) -> websessions.WebSession:
        """The live web session of a cookie and the secret sent with it (``X-CSRF-Token``).

        Raises ``Unauthorized`` when the web session is not live (signed out,
        expired, its token revoked) or ``secret`` is missing or not its own:
        the cookie alone authenticates nothing (any server on the hub's host
        receives it). Each failure counts against ``address``; ``RateLimited``
        once the address has none left.
        """
        dead = "web:" + tokens.hash_token(cookie)
        tag_ok = dead not in self._dead and await self._tagged(cookie)
        if not tag_ok:
            self.failures.refuse_if_spent(address, "failed authentications")
        session = await self.web_session(cookie)
        if session is None:
            if tag_ok:  # signed out or expired since: a flood of it waits for its address like any guess
                self._bury(dead)
            raise self.failed(address, SIGNED_OUT)
        if not secrets.compare_digest((secret or "").encode("utf-8", "replace"), session.csrf_token.encode()):
            raise self.failed(address, WRONG_SECRET)
        return session

    async def web_actor(self, cookie: str, method: str, headers: Any, address: str) -> tuple[Actor, str]:
        """The actor of a dashboard request authenticated by its web-session cookie, rate limited per token, and
        its rate-limit key (the token's hash).

        Every request must carry the web session's secret in ``X-CSRF-Token``
        (:meth:`web_check`: 401 otherwise), and a state-changing ``method``
        an ``Origin`` header too (403 otherwise).
        """
        if method not in SAFE_METHODS and headers.get("origin") is None:
            raise Forbidden("a request made with the dashboard's cookie must carry the Origin header (a browser "
                            "sends it); send a bearer token from any other client")
        session = await self.web_check(cookie, headers.get(websessions.CSRF_HEADER), address)
        self.limiter.check(session.token_hash)
        return session.actor, session.token_hash

    async def actor(self, token: str, digest: str | None = None, address: str | None = None) -> Actor:
        """The actor of a token (``digest``: its hash, if known); ``Unauthorized`` when unknown or revoked.

        With ``address`` (the client's), an uncached token is looked up only
        while that address has failed authentications left (else
        ``RateLimited``), and a failure spends one.
        """
        digest = digest or tokens.hash_token(token)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        tag_ok = digest not in self._dead and await self._tagged(token)
        if address is not None and not tag_ok:
            await self._may_look_up(digest, address)
        generation = self._generation
        actor = await self.hub.query(lambda tx, now: tokens.authenticate(tx, token))
        if actor is None:
            if tag_ok:  # minted here and revoked since: a flood of it waits for its address like any guess
                self._bury(digest)
            raise self.failed(address, tokens.REVOKED, digest)
        if generation != self._generation:  # a revocation landed while we read: answer, but do not remember
            return actor
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (actor, time.monotonic() + CACHE_SECONDS)
        return actor

    async def _tagged(self, token: str) -> bool:
        """Whether the token's tag checks under the database's tag key (:func:`coordhub.core.tokens.tagged`); the
        key is read once (and at most once a second while the database has none)."""
        if "." not in token:
            return False
        if self._tag_key is None:
            if time.monotonic() < self._tag_key_asked + 1.0:
                return False
            self._tag_key_asked = time.monotonic()
            value = await self.hub.query(lambda tx, now: tx.meta.get(tokens.TAG_KEY))
            if value is None:
                return False
            self._tag_key = bytes.fromhex(value)
        return tokens.tagged(token, self._tag_key)

    async def _may_look_up(self, credential: str, address: str) -> None:
        """``RateLimited`` when ``address`` has no failed authentications left, unless ``credential`` (a token's
        hash) is of a token live when this process first found an address spent (:meth:`_untagged`: tokens
        minted before tags, the admin's among them, survive a restart)."""
        try:
            self.failures.refuse_if_spent(address, "failed authentications")
        except RateLimited:
            if credential not in await self._untagged():
                raise

    async def _untagged(self) -> set[str]:
        """The hashes of the tokens live when first asked (read once: every token minted since carries a tag,
        so no untagged one is added later; a revoked one leaves on its failed lookup)."""
        if self._live is None:
            self._live = set(await self.hub.query(lambda tx, now: tx.tokens.live_hashes()))
        return self._live

    def _bury(self, credential: str) -> None:
        """Remember a tagged credential found dead (revoked, signed out): its tag no longer lets it past."""
        if len(self._dead) > MAX_BUCKETS:
            self._dead.clear()
        self._dead.add(credential)

    def failed(self, address: str | None, message: str, credential: str | None = None) -> Unauthorized:
        """Count a failed authentication against ``address`` (if known), no longer letting ``credential`` (a
        token's hash) past a spent address; the 401 to raise."""
        if credential is not None and self._live is not None:
            self._live.discard(credential)
        if address is not None:
            with contextlib.suppress(RateLimited):
                self.failures.check(address)
        return Unauthorized(message)

    async def authenticate(self, authorization: str | None, address: str, *, inner: bool = False) -> Actor:
        """The actor of an ``Authorization`` header value, rate limited (per token unless ``inner``).

        ``inner`` marks a request the hub makes to itself on behalf of one
        already counted (an ``/mcp`` tool call's REST request). Raises
        ``Unauthorized`` (missing, malformed, unknown, revoked) or ``RateLimited``.
        """
        actor, _ = await self.authenticate_keyed(authorization, address, inner=inner)
        return actor

    async def authenticate_keyed(self, authorization: str | None, address: str, *,
                                 inner: bool = False) -> tuple[Actor, str]:
        """:meth:`authenticate`, and the token's rate-limit key (its hash), to charge the request's extra cost to
        (:meth:`RateLimiter.charge`)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(MISSING_TOKEN)  # costs no hash and no lookup: not counted against the address
        hit = self._known.get(token)
        if hit is not None and hit[1] > time.monotonic():  # a token seen lately: no hash (issue 15, hot path)
            actor, _, digest = hit
        else:
            digest = tokens.hash_token(token)  # once: the cache key and the rate-limit key
            actor = await self.actor(token, digest, address)
            cached = self._cache.get(digest)
            if cached is not None and cached[0] is actor:  # remembered, until the same moment as by its digest
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[token] = (actor, cached[1], digest)
        if not inner:
            self.limiter.check(digest)
        return actor, digest


    async def spelling(self, name: str) -> str:
        """The stored spelling of session id ``name``, or ``name`` itself when the hub has never met that session."""
        key = fold(name)
        hit = self._spellings.get(key)
        if hit is not None:
            return hit
        row = await self.hub.query(lambda tx, now: tx.sessions.by_key(name))
        if row is None:
            return name
        if len(self._spellings) > 100_000:
            self._spellings.clear()
        self._spellings[key] = str(row["session_id"])
        return self._spellings[key]


@dataclass(frozen=True)
class Caller:
    """The resolved caller of one request.

    ``token_actor`` is None in ``--no-auth`` mode, where :meth:`act` takes the
    identity from the request instead. ``auth`` resolves spellings.
    ``rate_key``: the rate-limit bucket the request counts against (the
    token's hash; in ``--no-auth`` mode the session or the address), which
    :meth:`charge_work` charges; None charges nothing.
    """

    token_actor: Actor | None
    header_session: str | None = None
    auth: Authenticator | None = None
    rate_key: str | None = None

    def charge_work(self, meter: Meter) -> None:
        """Charge the request's overlap work to its rate-limit bucket: one request more per
        :data:`STEPS_PER_REQUEST` whole steps past the first :data:`FREE_STEPS` (issue 8: a request spending
        the whole :data:`~coordhub.core.automata.REQUEST_BUDGET` costs 10 requests, a literal claim 1)."""
        extra = (meter.steps - FREE_STEPS) // STEPS_PER_REQUEST  # negative (nothing) below FREE_STEPS
        if extra > 0 and self.auth is not None and self.rate_key is not None:
            self.auth.limiter.charge(self.rate_key, min(extra, MAX_EXTRA))

    @property
    def logged_session(self) -> str | None:
        """The session the request's JSON log lines name (:data:`SESSION_KEY`): the token's, or the header's."""
        return self.token_actor.session_id if self.token_actor is not None else self.header_session

    async def _spelling(self, name: str) -> str:
        return await self.auth.spelling(name) if self.auth is not None else name

    async def session(self, name: str | None) -> str | None:
        """A session id the request names as a filter or target, in its stored spelling (None stays None)."""
        return await self._spelling(name) if name else name

    async def act(self, *claims: tuple[str | None, str]) -> Actor:
        """The actor for a mutation, given the ``(value, field)`` pairs the request names.

        Auth mode: each named value must be the token's session (else 403).
        No-auth mode: the first named value (or the ``X-Coord-Session``
        header), in its stored spelling, is the actor; a request naming nobody
        is refused with 422. Names compare case-insensitively.
        """
        if self.token_actor is not None:
            for claimed, field in claims:
                assert_acting_as(self.token_actor, claimed, field)
            return self.token_actor
        named = [(v, f) for v, f in claims if v is not None]
        if not named and self.header_session is None:
            fields = ", ".join(dict.fromkeys(f for _, f in claims)) or "session_id"  # session_id: body and query
            raise Invalid(f"this hub runs with --no-auth: name your session in {fields} "
                          f"or the {SESSION_HEADER} header")
        value, field = named[0] if named else (self.header_session, SESSION_HEADER)
        assert value is not None
        validate_acting_name(value, field, admin=True)
        for other, other_field in named[1:]:
            if not same_session(other, value):
                raise Invalid(f"{other_field} {other!r} and {field} {value!r} name different sessions")
        return Actor(await self._spelling(value), is_admin=True)

    def names_nobody(self, *claims: tuple[str | None, str]) -> bool:
        """Whether this is a ``--no-auth`` request that names no session: no token, no ``X-Coord-Session`` header
        and none of the ``(value, field)`` ``claims`` given. :meth:`act` refuses such a request (422); a route
        whose record says who acts (seed 001's bare calls) asks this first and names that session instead."""
        return self.token_actor is None and self.header_session is None and all(v is None for v, _ in claims)

    async def viewer(self, claimed: str | None, field: str) -> str | None:
        """The session whose view a read shows (inbox owner), in its stored spelling; None if no-auth names nobody.

        In auth mode an admin may read any session's view; anyone else only
        their own (403 otherwise). A name that is no session id is ``Invalid`` (422), as for anyone.
        """
        if self.token_actor is None:
            if claimed is not None:
                validate_session_id(claimed, field)
            return await self.session(claimed or self.header_session)
        if claimed is None or same_session(claimed, self.token_actor.session_id):
            return self.token_actor.session_id
        if not self.token_actor.is_admin:
            assert_acting_as(self.token_actor, claimed, field)
        # an admin reads any session's view, but only a session's: ALL_SESSIONS or 300 characters is no inbox (review)
        return await self._spelling(validate_session_id(claimed, field))


async def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    """FastAPI dependency: resolve the caller or raise 401 (429 when rate limited)."""
    auth: Authenticator = request.app.state.auth
    address = client_address(request.scope)
    inner = bool(request.scope.get(INNER_REQUEST))
    if auth.no_auth:
        session = header(request.scope, SESSION_HEADER)
        who = Caller(None, session, auth, session or address)
        request.scope[SESSION_KEY] = who.logged_session
        if not inner:
            auth.limiter.check(session or address)
        if session and header(request.scope, HEARTBEAT_HEADER):
            await request.app.state.heartbeats.beat(Actor(validate_session_id(session, SESSION_HEADER)))
        return who
    authorization = header(request.scope, "authorization")
    # the cookie is parsed only when there is no Authorization header: the only case it is used
    cookie = web_cookie(request) if authorization is None and not inner else None
    if cookie is not None:
        actor, key = await auth.web_actor(cookie, request.method, request.headers, address)
    else:
        actor, key = await auth.authenticate_keyed(authorization, address, inner=inner)
    check_named_session(request.scope, actor)
    who = Caller(actor, None, auth, key)
    request.scope[SESSION_KEY] = who.logged_session  # JSON log lines name it (coordhub.jsonlog)
    if header(request.scope, HEARTBEAT_HEADER):
        await request.app.state.heartbeats.beat(actor)
    return who


def check_named_session(scope: Scope, actor: Actor) -> None:
    """Refuse a request authenticated as ``actor`` (by a token or the dashboard's cookie) whose
    ``X-Coord-Session`` header names another session: :class:`~coordhub.errors.SessionMismatch` (403
    ``session_mismatch``, details ``session`` and ``acting_as``).

    The one rule for every path that authenticates (:func:`caller`, which the
    hot path, event streams and long-polls use too, and the ``/mcp`` gate).
    Before it the header was ignored next to a token, so a stale
    ``COORD_TOKEN`` beside an identity naming another session acted as the
    token's session without a word. Absent or empty, the header passes; naming
    the token's own session in any case (ids compare folded,
    :func:`~coordhub.core.identity.same_session`), it passes and changes
    nothing. No token kind acts for several sessions (admins included: see
    :meth:`Caller.act`), so nothing is exempt. Contract §2.2: identity comes
    from the credential, and a request naming another session is refused.
    """
    named = header(scope, SESSION_HEADER)
    if named and not same_session(named, actor.session_id):
        raise SessionMismatch(
            f"{SESSION_HEADER} names session {named!r} but this token acts as {actor.session_id!r}; refused rather "
            f"than done as {actor.session_id!r}. Use {named!r}'s own token (a stale COORD_TOKEN, --token or "
            f"identity.json \"token\" of {actor.session_id!r} is likely), or stop naming {named!r} (--session, "
            "COORD_SESSION, identity.json \"session\")",
            field=SESSION_HEADER, session=named, acting_as=actor.session_id)


def web_cookie_name(request: Request) -> str:
    """The web-session cookie's name on the ``Host`` this request reached (:func:`websessions.cookie_name`)."""
    return websessions.cookie_name(request.headers.get("host"))


def web_cookie(request: Request) -> str | None:
    """The request's web-session cookie (named by :func:`web_cookie_name`), or None."""
    return request.cookies.get(web_cookie_name(request))


def client_address(scope: Scope) -> str:
    """The client's IP address as the server saw it ("?" when unknown)."""
    client = scope.get("client")
    return str(client[0]) if client else "?"
