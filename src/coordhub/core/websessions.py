"""Dashboard sign-in: a browser trades a token for a server-side web session held by an HttpOnly cookie.

Issue 13: the page never sees the token after sign-in (not in the page, the
URL or local storage). The browser keeps a random cookie; the hub keeps only
its SHA-256 hash (as for tokens), the token it stands for (revoking that token
ends every web session made with it) and a secret (``csrf_token``) that every
request made with the cookie must carry in a header (see
``coordhub.api.auth``): the hub gives it out once, in the sign-in answer, and
the page keeps it in its origin's storage, which no other port of the host
can read (cookies ignore ports: the cookie alone is no credential). Signing out deletes the row. A web session lasts
:data:`LIFETIME_SECONDS` from sign-in; one token keeps at most
:data:`PER_TOKEN` of them (the oldest go first).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import tokens
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.errors import Unauthorized
from coordhub.store.tx import Tx

LIFETIME_SECONDS = 12 * 3600
PER_TOKEN = 16
COOKIE_NAME = "coord_web"  # the cookie's name on a hub reached without a port in its Host (see cookie_name)
CSRF_HEADER = "X-CSRF-Token"
MAX_COOKIE_CHARS = 128  # a cookie value longer than ours is refused unhashed


def cookie_name(host: str | None) -> str:
    """The web-session cookie's name on a hub reached at ``host`` (the request's ``Host`` header):
    ``coord_web_PORT`` when it names a port (``127.0.0.1:8001``, ``[::1]:8001``), else :data:`COOKIE_NAME`.

    Browsers keep cookies by host name, not port (RFC 6265 §8.5), so under one name two hubs on one host (a
    second hub for a test fleet, a tunnel's) replaced each other's cookie: signing in to one signed the browser
    out of the other. The name follows the address the browser used, so every request of one page (the same
    origin) finds its own.
    """
    if host:
        _, colon, port = host.rpartition(":")
        if colon and port.isascii() and port.isdigit() and len(port) <= 5:
            return f"{COOKIE_NAME}_{int(port)}"
    return COOKIE_NAME


@dataclass(frozen=True)
class WebSession:
    """A live web session: who it acts as, its CSRF token, its token's hash (the rate-limit key), expiry (epoch s)."""

    actor: Actor
    csrf_token: str
    token_hash: str
    expires_at: float

    def render(self, *, secret: bool = False) -> dict[str, Any]:
        """The web session as JSON: identity and expiry, never the token; its secret (``csrf_token``) only when
        ``secret`` (the sign-in answer, the one place the hub gives it out)."""
        out: dict[str, Any] = {"signed_in": True, "session_id": self.actor.session_id, "admin": self.actor.is_admin,
                               "expires_at": isoformat(self.expires_at), "no_auth": False}
        if secret:
            out["csrf_token"] = self.csrf_token
        return out


def key(cookie: str) -> str:
    """The public key of a web session: named by its ``web.signed_out`` event, so that every hub process ends the
    event streams its cookie opened. Derived from the cookie's hash, from which neither the cookie nor the stored
    hash can be recovered (admins read these events)."""
    return _key_of_hash(tokens.hash_token(cookie))


def _key_of_hash(cookie_hash: str) -> str:
    return hashlib.sha256(b"coordhub.web-session:" + cookie_hash.encode()).hexdigest()[:32]


def start(tx: Tx, token: str, now: float) -> tuple[str, WebSession]:
    """Sign in with ``token``: return the new cookie value (shown once) and its web session.

    Raises ``Unauthorized`` when the token is unknown or revoked. Expired web
    sessions are deleted on the way, and all but the newest
    ``PER_TOKEN - 1`` of this token's, so a loop of sign-ins holds no more rows;
    each of those is signed out as :func:`end` does (its ``web.signed_out``
    ends the event streams its cookie opened, in every hub process).
    """
    row = tx.tokens.by_hash(tokens.hash_token(token))
    if row is None:
        raise Unauthorized(tokens.REVOKED)
    for cookie_hash in tx.web_sessions.prune(row["id"], PER_TOKEN - 1, now):
        emit(tx, "web.signed_out", now, session_id=row["name"], web=_key_of_hash(cookie_hash))
    cookie = tokens.new_secret(tx)  # tagged, like a token: a flood of bad cookies does not lock it out
    session = WebSession(Actor(row["name"], bool(row["is_admin"]), token_epoch=int(row["token_epoch"])),
                         secrets.token_urlsafe(32), row["token_hash"], now + LIFETIME_SECONDS)
    tx.web_sessions.add({"cookie_hash": tokens.hash_token(cookie), "token_id": row["id"],
                         "csrf_token": session.csrf_token, "created_at": now, "expires_at": session.expires_at})
    emit(tx, "web.signed_in", now, session_id=row["name"], subject_id=row["id"])
    return cookie, session


def resolve(tx: Tx, cookie: str, now: float) -> WebSession | None:
    """The live web session of a cookie value, or None (unknown, signed out, expired, token revoked, malformed)."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return None
    row = tx.web_sessions.live(tokens.hash_token(cookie), now)
    if row is None:
        return None
    # Its writes check the token it was signed in with, as the token's own would (Actor.token_epoch).
    return WebSession(Actor(row["name"], bool(row["is_admin"]), token_epoch=int(row["token_epoch"])),
                      row["csrf_token"], row["token_hash"], float(row["expires_at"]))


def end(tx: Tx, cookie: str, session_id: str, now: float) -> dict[str, bool]:
    """Sign out: delete the web session of ``cookie`` → ``{"signed_out": bool}`` (False: it had already ended)."""
    gone = tx.web_sessions.remove(tokens.hash_token(cookie)) > 0
    if gone:
        emit(tx, "web.signed_out", now, session_id=session_id, web=key(cookie))
    return {"signed_out": gone}
