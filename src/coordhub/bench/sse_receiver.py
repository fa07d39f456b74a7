"""A raw-socket SSE receiver for the push benchmark (issue 15): many streams, one process, no HTTP library.

The Python driver's push scenario reads each stream through an HTTP client
and decodes every event's JSON in the same process that sends the
broadcasts, so at 1,000 subscribers it measures its own queue as much as the
hub. This receiver runs in its **own process**: it opens the streams as
plain non-blocking sockets (one ``GET /api/coord/events`` each, written by
hand), waits on them with ``selectors`` (epoll), and for every chunk that
arrives notes ``time.monotonic()`` against each broadcast subject the chunk
carries (a byte search, no JSON decoding). ``CLOCK_MONOTONIC`` is one clock
for every process of the machine, so the sender's timestamps and these
compare directly.

Protocol with the parent (:func:`spawn`): it prints ``ready <connected>``
once every stream answered its headers (or failed), then reads lines of
subjects to expect on stdin until ``end``, and prints one JSON object:
``{"receipts": {subject: [monotonic seconds, …]}, "failed": N, "samples": […]}``.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

SUBJECT = re.compile(rb'"subject":"([A-Za-z0-9_.:-]{1,200})"')
CHUNK = 65_536


def _request(host: str, port: int, token: str, kinds: str) -> bytes:
    return (f"GET /api/coord/events?kinds={kinds} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode()


def receive(url: str, tokens: list[str], kinds: str = "message.sent", timeout: float = 120.0) -> None:
    """Run the receiver (see the module docstring) until ``end`` on stdin or ``timeout`` seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, dict[str, Any]] = {}
    failed, samples = 0, []
    for token in tokens:
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(_request(host, port, token, kinds))
        s.setblocking(False)
        state[s] = {"head": b"", "open": False, "tail": b""}
        sel.register(s, selectors.EVENT_READ)
    receipts: dict[str, list[float]] = {}
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
        for key, _ in sel.select(1.0):
            now = time.monotonic()
            if key.fd == stdin_fd:
                line = sys.stdin.readline()
                if not line or line.strip() == "end":
                    deadline = 0.0
                continue
            s = by_fd[key.fd]
            st = state[s]
            try:
                data = s.recv(CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                data, st["error"] = b"", str(exc)
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
            for m in SUBJECT.finditer(text):
                if m.end() > old:  # one that ended in the kept tail was counted with the previous read
                    receipts.setdefault(m.group(1).decode(), []).append(now)
            st["tail"] = text[-300:]  # a subject cut across two reads is found in the next one
    for s in list(state):
        s.close()
    sys.stdout.write(json.dumps({"receipts": receipts, "failed": failed, "samples": samples[:5]}) + "\n")
    sys.stdout.flush()


def spawn(url: str, tokens: list[str], kinds: str = "message.sent") -> subprocess.Popen[str]:
    """Start the receiver in its own process; tokens go over stdin (never on a command line)."""
    proc = subprocess.Popen([sys.executable, "-m", "coordhub.bench.sse_receiver", url, kinds],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(tokens) + "\n")
    proc.stdin.flush()
    return proc


def main() -> None:
    """``python -m coordhub.bench.sse_receiver URL KINDS``; the tokens as one JSON line on stdin."""
    tokens = json.loads(sys.stdin.readline())
    receive(sys.argv[1], tokens, sys.argv[2])


if __name__ == "__main__":
    main()
