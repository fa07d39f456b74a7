"""Run an awaitable's first step at once, and only pay for a task or a timer when it has to wait.

Two hot paths await things that are almost always ready (issue 15): an ASGI
``send`` of a small frame (uvicorn writes to the socket at once unless its
buffer is full) and the first ``receive`` of a small request body (uvicorn has
usually read it with the headers). :func:`start` runs the first step; the
caller finishes a waiting one with :func:`finish` (as a task, or under a
timeout), which resumes it exactly as a task would have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """An awaitable that :func:`start` ran one step of and that is waiting (``step``: its ``__await__`` iterator).

    Await it (once) to run it to its end; ``first`` is what its first step
    yielded (the future it waits for), handed on to the awaiting task.
    """

    def __init__(self, step: Generator[Any, Any, T], first: Any) -> None:
        self._step = step
        self._first = first

    def __await__(self) -> Generator[Any, Any, T]:
        pending = self._first
        while True:
            try:
                yield pending
            except BaseException as exc:  # cancelled, or the future failed: into the awaitable, as a task would
                try:
                    pending = self._step.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                try:
                    pending = self._step.send(None)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]


def start(awaitable: Awaitable[T]) -> tuple[bool, T | None, Pending[T] | None]:
    """Run ``awaitable``'s first step: ``(True, result, None)`` if it finished, else ``(False, None, pending)``.

    An exception it raises in that step propagates. A pending one must be
    finished by awaiting ``pending`` (:func:`finish`), or closed.
    """
    step = awaitable.__await__()
    try:
        first = step.send(None)
    except StopIteration as stop:
        return True, stop.value, None
    return False, None, Pending(step, first)


async def finish(pending: Pending[T]) -> T:
    """Run a pending awaitable to its end (a coroutine, for ``asyncio.ensure_future`` or ``asyncio.wait_for``)."""
    return await pending
