"""One chunk written to many idle sockets on two threads: the fan-out's sweep (issue 15, push to 1,000 streams).

The fan-out (:mod:`coordhub.api.fanout`) writes each event's chunk to every
live stream in one pass on the event loop. Measured on a 2-core machine, the
pass to 1,000 loopback streams took 7.3 ms, almost all of it in the kernel:
5.6–5.9 ms per 1,000 ``write(2)`` calls, each one running the receiving end of
TCP too. uvloop's ``transport.write`` makes its system call holding the GIL,
so that time is spent on one core while the other waits. ``os.write`` releases
the GIL around its system call, so two threads that each write half of the
sockets run the kernel's part on both cores at once: in a ``/tmp`` test of
1,000 loopback sockets, one thread took 4.4 ms and two 2.5 ms (medians of
150 sweeps). A stream's place in the pass decides when its frame arrives, so
the median receipt moves with the pass's half-time. The two threads share the
sockets by taking them one at a time from the two ends of one list, not by
halves: with the other core busy, a helper the kernel runs late would make
a fixed half wait for it (the same ``/tmp`` test with halves, while a test
suite ran beside it: 4.1 ms on one thread, 6.0 ms on two).

What makes a write past the transport safe here (:func:`direct_fd`,
:meth:`Sweep.write`):

* only a plain TCP or Unix socket, never TLS (its bytes must go through the
  TLS transport), and only a non-blocking one, so no write can wait;
* only a transport with nothing buffered (``get_write_buffer_size() == 0``):
  the chunk is then the next byte on the wire whichever way it goes;
* the event loop's thread waits for the helper's last write (or makes sure it
  never starts) before it runs anything else, so nothing else writes to,
  closes or reuses those descriptors meanwhile, and libuv, which only acts
  when the loop runs, sees nothing happen;
* what a socket did not take whole (a partial write, ``EAGAIN``, an error) is
  handed to the transport afterwards, from the loop's thread, in order: the
  transport buffers the rest, or meets the error itself and closes the
  connection as it would have.

Fewer than :data:`MIN_SPLIT` sockets are written the ordinary way: waking the
helper costs more than it saves there.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

MIN_SPLIT = 64  # sockets in one sweep below which it is not split across threads


class Writable(Protocol):
    """A stream's connection as the sweep sees it (:class:`coordhub.api.wire.Wire`)."""

    fd: int

    def send(self, chunk: bytes) -> object: ...


def direct_fd(transport: Any) -> int:
    """The file descriptor of ``transport``'s socket when bytes may be written to it past the transport (a plain,
    non-blocking socket; see the module docstring), else -1."""
    try:
        if transport.get_extra_info("sslcontext") is not None:
            return -1
        sock = transport.get_extra_info("socket")
        fd = int(sock.fileno()) if sock is not None else -1
        return fd if fd >= 0 and not os.get_blocking(fd) else -1
    except (AttributeError, OSError, TypeError, ValueError):
        return -1


class _Job:
    """One split sweep: ``data`` for the sockets ``fds``, whose indexes ``todo`` holds. The loop's thread takes them
    from its left, the helper from its right (a deque's pops are atomic), so neither waits for the other's share:
    when the helper is slow to run (the other core busy), the loop's thread writes nearly all of them itself.
    ``gate`` orders the helper's start against the loop's end: a job the loop has closed is never started."""

    __slots__ = ("data", "fds", "todo", "gate", "started", "closed")

    def __init__(self, data: bytes, fds: list[int]) -> None:
        self.data = data
        self.fds = fds
        self.todo = collections.deque(range(len(fds)))
        self.gate = threading.Lock()
        self.started = False  # the helper took the job: it answers once, when todo is empty
        self.closed = False  # the loop's thread found todo empty: the helper must not start it


def _drain(job: _Job, take: Callable[[], int]) -> list[tuple[int, int]]:
    """Write ``job.data`` to the sockets ``take()`` hands out until there are none left; the (index, bytes written)
    of those that did not take it whole."""
    short: list[tuple[int, int]] = []
    data, fds, write = job.data, job.fds, os.write
    size = len(data)
    while True:
        try:
            i = take()
        except IndexError:
            return short
        try:
            done = write(fds[i], data)
        except OSError:  # EAGAIN, or the connection failed: the transport takes it (see the module docstring)
            done = 0
        if done != size:
            short.append((i, done))


class Sweep:
    """Writes one chunk to many connections, shared with a helper thread (started at the first split).

    Use from the event loop's thread only; :meth:`close` stops the helper. A
    sweep with no helper running (none could be started, or :meth:`close`
    ran) is written on the loop's thread alone.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[list[tuple[int, int]] | BaseException] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False  # close() ran: no helper is started any more
        self.splits = 0  # sweeps the helper took part in so far (metrics, tests)

    def write(self, data: bytes, wires: Sequence[Writable]) -> None:
        """Write ``data`` to every one of ``wires``: each has ``fd >= 0`` and nothing buffered, the state was checked
        just before (:meth:`coordhub.api.wire.Wire.state`), and no event-loop callback ran since.

        The loop's thread waits at most for the one write the helper has in hand (:class:`_Job`)."""
        count = len(wires)
        if count < MIN_SPLIT or not self._helper():
            for through in wires:
                through.send(data)
            return
        job = _Job(data, [through.fd for through in wires])
        self._jobs.put(job)
        try:
            short = _drain(job, job.todo.popleft)
        finally:
            with job.gate:
                job.closed = True
                helped = job.started
            theirs = self._done.get() if helped else []  # answered: its writes never block (non-blocking sockets)
        if isinstance(theirs, BaseException):
            raise theirs
        if helped:
            self.splits += 1
        for i, done in short + theirs:
            wires[i].send(data[done:] if done else data)

    def _helper(self) -> bool:
        """Whether a helper thread runs to take half of a sweep, starting one when there is none (the first split,
        or a process forked from the one that started it, where it does not run); False when none may be started
        (closed) or none could be (``RuntimeError``: the process is at its thread limit): the loop's thread then
        writes the sweep alone, as it must not wait for a helper that is not running."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return True
        if self._closed:
            return False
        jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[list[tuple[int, int]] | BaseException] = queue.SimpleQueue()
        thread = threading.Thread(target=self._help, args=(jobs, done), name="coord-sweep", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread"
            return False
        self._jobs, self._done, self._thread = jobs, done, thread
        return True

    @staticmethod
    def _help(jobs: queue.SimpleQueue[_Job | None],
              done: queue.SimpleQueue[list[tuple[int, int]] | BaseException]) -> None:
        while (job := jobs.get()) is not None:
            with job.gate:
                if job.closed:  # the loop's thread wrote it all already and is not waiting
                    continue
                job.started = True
            try:
                done.put(_drain(job, job.todo.pop))
            except BaseException as exc:  # the loop's thread waits for an answer, whatever happens
                done.put(exc)

    def close(self) -> None:
        """Stop the helper thread (the app is shutting down); later sweeps are written on the loop's thread."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(timeout=5)
