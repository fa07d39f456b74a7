"""How a seed-002 call reaches the hub: :class:`Seed002Calls`, the base of
:class:`~coordhub.client.seed002.CoordinationClient`.

Every call of seed 002's API goes the same way: the identity is settled
once (the CLI's rules: trusted URL, no silent admin; an ``instance_id`` must
be the credential's session), the session's softfail queue is drained
before it, and the check, the drain and the call share one time budget
(the settings' timeout). A read that fails raises the call's
:class:`~coordhub.client.seed002types.CoordinationError` type; a write the
hub cannot take is queued with its idempotency key
(:class:`~coordhub.client.outcomes.Queued`).
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from coordhub.client import seed002answers as answers
from coordhub.client.aio import AnswerHeaders, AsyncCoordClient
from coordhub.client.client import CoordClient
from coordhub.client.outcomes import HubError, Queued, Unreachable
from coordhub.client.queue import Drained, Entry
from coordhub.client.seed002types import CoordinationError
from coordhub.client.settings import ClientSettings
from coordhub.client.trust import origin
from coordhub.core.identity import same_session
from coordhub.errors import CoordError
from coordhub.headers import SESSION_HEADER

T = TypeVar("T")

API = "/api/coord"


def _whoami_session(answer: Any) -> str:
    """The session of a ``GET /api/coord/whoami`` answer; ``CoordinationError`` ``no_session`` (403) when the hub
    names none (a ``--no-auth`` hub and no session named), ``bad_response`` for an answer no hub sends."""
    session = answers.record(answer, answers.WHOAMI, f"GET {API}/whoami", CoordinationError)["session_id"]
    if session is None:
        raise CoordinationError("this client acts as no session on the hub (a --no-auth hub and no session named); "
                                "seed 002's calls act as a session: name one (instance_id, COORD_SESSION) or use a "
                                "session's token", 403, "no_session")
    return str(session)


class _Unsettled(CoordinationError):
    """The identity could not be settled because ``/health`` could not be asked (status 0): nothing was sent."""


def _failure(err: HubError | Unreachable, kind: type[CoordinationError]) -> CoordinationError:
    """``err`` as seed 002's error ``kind``. A 502 or 504 is a gateway's with no hub behind it (the hub answers
    neither): the hub could not be reached, status 0, as :class:`CoordClient` reads it (:class:`Unreachable`)."""
    if isinstance(err, HubError) and err.status in (502, 504):
        return kind(f"the hub behind {err.status} could not be reached: {err.message}")
    if isinstance(err, HubError):
        return kind(f"{err.message} [{err.status} {err.code}]", err.status, err.code)
    return kind(str(err))


def _spent(settings: ClientSettings) -> str:
    """Why a call's own request was not sent: the identity check and the drain before it took its time."""
    return (f"the hub at {settings.url} did not answer the calls before this one within the timeout "
            f"({settings.timeout:g} s)")


class Seed002Calls:
    """One session's way to the hub for seed 002's calls: its identity, softfail queue and time budget.

    ``settings`` name the hub, the token and the session; ``instance_id`` (None: not checked) is the session
    the caller says it acts as, refused by the first call when the credential's session is another.
    """

    def __init__(self, settings: ClientSettings, instance_id: str | None) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self._sync = CoordClient(settings)  # its identity rules, softfail queue and drain, used in a thread
        self._http: AsyncCoordClient | None = None
        self._me: str | None = None
        self.last_drain: Drained | None = None

    async def aclose(self) -> None:
        """Close the connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._sync.close()

    async def _client(self, deadline: float | None = None) -> AsyncCoordClient:
        """The HTTP client, once the identity is settled (the CLI's rules: trusted URL, no silent admin), within
        the running call's time budget ending at ``deadline`` (``time.monotonic()``; None: a timeout of its own)."""
        deadline = time.monotonic() + self.settings.timeout if deadline is None else deadline
        if self._http is None:
            try:
                headers = await asyncio.to_thread(self._within, deadline, self._sync.identity_headers)
            except CoordError as exc:
                raise CoordinationError(exc.message, 401, "no_credential") from None
            except Unreachable as exc:  # /health had to be asked (no token, or the hub's admin token) and was not
                raise _Unsettled(str(exc)) from None
            token = self.settings.token if "Authorization" in headers else None
            if self._http is None:  # another task's first call may have made it while this one waited
                self._http = AsyncCoordClient(self.settings.url, token, self.settings.session,
                                              timeout=self.settings.timeout,
                                              claimed=SESSION_HEADER in headers)  # the CLI's rule
        http = self._http
        if self.instance_id and self._me is None:
            await self._check_instance(http, deadline)
        return http

    def _within(self, deadline: float, work: Callable[[], T]) -> T:
        """``work()`` (in a thread) with the sync client's requests within the time budget ending at ``deadline``."""
        with self._sync.within(deadline):
            return work()

    async def _check_instance(self, http: AsyncCoordClient, deadline: float) -> None:
        """Refuse an ``instance_id`` that is not the credential's session (unchecked while the hub is unreachable,
        unavailable or failing: a gateway's 502 or 504, a 503, or the hub's own 500, which says the hub is broken,
        not that the identity is wrong; the call goes on as when unreachable, a write queued if the hub fails it too,
        and the hub acts as the token's session anyway; checked again by the next call)."""
        left = deadline - time.monotonic()
        if left <= 0:  # the call's time is spent: unchecked, as for an unreachable hub
            return
        try:
            me = _whoami_session(await http.call("GET", f"{API}/whoami", timeout=left))
        except Unreachable:
            return
        except HubError as err:
            if err.status >= 500:  # a 5xx is the hub failing (or a gateway with none behind it), not a refusal
                return
            raise _failure(err, CoordinationError) from None
        if not same_session(str(self.instance_id), me):
            raise CoordinationError(f"instance_id {self.instance_id!r} is not this client's session {me!r}: "
                                    f"identity comes from the token (give the token of {self.instance_id!r})",
                                    403, "forbidden")
        self._me = me

    async def session_id(self) -> str:
        """This client's session on the hub (asked once); ``CoordinationError`` if ``instance_id`` is not it."""
        if self._me is None:
            self._me = _whoami_session(await self._read("GET", f"{API}/whoami"))
        return self._me

    async def _own(self, name: str | None, what: str) -> str:
        """This session, checking that an argument naming the acting instance names it."""
        me = await self.session_id()
        if name is not None and not same_session(name, me):
            raise CoordinationError(f"{what} {name!r} is not you: this session is {me!r}; identity comes from "
                                    "the token, not from arguments", 403, "forbidden")
        return me

    async def _drain(self, deadline: float) -> tuple[float, str | None]:
        """Drain this session's queue before a call, as :meth:`CoordClient.call
        <coordhub.client.client.CoordClient.call>` does, within the call's time budget ending at ``deadline``
        (``time.monotonic()``; the identity check spent part of it): the seconds the call's own request may take,
        a whole timeout after a drain the hub answered in full, else what is left of the budget (0: none); and why
        a newer write must wait behind the entry the drain stopped at (None: nothing holds it back), this drain's
        own (:attr:`Drained.held <coordhub.client.queue.Drained.held>`), never another task's."""
        if len(self._sync.queue):
            drained = self.last_drain = await asyncio.to_thread(self._within, deadline, self._sync.sync)
            if drained.stopped is None:
                return self.settings.timeout, None
            return max(0.0, deadline - time.monotonic()), drained.held
        return max(0.0, deadline - time.monotonic()), None

    async def _read(self, method: str, path: str, params: dict[str, Any] | None = None,
                    kind: type[CoordinationError] = CoordinationError, answered: AnswerHeaders | None = None) -> Any:
        """One read within one timeout (the identity check, the drain and the read share it, as a drain and a
        call do in :class:`CoordClient`); ``kind`` with status 0 when the hub did not answer in time."""
        deadline = time.monotonic() + self.settings.timeout
        http = await self._client(deadline)
        left, _ = await self._drain(deadline)
        if left <= 0:
            raise kind(_spent(self.settings))
        try:
            return await http.call(method, path, params=params, answer_headers=answered, timeout=left)
        except (HubError, Unreachable) as err:
            raise _failure(err, kind) from None

    async def _write(self, method: str, path: str, body: Any, kind: type[CoordinationError],
                     idempotency_key: str | None = None) -> Any:
        """A write with an idempotency key; :class:`Queued` (softfail) when the hub cannot be reached or answers 5xx.

        Sent by :meth:`CoordClient.request <coordhub.client.client.CoordClient.request>`, as a write of
        :meth:`CoordClient.call <coordhub.client.client.CoordClient.call>` is, within this call's time budget: a
        503's ``Retry-After`` is waited out once (when the budget outlasts the wait) and the write sent again;
        when the drain before it stopped at one of this session's queued writes, it is queued behind them unsent
        (sent now, it would reach the hub before them); a queued entry records whether it may have reached the hub.
        """
        key = idempotency_key or str(uuid.uuid4())
        deadline = time.monotonic() + self.settings.timeout
        try:
            await self._client(deadline)
        except _Unsettled as exc:  # nothing was sent: queued, as CoordClient queues a write its identity check stopped
            return await self._queue(Entry(method, path, body, key, None, self.settings.session,
                                           actor=self._sync.actor, hub=origin(self.settings.url), reached=False),
                                     exc.message)
        left, held = await self._drain(deadline)
        send = functools.partial(self._sync.request, method, path, body=body, idempotency_key=key, held=held)
        try:
            return await asyncio.to_thread(self._within, time.monotonic() + left, send)
        except HubError as err:  # refused (4xx), or answered by no hub (a redirect: not applied)
            raise _failure(err, kind) from None

    async def _queue(self, entry: Entry, reason: str) -> Queued:
        """Append ``entry`` (a write not applied for ``reason``) to the softfail queue."""
        pending = await asyncio.to_thread(self._sync.queue.append, entry)
        return Queued(entry.method, entry.path, entry.idempotency_key, pending, reason)

    async def sync(self) -> Drained:
        """Send the writes queued while the hub was unreachable, in order (with their keys); what it did."""
        await self._client()
        return await asyncio.to_thread(self._sync.sync)
