"""The fan-out's sweep on two threads (issue 15): every socket gets the chunk once, whole and in order.

Real sockets throughout: Unix socket pairs for the sweep itself, and a live
hub with 100 raw-socket SSE streams for the whole path.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import signal
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from coordhub.api import sweep
from coordhub.api.sweep import MIN_SPLIT, Sweep, direct_fd
from tests.conftest import LiveHub

DATA = b"1f\r\nid: 7\nevent: message.sent\ndata: {}\n\n\r\n"


class Pipe:
    """One connection as the sweep sees it: ``fd`` the writing end of a socket pair, ``sent`` what went the
    transport's way (``send``)."""

    def __init__(self) -> None:
        self.mine, self.peer = socket.socketpair()
        self.mine.setblocking(False)
        self.fd = self.mine.fileno()
        self.sent: list[bytes] = []

    def send(self, chunk: bytes) -> None:
        self.sent.append(chunk)

    def received(self) -> bytes:
        self.peer.setblocking(False)
        out = b""
        while True:
            try:
                more = self.peer.recv(1 << 20)
            except BlockingIOError:
                return out
            if not more:
                return out
            out += more

    def close(self) -> None:
        self.mine.close()
        self.peer.close()


@pytest.fixture
def pipes() -> Iterator[list[Pipe]]:
    made = [Pipe() for _ in range(3 * MIN_SPLIT)]
    yield made
    for p in made:
        p.close()


def test_many_sockets_each_get_the_chunk_once_shared_with_the_helper(pipes: list[Pipe]) -> None:
    """The loop's thread waits (here) until the helper has taken its job, so the helper writes: every socket gets
    the chunk once, from one thread or the other."""
    sweeper = Sweep()
    helper_writes: list[int] = []
    real = sweep._drain

    def spy(job: sweep._Job, take: Callable[[], int]) -> list[tuple[int, int]]:
        if threading.current_thread().name == "coord-sweep":
            def taking() -> int:
                i = take()
                helper_writes.append(job.fds[i])
                return i
            return real(job, taking)
        deadline = time.monotonic() + 10
        while not job.started and time.monotonic() < deadline:
            time.sleep(0.001)
        return real(job, take)

    sweep._drain = spy  # type: ignore[assignment]
    try:
        sweeper.write(DATA, pipes)
        sweeper.write(DATA, pipes)
    finally:
        sweep._drain = real  # type: ignore[assignment]
        sweeper.close()
    assert all(p.received() == DATA * 2 and p.sent == [] for p in pipes)
    assert sweeper.splits == 2
    assert helper_writes and {p.fd for p in pipes} >= set(helper_writes)


def test_a_helper_the_kernel_runs_late_leaves_the_whole_sweep_to_the_loops_thread(pipes: list[Pipe]) -> None:
    """The helper blocked before it takes its job (as a helper the kernel has not run yet): the loop's thread writes
    every socket and goes on without waiting; the helper, run later, starts nothing of that job."""
    sweeper = Sweep()
    hold = threading.Event()
    real_help = Sweep._help

    def late(jobs: Any, done: Any) -> None:
        hold.wait(10)
        real_help(jobs, done)

    sweeper._help = late  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        sweeper.write(DATA, pipes)
        assert time.monotonic() - started < 5  # did not wait for the held helper
        assert all(p.received() == DATA and p.sent == [] for p in pipes)
        assert sweeper.splits == 0
        hold.set()
        sweeper.write(DATA, pipes)  # the helper now runs: the first job is skipped, this one may be shared
    finally:
        hold.set()
        sweeper.close()
    assert all(p.received() == DATA and p.sent == [] for p in pipes)


def test_what_a_socket_does_not_take_goes_to_its_transport_in_order(pipes: list[Pipe]) -> None:
    """A full socket (EAGAIN), one that takes part of the chunk, and one whose reader is gone: the transport gets
    the rest, so the reader sees the chunk whole, after what was there before."""
    full, partial, gone = pipes[3], pipes[-5], pipes[-1]
    for p in (full, partial):
        p.mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        filler = b""
        while True:
            try:
                filler += b"f" * p.mine.send(b"f" * 1024)
            except BlockingIOError:
                break
        p.filler = filler  # type: ignore[attr-defined]
    big = DATA * 2000  # 90 KB: more than the partial socket has room for once a little is read
    got = partial.peer.recv(len(partial.filler) // 2)  # type: ignore[attr-defined]
    gone.peer.close()
    sweeper = Sweep()
    try:
        sweeper.write(big, pipes)
    finally:
        sweeper.close()
    assert full.sent == [big]
    assert len(partial.sent) == 1 and 0 < len(big) - len(partial.sent[0]) < len(big)
    assert got + partial.received() + partial.sent[0] == partial.filler + big  # type: ignore[attr-defined]
    assert gone.sent == [big]  # the transport meets the error itself and closes the connection
    assert all(p.received() == big and not p.sent for p in pipes if p not in (full, partial, gone))


def test_a_few_sockets_are_written_the_ordinary_way(pipes: list[Pipe]) -> None:
    sweeper = Sweep()
    few = pipes[:MIN_SPLIT - 1]
    sweeper.write(DATA, few)
    assert all(p.sent == [DATA] and p.received() == b"" for p in few)
    assert sweeper.splits == 0 and sweeper._thread is None


def test_only_a_plain_non_blocking_socket_is_written_past_its_transport() -> None:
    async def run() -> tuple[int, int, int]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, plain = await asyncio.open_connection("127.0.0.1", port)
        fd = direct_fd(plain.transport)
        expected = plain.transport.get_extra_info("socket").fileno()
        plain.close()
        await plain.wait_closed()
        server.close()
        await server.wait_closed()
        return fd, expected, direct_fd(object())

    fd, expected, unknown = asyncio.run(run())
    assert fd == expected >= 0 and unknown == -1

    class Tls:
        def get_extra_info(self, name: str) -> object:
            return ssl.create_default_context() if name == "sslcontext" else socket.socket()

    assert direct_fd(Tls()) == -1
    a, b = socket.socketpair()
    with a, b:

        class Blocking:
            def get_extra_info(self, name: str) -> object:
                return a if name == "socket" else None

        assert direct_fd(Blocking()) == -1  # a write to it could wait
        a.setblocking(False)
        assert direct_fd(Blocking()) == a.fileno()


def _ids(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"(?m)^id: (\d+)$", raw.replace(b"\r\n", b"\n"))]


def test_a_hundred_live_streams_get_every_event_once_in_order(live_hub: LiveHub) -> None:
    """Concurrent senders to a hub with 100 open streams: the fan-out's passes are split across two threads, and
    each stream still sees exactly the log's message events, in its order."""
    streams = []
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", live_hub.port), timeout=20)
        s.sendall(f"GET /api/coord/events?kinds=message. HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {live_hub.token(f'S{i}/x')}\r\n\r\n".encode())
        streams.append(s)
    raw = {s: b"" for s in streams}
    sel = selectors.DefaultSelector()
    for s in streams:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    senders, each = 3, 60

    def send_all(k: int) -> None:
        with httpx2.Client(base_url=live_hub.url,
                           headers={"Authorization": f"Bearer {live_hub.token(f'A{k}/x')}"}) as c:
            for i in range(each):
                assert c.post("/api/coord/messages", json={"subject": f"s{k} {i}"}).status_code == 201

    try:
        deadline = time.monotonic() + 20
        while not all(b": connected" in v for v in raw.values()) and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                raw[key.fileobj] += key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
        time.sleep(0.3)  # every stream has gone live and parked
        threads = [threading.Thread(target=send_all, args=(k,)) for k in range(senders)]
        for t in threads:
            t.start()
        want_count = senders * each
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                raw[key.fileobj] += key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
            if all(len(_ids(v)) >= want_count for v in raw.values()) and not any(t.is_alive() for t in threads):
                break
        for t in threads:
            t.join(30)
        admin = {"Authorization": f"Bearer {live_hub.admin_token}"}
        log = httpx2.get(live_hub.url + "/api/coord/audit", params={"kinds": "message.", "limit": 1000},
                         headers=admin).json()
        want = [e["id"] for e in log]
        assert len(want) == want_count
        assert all(_ids(v) == want for v in raw.values())
        metrics = httpx2.get(live_hub.url + "/metrics", headers=admin).text
        split = [line for line in metrics.splitlines() if line.startswith("coord_sse_sweeps_split_total")]
        assert split and float(split[0].split()[1]) >= 1  # the passes did go through the two threads
    finally:
        sel.close()
        for s in streams:
            s.close()


def _drain(pipes: list[Pipe]) -> None:
    for p in pipes:
        p.received()


def _within(seconds: float, run: Callable[[], None]) -> bool:
    """Whether ``run()`` returned (or raised) within ``seconds`` (on a daemon thread, left behind if it hangs)."""
    done = threading.Event()

    def go() -> None:
        try:
            run()
        finally:
            done.set()

    threading.Thread(target=go, daemon=True).start()
    return done.wait(seconds)


def test_a_helper_that_cannot_start_leaves_the_writes_to_the_loops_thread(
        pipes: list[Pipe], monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread to be had (the process is at its thread or pids limit): the sweep writes every socket itself, and
    does not wait for a helper that never ran (the event loop's thread would wait forever)."""
    real = threading.Thread.start
    refused = []

    def refuse(self: threading.Thread) -> None:
        if self.name == "coord-sweep" and not refused:
            refused.append(self)
            raise RuntimeError("can't start new thread")
        real(self)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    sweeper = Sweep()
    errors: list[BaseException] = []

    def twice() -> None:
        for _ in range(2):
            try:
                sweeper.write(DATA, pipes)
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

    try:
        assert _within(10, twice), "the sweep waits forever for a helper that never started"
        assert errors == []
        assert all(p.received() + b"".join(p.sent) == DATA * 2 for p in pipes)
    finally:
        sweeper.close()


def test_a_forked_child_does_not_wait_for_its_parents_helper(pipes: list[Pipe]) -> None:
    """The helper thread does not exist in a forked child: the child's sweep starts its own (or writes alone)."""
    sweeper = Sweep()
    try:
        sweeper.write(DATA, pipes)  # the helper runs, in this process
        _drain(pipes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: forking a process that has threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 3
            try:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a sweep that waits forever is killed by SIGALRM
                signal.alarm(10)
                sweeper.write(DATA, pipes)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child: wait status {status:#x}"
        assert all(p.received() == DATA for p in pipes)
    finally:
        sweeper.close()


def test_a_closed_sweep_starts_no_helper_again(pipes: list[Pipe]) -> None:
    """A fan-out pass after the app's shutdown closed the sweep (one queued just before) is written on the loop's
    thread: no helper thread is started that nothing would ever stop."""
    sweeper = Sweep()
    sweeper.write(DATA, pipes)
    sweeper.close()
    before = {t for t in threading.enumerate() if t.name == "coord-sweep"}
    sweeper.write(DATA, pipes)
    after = {t for t in threading.enumerate() if t.name == "coord-sweep"}
    sweeper.close()
    assert after <= before
    assert all(p.received() + b"".join(p.sent) == DATA * 2 for p in pipes)
