"""Seed 002's ``subscribe_notifications`` on the hub: a task calling back for each message sent to a session.

Seed 002 subscribed to Redis pub/sub (``notify:{instance}``, and
``notify:all`` with ``include_broadcast``) and called an async callback with
a ``NotificationEvent`` per published message; the task ended on a lost
connection, and what was published meanwhile was lost. Here the task follows
the hub's event stream (:meth:`CoordClient.events
<coordhub.client.events.EventStream.events>`, ``message.sent`` events for the
session): it resumes after a lost connection without a gap, and a broadcast is
one sent to every session (seed 002's ``notify:all`` carried every instance's
messages, which the hub shows nobody but their sender and recipient).

The stream is read in a daemon thread of its own (the synchronous client's
stream, with its identity rules), which hands each event to the task through
a bounded queue: a slow callback holds the stream back, never memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from coordhub.client import seed002answers as answers
from coordhub.client.client import CoordClient
from coordhub.client.outcomes import HubError, Unreachable
from coordhub.client.seed002types import CoordinationError, NotificationEvent, notification_event
from coordhub.client.settings import ClientSettings
from coordhub.core.seed002 import HUB_BROADCAST

log = logging.getLogger(__name__)

STREAM = "GET /api/coord/events"
QUEUE_MAX = 100  # events read ahead of the callback at most
Callback = Callable[[NotificationEvent], Awaitable[None]]


async def subscribe(settings: ClientSettings, session: str, callback: Callback,
                    include_broadcast: bool = True) -> asyncio.Task[None]:
    """A task calling ``await callback(event)`` for each message sent to ``session`` from now on (and each broadcast
    with ``include_broadcast``), oldest first; cancel it to stop.

    Returns once the hub accepted the stream, or after ``settings.timeout`` seconds when it could not be reached
    (the task goes on trying; messages sent before it connects are not called back: ``get_notifications`` has
    them). A callback that raises is logged and the next event still comes (seed 002's rule). The task ends
    with :class:`CoordinationError` when the hub refuses the stream (a revoked token: its status and code) or
    sends one that is not the hub's (status 0).
    """
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[dict[str, Any] | CoordinationError] = asyncio.Queue(QUEUE_MAX)
    connected = asyncio.Event()
    stop = threading.Event()
    stream = CoordClient(settings)

    def hand(item: dict[str, Any] | CoordinationError) -> None:
        """Put ``item`` in the queue from the reading thread, waiting for room until the task stops."""
        put = asyncio.run_coroutine_threadsafe(inbox.put(item), loop)
        while not stop.is_set():
            try:
                return put.result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                continue
        put.cancel()

    def on_connect() -> None:
        loop.call_soon_threadsafe(connected.set)

    def follow() -> None:
        try:
            for event in stream.events(kinds="message.sent", to_session=session, on_connect=on_connect):
                if stop.is_set():
                    return
                hand(event)
        except HubError as err:
            hand(CoordinationError(f"the hub refused the notification stream: {err.message}", err.status, err.code))
        except Unreachable as err:
            hand(CoordinationError(str(err), 0, answers.BAD_ANSWER))
        except Exception:  # the task closed the stream under the thread (it stopped), or the loop is gone
            if not stop.is_set():
                log.exception("the notification stream of %s stopped", session)
        finally:
            stream.close()

    async def deliver() -> None:
        while True:
            item = await inbox.get()
            if isinstance(item, CoordinationError):
                raise item
            event = _checked(item)
            to = (event.get("payload") or {}).get("to_session")
            if to == HUB_BROADCAST and not include_broadcast:
                continue
            try:
                await callback(notification_event(event))
            except Exception:
                log.exception("a notification callback of %s failed on event %s", session, event["id"])

    def end(_: object) -> None:
        """The task ended (its error, a cancel, even one before it first ran): the reader stops."""
        stop.set()
        stream.abort()  # ends a read in progress now, not at the hub's next event

    reader = threading.Thread(target=follow, name=f"coord-notify-{session}", daemon=True)
    reader.start()
    task = asyncio.create_task(deliver())
    task.add_done_callback(end)
    waiter = asyncio.create_task(connected.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=settings.timeout, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the caller gave up while the stream connected (wait_for, a cancel): it holds no task
        task.cancel()
        raise
    finally:
        waiter.cancel()
    return task


def _checked(event: Any) -> dict[str, Any]:
    """``event`` when it has the fields of a hub event and of a sent message's payload; else
    :class:`CoordinationError` (code :data:`~coordhub.client.seed002answers.BAD_ANSWER`)."""
    return answers.events({"events": [event]}, STREAM, CoordinationError)[0]
