"""A raw-socket SSE receiver for the push benchmark (issue 15): many streams, one process, no HTTP library.

The Python driver's push scenario reads each stream through an HTTP client
and decodes every event's JSON in the same process that sends the
broadcasts, so at 1,000 subscribers it measures its own queue as much as the
hub. This receiver runs in its **own process**: it opens the streams as
plain non-blocking sockets (one ``GET /api/coord/events`` each, written by
hand), waits on them with ``selectors`` (epoll), and for every chunk that
arrives notes two times against each broadcast subject the chunk carries (a
byte search, no JSON decoding):

* the **kernel's receive time**: each socket has ``SO_TIMESTAMPNS`` set, so
  ``recvmsg`` hands back, as ancillary data, the time the kernel queued the
  chunk's last segment on the socket (on loopback: within microseconds of the
  hub's ``write``). It does not depend on when this process gets round to
  the socket, so it measures the hub and not this receiver, which shares
  the machine's cores with the hub and reads its 1,000 sockets one after
  another;
* the **receiver's clock**: ``time.monotonic()`` when this process got to
  the socket (the figure the benchmark reported before it had the kernel's).

The kernel's time is ``CLOCK_REALTIME``; it is turned into
``CLOCK_MONOTONIC`` (one clock for every process of the machine, so the
sender's timestamps and these compare directly) by the offset between the
two clocks, read once at start (:func:`realtime_offset`). When two subjects
arrive in one read, both get the time of the read's last segment (the
kernel keeps one time per read), which can only make a receipt look later.

Protocol with the parent (:func:`spawn`): it prints ``ready <connected>``
once every stream answered its headers (or failed), then reads lines of
subjects to expect on stdin until ``end``, and prints one JSON object:
``{"receipts": {subject: [monotonic seconds, …]}, "kernel": {subject:
[monotonic seconds or null, …]}, "failed": N, "samples": […]}``; the two
lists of a subject are in the same order (one entry per receipt), and an
entry of ``kernel`` is null when the kernel gave no time.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import struct
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

SUBJECT = re.compile(rb'"subject":"([A-Za-z0-9_.:-]{1,200})"')
CHUNK = 65_536
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS, include/uapi/asm-generic/socket.h); Python's socket module lacks it
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")  # struct timespec on a 64-bit Linux: tv_sec, tv_nsec
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size)


def realtime_offset(samples: int = 50) -> float:
    """``CLOCK_REALTIME - CLOCK_MONOTONIC`` in seconds, from the tightest of ``samples`` bracketed readings."""
    best = (float("inf"), 0.0)
    for _ in range(samples):
        before = time.monotonic_ns()
        real = time.time_ns()
        after = time.monotonic_ns()
        best = min(best, (after - before, (real - (before + after) / 2) / 1e9))
    return best[1]


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The ``CLOCK_REALTIME`` seconds of a ``recvmsg``'s ``SCM_TIMESTAMPNS`` ancillary item; None when absent."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            return float(sec + nsec / 1e9)
    return None


def _request(host: str, port: int, token: str, kinds: str) -> bytes:
    return (f"GET /api/coord/events?kinds={kinds} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode()


def receive(url: str, tokens: list[str], kinds: str = "message.sent", timeout: float = 120.0,
            settle: float = 0.0) -> None:
    """Run the receiver (see the module docstring) until ``end`` on stdin or ``timeout`` seconds; ``settle``:
    seconds to wait, once every stream is open, between being woken by data and reading it (see :func:`spawn`)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, dict[str, Any]] = {}
    failed, samples = 0, []
    for token in tokens:
        s = socket.create_connection((host, port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.sendall(_request(host, port, token, kinds))
        s.setblocking(False)
        state[s] = {"head": b"", "open": False, "tail": b""}
        sel.register(s, selectors.EVENT_READ)
    receipts: dict[str, list[float]] = {}
    kernel: dict[str, list[float | None]] = {}
    offset = realtime_offset()
    by_fd = {s.fileno(): s for s in state}
    stdin_fd = sys.stdin.fileno()
    waiting = len(state)
    sel.register(sys.stdin, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    announced = False
    while time.monotonic() < deadline:
        if not announced and waiting == 0:
            sys.stdout.write(f"ready {len(state) - failed}\n")
            sys.stdout.flush()
            announced = True
        ready = sel.select(1.0)
        if ready and announced and settle:
            time.sleep(settle)
            ready = sel.select(0)  # everything that arrived meanwhile, each read keeping its own kernel time
        for key, _ in ready:
            now = time.monotonic()
            if key.fd == stdin_fd:
                line = sys.stdin.readline()
                if not line or line.strip() == "end":
                    deadline = 0.0
                continue
            s = by_fd[key.fd]
            st = state[s]
            try:
                data, ancillary, _, _ = s.recvmsg(CHUNK, ANCILLARY)
            except BlockingIOError:
                continue
            except OSError as exc:
                data, ancillary, st["error"] = b"", [], str(exc)
            if not data:
                sel.unregister(s)
                s.close()
                if not st["open"]:
                    failed += 1
                    waiting -= 1
                    samples.append(st.get("error") or st["head"][:200].decode(errors="replace"))
                continue
            if not st["open"]:
                st["head"] += data
                if b"\r\n\r\n" not in st["head"] or b": connected" not in st["head"]:
                    if st["head"].startswith(b"HTTP/1.1 ") and not st["head"].startswith(b"HTTP/1.1 200"):
                        failed += 1
                        waiting -= 1
                        samples.append(st["head"][:200].decode(errors="replace"))
                        sel.unregister(s)
                        s.close()
                    continue
                st["open"] = True
                waiting -= 1
                data = st["head"].split(b"\r\n\r\n", 1)[1]
            old = len(st["tail"])
            text = st["tail"] + data
            real = kernel_time(ancillary)
            arrived = None if real is None else real - offset
            for m in SUBJECT.finditer(text):
                if m.end() > old:  # one that ended in the kept tail was counted with the previous read
                    subject = m.group(1).decode()
                    receipts.setdefault(subject, []).append(now)
                    kernel.setdefault(subject, []).append(arrived)
            st["tail"] = text[-300:]  # a subject cut across two reads is found in the next one
    for s in list(state):
        s.close()
    report = {"receipts": receipts, "kernel": kernel, "failed": failed, "samples": samples[:5]}
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def spawn(url: str, tokens: list[str], kinds: str = "message.sent", settle: float = 0.0) -> subprocess.Popen[str]:
    """Start the receiver in its own process; tokens go over stdin (never on a command line).

    ``settle`` (seconds): once woken by a chunk, wait that long before
    reading, so that reading a broadcast's 1,000 chunks does not take a core
    from the hub while it is still writing them (on a two-core machine with
    ``--workers 2`` the receiver otherwise competes with both workers). The
    kernel's receive times, the headline, do not move with it (each chunk is
    read on its own: broadcasts are far further apart); the receiver's own
    clock then includes the wait.
    """
    proc = subprocess.Popen([sys.executable, "-m", "coordhub.bench.sse_receiver", url, kinds, str(settle)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(tokens) + "\n")
    proc.stdin.flush()
    return proc


def main() -> None:
    """``python -m coordhub.bench.sse_receiver URL KINDS [SETTLE]``; the tokens as one JSON line on stdin."""
    tokens = json.loads(sys.stdin.readline())
    receive(sys.argv[1], tokens, sys.argv[2], settle=float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)


if __name__ == "__main__":
    main()
