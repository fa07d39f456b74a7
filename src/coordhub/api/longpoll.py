"""The orchestrator's host long-polls: wait for work, then take it, in one request (issue 11 point 2).

A ``coord agent`` asks for its next assignment (``/hosts/next``), smoke test
or review (``/hosts/next-run``) and merge run (``/merges/next``) the same
way: the hub looks in a read transaction whether something is ready for that
machine; if so it takes it in a write transaction (which decides again, so
two hosts never take one thing); else it sleeps until an event of the kinds
that could change the answer is published, or until the moment the look
named (a backoff ending), or the wait runs out. A waiting request holds one
of its session's ``streams_per_token`` slots, like an SSE stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request

from coordhub.api import streams
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller
from coordhub.api.routes.common import hub
from coordhub.core.halt import Exempt
from coordhub.core.identity import Actor
from coordhub.store.base import Row
from coordhub.store.tx import Tx

Look = Callable[[Tx, float], tuple[bool, float | None]]  # → (ready, wake_at: epoch seconds or None)
Take = Callable[[Tx, float], Any]  # → the JSON body of what was taken, or None when another host won it


async def wake(request: Request, cursor: int, timeout: float, kinds: tuple[str, ...],
               also: Callable[[Row], bool] | None = None) -> None:
    """Wait until an event whose kind starts with one of ``kinds`` (or for which ``also`` says True) is published
    after ``cursor``, or ``timeout`` s."""
    bus = hub(request).bus
    if bus is None:
        await asyncio.sleep(timeout)
        return
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not await streams.until_event(request, bus, cursor, left):
            return
        new = bus.since(cursor)
        if new is None or any(r["kind"].startswith(kinds) or (also is not None and also(r)) for r in new):
            return
        cursor = bus.last_id


async def poll(request: Request, who: Caller, actor: Actor, wait: float, field: str, look: Look, take: Take,
               kinds: tuple[str, ...], also: Callable[[Row], bool] | None = None) -> JSONResponse:
    """Answer ``{field: <what was taken>}`` as soon as ``look`` finds something ``take`` gets, else
    ``{field: null}`` after ``wait`` seconds. ``take`` runs as ``actor`` and is allowed while halted (the
    look decides whether a halt stops new work). It looks again after each event of ``kinds`` or ``also``
    (see :func:`wake`). Once the process shuts down (:meth:`~coordhub.api.streams.StreamSlots.stop_streams`)
    it answers after its next look, so the host asks the next hub."""
    h = hub(request)
    deadline = time.monotonic() + wait
    hold = streams.slots(request).hold(streams.key(who, request)) if wait > 0 else contextlib.nullcontext()
    async with hold:
        while True:
            cursor = h.bus.last_id if h.bus is not None else 0
            ready, wake_at = await h.query(look)
            if ready:
                out = await h.mutate(actor, take, during_halt=Exempt.ORCHESTRATOR)
                if out.body is not None:
                    return JSONResponse({field: out.body})
            left = deadline - time.monotonic()
            # Shutting down, the wait below returns at once without suspending: looking again until the deadline
            # spun the event loop, so the hub answered nothing and never exited while hosts polled it.
            if left <= 0 or streams.slots(request).stopped().done():
                return JSONResponse({field: None})
            sleep = left if wake_at is None else max(0.01, min(left, wake_at - h.clock.now()))
            await wake(request, cursor, sleep, kinds, also)
