"""How the hooks reach the hub: the standard-library client of :mod:`coordhub.client.wire`, and what only hooks add.

The hooks run before and after every tool call, so they use
:class:`~coordhub.client.wire.Hub` (one socket, one short timeout, never a
retry), shared with the CLI's fast path. Here: :class:`NotConfigured` for
settings that cannot be loaded (a :class:`~coordhub.client.wire.HubError`, so
a hook that only needs "could the hub be asked?" catches one class),
:func:`halt_of` and :func:`paused_of`, the standing halt or the caller's pause a
refusal carries.
"""

from __future__ import annotations

from typing import Any

from coordhub.client.wire import API, SESSION_HEADER, Hub, HubError, HubRefused, HubUnreachable

__all__ = ["API", "SESSION_HEADER", "Hub", "HubError", "HubRefused", "HubUnreachable", "NotConfigured", "halt_of",
           "paused_of"]


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
