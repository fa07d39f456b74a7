"""Seed 002's Python API on the hub: ``get_coordination_client(instance_id=…)``, ``MessageType`` and friends.

A codebase written against seed 002's ``src.infrastructure.coordination``
changes one import::

    # before: from src.infrastructure.coordination import get_coordination_client, MessageType, MessageQuery
    from coordhub.client.seed002 import get_coordination_client, MessageType, MessageQuery

    client = await get_coordination_client(instance_id="backend")
    await client.publish_message(msg_type=MessageType.READY_FOR_REVIEW, subject="feature-branch",
                                 description="Ready for review", to_instance="orchestrator")

The client is async and a thin typed layer over
:class:`~coordhub.client.aio.AsyncCoordClient`. It offers the calls seed
002's MCP tools expose (``publish_message``, ``check_messages``,
``ack_message``, ``get_presence``, ``get_notifications``,
``register_presence``, ``deregister_presence``, ``heartbeat``) and, for code
that used the seed's client, its method names (``get_messages``,
``get_message``, ``acknowledge_message``, ``register_instance``,
``unregister_instance``, ``pop_notifications``, ``health_check``,
``get_stats``, ``set_correlation_id`` …) and its package's other names
(``CoordinationStats``, ``generate_message_id``,
``get_coordination_client_context``, ``CoordinationConfig`` and
``get_coordination_config``), ``subscribe_notifications`` (on the hub's event
stream) and the client's constructor (``CoordinationClient(redis_client,
config, instance_id)``: the Redis client is not used). Not kept, having no
equivalent on the hub: ``queue_notification`` (the hub queues them) and the
``redis`` property (it says so).

What the hub changes, on purpose:

* **Identity comes from the credential.** The hub, the token and the
  session name are resolved as for the CLI (``COORD_URL``/``COORD_TOKEN``,
  identity.json; the session name from ``instance_id``, else
  ``COORD_SESSION`` …, else ``CLAUDE_INSTANCE_ID``). With a token,
  ``instance_id`` must be that token's session (else
  :class:`CoordinationError`); without one it is the identity only on a
  ``--no-auth`` hub, and refused on a hub that needs tokens. Arguments that
  named the acting instance (``from_instance``, ``ack_by``, ``instance_id``
  of presence calls) must name this session.
* **Writes never block work** (seed 001's softfail). A publish or an ack
  that cannot reach the hub (network error, timeout, 5xx; a 503 with
  ``Retry-After`` is first waited out once and the write sent again, as
  :class:`~coordhub.client.client.CoordClient` does) is appended to
  the project's softfail queue with its idempotency key and returns with
  ``queued=True`` (a queued publish has no id yet); the next call that
  reaches the hub, or :meth:`CoordinationClient.sync`, sends it first, and
  the key makes a replay harmless. Reads raise :class:`CoordinationError`.
* **An answer no hub gives is an error, never a traceback.** Every answer
  is checked for the fields this API reads and the JSON types a hub sends
  for them (a hostile listener, a proxy's page or a broken hub may answer
  anything); one of another shape raises the call's error type
  (:class:`PublishError` for a publish …) with code ``bad_response``, the
  client's code for an answer it cannot read, and status 0. A write so
  answered is not queued: the hub answered, and may have made it.
* **Ack state is per recipient**, including for broadcasts; an ack's
  comment is sent to the sender as a reply.
* **Notifications are not popped destructively**: ``get_notifications``
  returns the same events until ``ack=True`` (or ``pop_notifications``)
  moves the cursor past the ones returned; nothing beyond ``limit`` is lost.
* One client per ``(instance_id, url, token)``, not one per process (seed
  002's factory ignored ``instance_id`` after its first call).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any, NoReturn

from coordhub.client import seed002answers as answers
from coordhub.client.aio import AnswerHeaders
from coordhub.client.outcomes import Queued, Unreachable
from coordhub.client.seed002answers import iso_time as _time
from coordhub.client.seed002calls import API, Seed002Calls
from coordhub.client.seed002config import CoordinationConfig, get_coordination_config, reset_coordination_config
from coordhub.client.seed002stats import CoordinationStats, generate_message_id, stats
from coordhub.client.seed002subscribe import Callback, subscribe
from coordhub.client.seed002types import (
    AcknowledgeError,
    AckResult,
    CoordinationError,
    CoordinationMessage,
    MessagePayload,
    MessageQuery,
    NotificationEvent,
    PresenceError,
    PresenceInfo,
    PublishError,
    notification_event,
    presence_info,
    publish_arguments,
    since_time,
)
from coordhub.client.settings import ClientSettings, resolve
from coordhub.client.wire import NEXT_BEFORE_SEQ, NEXT_CURSOR, whole_number
from coordhub.core.identity import is_broadcast, same_session
from coordhub.core.seed002 import (
    BROADCAST,
    InboxScan,
    MessageType,
    addressed,
    hub_message_id,
    matches,
    unknown_message,
)
from coordhub.errors import CoordError

__all__ = ["AckResult", "AcknowledgeError", "CoordinationClient", "CoordinationConfig", "CoordinationError",
           "CoordinationMessage", "CoordinationStats", "MessagePayload", "MessageQuery", "MessageType",
           "NotificationEvent", "PresenceError", "PresenceInfo", "PublishError", "generate_message_id",
           "get_coordination_client", "get_coordination_client_context", "get_coordination_config",
           "reset_coordination_client", "reset_coordination_config"]

MESSAGES = f"{API}/messages"
PRESENCE_PAGES = 10  # pages of 1,000 sessions get_presence reads at most


class CoordinationClient(Seed002Calls):
    """One session's seed-002 calls to a hub; make it with :func:`get_coordination_client`.

    Each call reaches the hub as :class:`~coordhub.client.seed002calls.Seed002Calls` says. Concurrent tasks may
    share one client: each call's time budget and what the drain before it found (whether its write must wait
    behind older queued ones) are its own (:meth:`CoordClient.within <coordhub.client.transport.Transport.within>`
    is per thread, :attr:`Drained.held <coordhub.client.queue.Drained.held>` per drain); ``last_drain`` is the
    last drain of any of them.
    """

    def __init__(self, redis_client: object = None, config: CoordinationConfig | None = None,
                 instance_id: str | None = None, *, settings: ClientSettings | None = None) -> None:
        """A client of the hub ``settings`` names (else the hub, token and session resolved as
        :func:`get_coordination_client` resolves them, ``instance_id`` naming the session).

        Seed 002's forms work (``CoordinationClient(redis_client, config, instance_id)``, ``async with
        CoordinationClient(redis_client) as client``): the Redis client is not used (the hub is the store now,
        reached as ``COORD_URL``/``COORD_TOKEN`` say) and ``config`` is kept as :attr:`config`. This package's
        ``CoordinationClient(settings)`` works too. ``CoordinationError`` (400) for a ``config`` that is no
        :class:`CoordinationConfig`, or settings that cannot be resolved.
        """
        if isinstance(redis_client, ClientSettings):
            settings, redis_client = redis_client, None
        if config is not None and not isinstance(config, CoordinationConfig):
            raise CoordinationError(f"config is {type(config).__name__}, not a CoordinationConfig: pass "
                                    "CoordinationConfig(...) or CoordinationConfig.from_env() (from "
                                    "coordhub.client.seed002), or leave it out", 400, "invalid")
        if settings is None:
            try:
                settings = resolve(None, None, instance_id)
            except CoordError as exc:
                raise CoordinationError(exc.message, 400, exc.code) from None
        super().__init__(settings, instance_id)
        self._config = config
        self.is_connected = False  # seed 002's: whether the last health_check reached the hub
        self.correlation_id: str | None = None

    @property
    def config(self) -> CoordinationConfig:
        """Seed 002's settings: the ``config`` given, else :func:`get_coordination_config` (the environment's)."""
        return self._config or get_coordination_config()

    @property
    def redis(self) -> NoReturn:
        """Seed 002's Redis client, which the hub has no use for: ``AttributeError`` saying what to use."""
        raise AttributeError("this client has no Redis connection: the hub is the store now; use this client's "
                             "calls (publish_message, get_messages …), or `coord import redis` for the old data")

    async def __aenter__(self) -> CoordinationClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- messages ----------------------------------------------------------------------------------

    async def publish_message(self, msg_type: MessageType | str, subject: str, description: str,
                              *positional: str | bool | None, to_instance: str | None = None,
                              requires_ack: bool | None = None, from_instance: str | None = None,
                              message_id: str | None = None, idempotency_key: str | None = None) -> CoordinationMessage:
        """Publish a message from this session to ``to_instance`` (default ``orchestrator``; ``"all"``: every session).

        After the first three, arguments come in seed 002's client's order (``from_instance, to_instance,
        requires_ack, message_id``) when the fifth is text, else in its README's (``to_instance, requires_ack``).
        ``from_instance``, if given, must name this session. A retry with the same ``idempotency_key`` (else
        ``message_id``, seed 002's own id for the message: the hub's id is a UUID of its own) returns the first
        result and sends nothing twice. Raises :class:`PublishError` when the hub refuses it, ``TypeError`` for an
        argument given twice or too many.
        """
        to_instance, requires_ack, from_instance, message_id = publish_arguments(
            positional, to_instance, requires_ack, from_instance, message_id)
        idempotency_key = idempotency_key or message_id
        kind = MessageType(msg_type).value
        me = await self._own(from_instance, "from_instance") if from_instance else None
        body = {"to_session": None if is_broadcast(to_instance) else to_instance, "subject": subject,
                "body": description, "message_type": kind, "requires_ack": requires_ack}
        m = await self._write("POST", MESSAGES, body, PublishError, idempotency_key)
        if isinstance(m, Queued):
            return CoordinationMessage(id=None, type=kind, from_instance=me or self.settings.session or "",
                                       to_instance=BROADCAST if body["to_session"] is None else to_instance,
                                       timestamp=None, requires_ack=requires_ack, acknowledged=False,
                                       payload=MessagePayload(subject, description), queued=True)
        m = answers.record(m, answers.MESSAGE, f"POST {MESSAGES}", PublishError)
        return CoordinationMessage.from_hub(m, m["from_session"])

    async def check_messages(self, to_instance: str | None = None, from_instance: str | None = None,
                             msg_type: MessageType | str | None = None, pending_only: bool = False,
                             limit: int = 100, since: datetime | str | None = None) -> list[CoordinationMessage]:
        """Messages you can see (by default), or those addressed to ``to_instance`` (yours; another's needs an admin
        token), newest first.

        As in seed 002, whose instance inboxes held no broadcast, naming an instance leaves the broadcasts out;
        ``to_instance="all"`` keeps only them, and naming none gives your direct messages and the broadcasts (seed
        002 gave every instance's, which the hub shows nobody). ``since`` (a datetime or ISO 8601
        text, UTC when it names no offset; ``ValueError`` for no time) keeps those sent at or after it, as seed
        002's query did; an imported message counts from its original time. The
        filters look through the newest :data:`~coordhub.core.seed002.SCAN_LIMIT` messages, in at most ten of the
        hub's pages (a page holds 500 messages or about 4 MiB of them; :class:`~coordhub.core.seed002.InboxScan`).
        """
        kind = MessageType(msg_type).value if msg_type else None
        start = since_time(since)
        broadcasts = to_instance is not None and is_broadcast(to_instance)
        owner = None if broadcasts else to_instance
        viewer = owner or await self.session_id()
        walk = InboxScan(lambda m: matches(m, from_instance, kind, pending_only) and addressed(m, to_instance)
                         and (start is None or _sent_at(m) >= start), max(1, min(limit, 1000)))
        while True:
            answered: AnswerHeaders = {}
            answer = await self._read("GET", MESSAGES, {"to_session": owner, **walk.params()}, answered=answered)
            page = answers.records(answer, answers.MESSAGE, f"GET {MESSAGES}", CoordinationError)
            if not walk.take(page, whole_number(answered.get(NEXT_BEFORE_SEQ))):
                break
        return [CoordinationMessage.from_hub(m, viewer) for m in walk.found]

    async def get_messages(self, query: Any = None, **filters: Any) -> list[CoordinationMessage]:
        """Seed 002's name: ``query`` is a :class:`MessageQuery` (or any object with its ``to_instance``/
        ``from_instance``/``msg_type``/``pending_only``/``since``/``limit`` attributes), or give them as keywords."""
        names = ("to_instance", "from_instance", "msg_type", "pending_only", "since", "limit")
        given = {n: getattr(query, n) for n in names if query is not None and getattr(query, n, None) is not None}
        return await self.check_messages(**{**given, **filters})

    async def get_message(self, message_id: str) -> CoordinationMessage | None:
        """One message you sent or received (by hub id or seed id), or None when there is no such message."""
        path = f"{MESSAGES}/{hub_message_id(message_id)}"
        try:
            m = await self._read("GET", path)
        except CoordinationError as err:
            if err.status == 404:
                return None
            raise
        return CoordinationMessage.from_hub(answers.record(m, answers.MESSAGE, f"GET {path}", CoordinationError),
                                            await self.session_id())

    async def ack_message(self, message_id: str, comment: str | None = None) -> AckResult:
        """Acknowledge a message (hub id or seed id); a ``comment`` is sent to its sender as a reply.

        Raises :class:`AcknowledgeError` when the hub refuses (404: no such
        message for you).
        """
        hub_id = hub_message_id(message_id)
        path = f"{MESSAGES}/{hub_id}/ack"
        try:
            m = await self._write("POST", path, None, AcknowledgeError)
        except AcknowledgeError as err:  # a seed id's 404 named the UUID it maps to, which the caller never gave
            text = unknown_message(message_id, "check_messages") if err.status == 404 else None
            if text is None:
                raise
            raise AcknowledgeError(text, err.status, err.code) from None
        if isinstance(m, Queued):
            if comment:
                note = {"to_session": None, "subject": f"Ack comment on {message_id}"[:500], "body": comment,
                        "reply_to": hub_id}  # the hub sends a reply to the parent's sender
                await self._write("POST", MESSAGES, note, AcknowledgeError)
            return AckResult(message_id, self.settings.session, queued=True)
        m = answers.record(m, answers.MESSAGE, f"POST {path}", AcknowledgeError)
        me = await self.session_id()
        reply = None
        if comment and not same_session(m["from_session"], me):
            sent = await self._write("POST", MESSAGES, {"to_session": m["from_session"],
                                                        "subject": f"Re: {m['subject']}"[:500], "body": comment,
                                                        "reply_to": m["id"]}, AcknowledgeError)
            if not isinstance(sent, Queued):
                reply = str(answers.record(sent, answers.MESSAGE, f"POST {MESSAGES}", AcknowledgeError)["id"])
        return AckResult(message_id, me, reply)

    async def acknowledge_message(self, message_id: str, ack_by: str | None = None,
                                  comment: str | None = None) -> bool:
        """Seed 002's name: True when acknowledged (or queued), False when there is no such message for you."""
        if ack_by is not None:
            await self._own(ack_by, "ack_by")
        try:
            await self.ack_message(message_id, comment)
        except AcknowledgeError as err:
            if err.status == 404:
                return False
            raise
        return True

    # -- presence ----------------------------------------------------------------------------------

    async def get_presence(self, timeout_minutes: float | None = None) -> dict[str, PresenceInfo]:
        """Every session that ever registered, by id, with its presence (up to :data:`PRESENCE_PAGES` of the hub's
        pages).


        ``timeout_minutes`` (seed 002's; None or 0: the ``presence_timeout_minutes`` of the ``config`` this client
        was made with, else the hub's own thresholds) also marks inactive and stale a session whose last heartbeat
        is older, as seed 002's read did.
        """
        timeout_minutes = timeout_minutes or (self._config.presence_timeout_minutes if self._config else None)
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(PRESENCE_PAGES):  # the hub answers 1,000 a page (6793056): one page left out the rest
            answered: AnswerHeaders = {}
            page = answers.records(await self._read("GET", f"{API}/presence", {"cursor": cursor}, PresenceError,
                                                    answered), answers.PRESENCE, f"GET {API}/presence", PresenceError)
            rows += page
            if not page or answered.get(NEXT_CURSOR) in (None, cursor):
                break
            cursor = answered[NEXT_CURSOR]
        found = {r["session_id"]: presence_info(r) for r in rows}
        if not timeout_minutes:
            return found
        return {k: p if (p.seconds_since_heartbeat or 0) <= timeout_minutes * 60 else
                dataclasses.replace(p, active=False, stale=p.stale or p.active) for k, p in found.items()}

    async def get_stats(self) -> CoordinationStats:
        """Seed 002's statistics, the caller's (:func:`~coordhub.client.seed002stats.stats` says what each counts)."""
        return await stats(self)

    async def register_presence(self, session_id: str | None = None, worktree_path: str | None = None,
                                client: str = "coordhub-seed002") -> PresenceInfo:
        """Register this session as online (a new incarnation); ``session_id`` is the agent's own id."""
        body = {k: v for k, v in {"client": client, "client_session": session_id, "cwd": worktree_path}.items()
                if v is not None}
        path = f"{API}/presence/register"
        return self._presence_or_queued(await self._write("POST", path, body, PresenceError), path)

    async def heartbeat(self, instance_id: str | None = None) -> PresenceInfo:
        """Keep this session's presence alive (``instance_id``, if given, must be this session)."""
        if instance_id is not None:
            await self._own(instance_id, "instance_id")
        path = f"{API}/presence/heartbeat"
        return self._presence_or_queued(await self._write("POST", path, {}, PresenceError), path)

    async def deregister_presence(self) -> PresenceInfo:
        """Mark this session offline."""
        path = f"{API}/presence/deregister"
        return self._presence_or_queued(await self._write("POST", path, {}, PresenceError), path)

    async def register_instance(self, instance_id: str | None = None, session_id: str | None = None) -> bool:
        """Seed 002's name for :meth:`register_presence` (``instance_id``, if given, must be this session)."""
        if instance_id is not None:
            await self._own(instance_id, "instance_id")
        await self.register_presence(session_id)
        return True

    async def unregister_instance(self, instance_id: str | None = None) -> bool:
        """Seed 002's name for :meth:`deregister_presence`."""
        if instance_id is not None:
            await self._own(instance_id, "instance_id")
        await self.deregister_presence()
        return True

    def _presence_or_queued(self, r: Any, path: str) -> PresenceInfo:
        if isinstance(r, Queued):
            return PresenceInfo(self.settings.session or "", False, None, None, False, "unknown")
        return presence_info(answers.record(r, answers.PRESENCE, f"POST {path}", PresenceError))

    # -- notifications -----------------------------------------------------------------------------

    async def get_notifications(self, limit: int = 100, ack: bool = False) -> list[NotificationEvent]:
        """Your notifications (events since your cursor), oldest first; ``ack=True`` moves the cursor past them."""
        page = await self._read("GET", f"{API}/notifications", {"limit": max(1, min(limit, 1000))})
        events = answers.events(page, f"GET {API}/notifications", CoordinationError)[:limit]
        if ack and events:
            await self._write("POST", f"{API}/notifications/ack", {"up_to": events[-1]["id"]}, CoordinationError)
        return [notification_event(e) for e in events]

    async def pop_notifications(self, instance_id: str | None = None, limit: int = 100) -> list[NotificationEvent]:
        """Seed 002's name: the notifications, acknowledged (what lies beyond ``limit`` stays for the next call)."""
        if instance_id is not None:
            await self._own(instance_id, "instance_id")
        return await self.get_notifications(limit, ack=True)

    async def subscribe_notifications(self, instance_id: str | None, callback: Callback,
                                      include_broadcast: bool = True) -> asyncio.Task[None]:
        """Seed 002's: a task awaiting ``callback(NotificationEvent)`` for each message sent to this session from now
        on (broadcasts too with ``include_broadcast``); cancel it to stop. ``instance_id``, if given, must be this
        session. Unlike seed 002's it resumes after a lost connection without a gap
        (:func:`coordhub.client.seed002subscribe.subscribe` says what it returns after and how it ends)."""
        me = await self._own(instance_id, "instance_id")
        return await subscribe(self.settings, me, callback, include_broadcast)

    async def health_check(self) -> dict[str, Any]:
        """Whether the hub answers (seed 002's shape: ``connected``, ``status``, ``latency_ms``), never raising."""
        start = time.monotonic()
        try:
            health = await asyncio.to_thread(self._sync.hub_health)
        except Unreachable as exc:
            return {"connected": False, "status": "unhealthy", "error": str(exc)}
        except CoordError as exc:  # a hub this client may not ask (a repository's identity.json chose it)
            return {"connected": False, "status": "unhealthy", "error": exc.message}
        ok = self.is_connected = health.get("status") == "ok"
        return {"connected": ok, "status": "healthy" if ok else "unhealthy",
                "latency_ms": round((time.monotonic() - start) * 1000, 2), "hub": self.settings.url}

    def set_correlation_id(self, correlation_id: str) -> None:
        """Keep ``correlation_id`` as :attr:`correlation_id` (seed 002 only wrote it in its own log lines)."""
        self.correlation_id = correlation_id

    def clear_correlation_id(self) -> None:
        """Forget the correlation id."""
        self.correlation_id = None


def _sent_at(m: dict[str, Any]) -> datetime:
    """When hub message ``m`` was sent (an imported one: its original time); the answer's shape was checked
    (seed002answers.MESSAGE), so it has one."""
    return _time(m["created_at"]) or datetime.min.replace(tzinfo=UTC)


_clients: dict[tuple[str | None, str | None, str | None], CoordinationClient] = {}
_lock = asyncio.Lock()


async def get_coordination_client(instance_id: str | None = None, *, url: str | None = None,
                                  token: str | None = None) -> CoordinationClient:
    """The client of this session (one per ``(instance_id, url, token)``, made on first use).

    ``instance_id`` names the session (else ``COORD_SESSION`` …,
    ``CLAUDE_INSTANCE_ID``; docs/configuration.md); ``url`` and ``token``
    override ``COORD_URL``/``COORD_TOKEN``/identity.json. Nothing is sent
    until the first call, which raises :class:`CoordinationError` when this
    client may not act (no token on a hub that needs one, a token of another
    session than ``instance_id``, a URL the token is not trusted for).
    """
    key = (instance_id, url, token)
    async with _lock:
        if key not in _clients:
            try:
                settings = resolve(url, token, instance_id)
            except CoordError as exc:
                raise CoordinationError(exc.message, 400, exc.code) from None
            _clients[key] = CoordinationClient(instance_id=instance_id, settings=settings)
        return _clients[key]


async def get_coordination_client_context(instance_id: str | None = None, *, url: str | None = None,
                                          token: str | None = None) -> CoordinationClient:
    """Seed 002's: :func:`get_coordination_client`, once :meth:`~CoordinationClient.health_check` found the hub
    answering; :class:`CoordinationError` (status 0) with its ``error`` when it does not."""
    client = await get_coordination_client(instance_id, url=url, token=token)
    health = await client.health_check()
    if not health["connected"]:
        raise CoordinationError(f"coordination client not connected: {health.get('error', health['status'])}")
    return client


async def reset_coordination_client() -> None:
    """Close and forget every client made by :func:`get_coordination_client` (tests; a changed environment)."""
    async with _lock:
        for c in _clients.values():
            await c.aclose()
        _clients.clear()
