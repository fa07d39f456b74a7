"""How the hooks reach the hub: the standard-library client of :mod:`coordhub.client.wire`, and what only hooks add.

The hooks run before and after every tool call, so they use
:class:`~coordhub.client.wire.Hub` (one socket, one short timeout, never a
retry), shared with the CLI's fast path. Here: :class:`NotConfigured` for
settings that cannot be loaded (a :class:`~coordhub.client.wire.HubError`, so
a hook that only needs "could the hub be asked?" catches one class),
:func:`halt_of` and :func:`paused_of`, the standing halt or the caller's pause a
refusal carries, and :class:`RateLimitWait`, which waits out the hub's 429s
within a run's time budget.

A 429 (``rate_limited``) is an answer: the hub is up and says this token has
sent too many requests. So the edit hook and the git guard do not treat it as
"the hub could not be asked" (which ``COORD_HOOK_FAIL_MODE=open`` lets
through): they wait the ``Retry-After`` the hub asked for while their budget
allows, and if it still refuses they deny the edit or refuse the commit,
naming the rate limit. Otherwise anything that can spend a session's token
(a runaway loop, another process holding it, a flood of requests made with
it) would switch lease and halt enforcement off for that session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from coordhub.client.wire import API, Hub, HubError, HubRefused, HubUnreachable

__all__ = ["API", "Hub", "HubError", "HubRefused", "HubUnreachable", "NotConfigured", "RateLimitWait", "halt_of",
           "misnamed", "paused_of", "retry_after"]

T = TypeVar("T")


class NotConfigured(HubError):
    """The client settings cannot be loaded (e.g. a malformed identity.json)."""


def halt_of(exc: BaseException) -> dict[str, Any] | None:
    """The standing halt a 423 ``halted`` refusal carries (``error.halt``), else None."""
    if not isinstance(exc, HubRefused) or exc.code != "halted" or not isinstance(exc.body, dict):
        return None
    error = exc.body.get("error")
    halt = error.get("halt") if isinstance(error, dict) else None
    return halt if isinstance(halt, dict) else {"halted_by": "?", "halted_at": "?", "reason": exc.message}


def paused_of(exc: BaseException) -> dict[str, Any] | None:
    """The caller's pause a 423 ``paused`` refusal carries (``error.paused``), else None."""
    if not isinstance(exc, HubRefused) or exc.code != "paused" or not isinstance(exc.body, dict):
        return None
    error = exc.body.get("error")
    paused = error.get("paused") if isinstance(error, dict) else None
    return paused if isinstance(paused, dict) else {"paused_at": "?", "scope": "?"}


def misnamed(exc: BaseException) -> str | None:
    """The hub's words when it refused the request's session name (403 ``session_mismatch``: ``X-Coord-Session``,
    from ``COORD_SESSION`` or identity.json ``session``, names another session than the token's), else None.

    The hub is up and answered, so a hook must not take this for a hub it could not ask, which
    ``COORD_HOOK_FAIL_MODE=open`` lets through unchecked: the same name was ignored before the hub checked it,
    and the token's session was held to its leases and halts (:func:`coordhub.api.auth.check_named_session`).
    """
    if not isinstance(exc, HubRefused) or exc.status != 403 or exc.code != "session_mismatch":
        return None
    return exc.message


def retry_after(exc: BaseException) -> float | None:
    """The seconds a 429 refusal asks the caller to wait (its envelope's ``retry_after``, which the hub also sends
    as ``Retry-After``; 1 when absent), or None when ``exc`` is no 429."""
    if not isinstance(exc, HubRefused) or exc.status != 429:
        return None
    wait = exc.body.get("retry_after") if isinstance(exc.body, dict) else None
    return float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0 <= wait < 1e6 else 1.0


class RateLimitWait:
    """Runs a run's hub requests, waiting out a 429 and asking again while ``budget`` seconds allow.

    The budget is wall-clock time from construction: a wait is only begun if
    it ends within ``budget`` seconds of it, so a run makes its last request by
    then (and that request takes at most the client's timeout). A 429 whose
    ``Retry-After`` would overrun the budget is raised at once, unslept.
    ``waited`` is the seconds slept so far; ``on_wait(seconds, refusal)`` is
    called before each sleep (to say so on stderr).
    """

    def __init__(self, budget: float, on_wait: Callable[[float, HubRefused], None] | None = None) -> None:
        self.deadline = time.monotonic() + budget
        self.waited = 0.0
        self._on_wait = on_wait

    def call(self, ask: Callable[[], T]) -> T:
        """``ask()``'s answer; raises what it raises (a 429 once the budget cannot cover its wait)."""
        while True:
            try:
                return ask()
            except HubRefused as exc:
                wait = retry_after(exc)
                if wait is None or time.monotonic() + wait > self.deadline:
                    raise
                if self._on_wait is not None:
                    self._on_wait(wait, exc)
                time.sleep(wait)
                self.waited += wait
