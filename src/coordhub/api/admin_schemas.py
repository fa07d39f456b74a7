"""Request and response bodies of the admin and dashboard endpoints: tokens, health, engage, the dashboard's
sign-in (``coordhub.api.routes.admin`` and ``.web``). Same rules as :mod:`coordhub.api.schemas`."""

from __future__ import annotations

from pydantic import Field

from coordhub.api.schemas import Line, Out, PauseOut, Strict

# ---- engage, tokens, health -------------------------------------------------------

class EngageOut(Out):
    """Result of ``POST /api/coord/engage``."""

    session_id: str
    paused: bool
    was: PauseOut | None


class TokenCreate(Strict):
    """``POST /api/coord/tokens``: ``name`` is the session id the token acts as."""

    name: Line
    admin: bool = False


class TokenOut(Out):
    """A token record; ``token`` appears only in the response that created it.

    A replay of that request (same ``Idempotency-Key``) answers the record
    with ``token_shown: false`` and a ``message``: the token is never stored.
    """

    id: str
    name: str
    admin: bool
    created_at: str
    revoked_at: str | None
    token: str | None = None
    token_shown: bool | None = Field(None, description="On create: true when `token` is in this response, "
                                                       "false on an idempotent replay (the token is not stored).")
    message: str | None = None


class TokenRevokeOut(Out):
    """Result of revoking a name's tokens, and of ending its session's leases."""

    name: str
    revoked: int
    released_leases: int = Field(description="Live leases of the session recorded as revoked (0 with keep_leases).")
    lease_ids: list[str]
    kept_leases: bool


class ListenOut(Out):
    """``/health``'s ``listen``: the state of the hub's LISTEN connection (PostgreSQL)."""

    connected: bool
    since: str | None = Field(description="When it last connected or was lost.")
    reconnects: int = Field(description="Times it came back after being lost.")
    announcements: int = Field(description="Commit announcements received (this hub's own included).")
    ignored: int = Field(description="Notifications on the channel that were not coordhub's, ignored.")
    error: str | None = Field(description="Why it was last lost (null while connected).")


class WriterLinkOut(Out):
    """A serving process's link to the writer process (docs/scaling.md)."""

    connected: bool = Field(description="Whether the writes it makes (sends, leases, presence, reads, acks) go to "
                                        "the writer process now (false: they run on this worker's own writer "
                                        "until it is back).")
    connections: int = Field(description="Connections made to it: 1, plus one after each restart of it.")
    calls: int = Field(description="Answers this worker has had from it (writes it made, or refused).")
    pid: int | None = Field(description="The writer process's process id, as it last said (null before it has).")


class HealthOut(Out):
    """``GET /health``: ``ok``/``connected`` or ``degraded``/``disconnected`` (seed 001)."""

    status: str
    database: str
    backend: str
    durability: str
    version: str
    fd_limit: int | None = None
    max_connections: int | None = None
    auth: bool = Field(description="Whether the hub needs a bearer token (false: a --no-auth hub).")
    listen: ListenOut | None = Field(None, description="This process's channel for other hub processes' commit "
                                     "announcements: PostgreSQL's LISTEN connection, or the worker datagram socket "
                                     "of a SQLite hub run with --workers (docs/scaling.md). While it is not "
                                     "connected the hub follows the log by polling once a second.")
    worker: int | None = Field(None, description="Which worker process answered (1…N) under `coord serve --workers "
                                                 "N`; null for a single-process hub.")
    writer_process: WriterLinkOut | None = Field(None, description="This worker's link to the writer process "
                                                 "under `coord serve --workers N --writer-process`; null "
                                                 "without one.")
    hub_id: str | None = Field(description="This hub's id (one per database; null only if the database has "
                                           "been unreachable since start). Written beside admin.token as hub.id.")
    idempotency_retention_hours: float | None = Field(None, description="Hours the hub remembers an "
                                                      "Idempotency-Key (retain_idempotency_hours; null: forever). "
                                                      "A queued write older than this is not replayed by the "
                                                      "client: a replay could apply it twice.")


# ---- the dashboard's sign-in (issue 13) ------------------------------------------

class WebSignIn(Strict):
    """``POST /api/coord/web/session``: sign a browser in with a token."""

    token: Line = Field(description="Any session's or an admin's token; the page then acts as that session.")


class WebSessionOut(Out):
    """A browser's web session (never the token)."""

    signed_in: bool
    no_auth: bool
    session_id: str | None = None
    admin: bool | None = None
    csrf_token: str | None = Field(None, description="The web session's secret, in the sign-in answer only: send "
                                  "it in `X-CSRF-Token` with every request the cookie authenticates.")
    expires_at: str | None = None
    last_event_id: int | None = Field(None, description="The newest event id now (GET only): follow the stream "
                                      "from here after the first reads.")
    presence_seconds: dict[str, float] | None = Field(None, description="GET, signed in only: the presence tiers, "
                                                      "`{active, idle, stale}` seconds since the last heartbeat "
                                                      "(past `stale`: offline), as the hub derives states.")
