"""A subscriber that never reads its stream must not slow or grow the hub (issue hub-agents §1)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2

from tests.api.test_events import Subscriber
from tests.conftest import LiveHub

N = 1500


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stalled_subscriber_does_not_hold_back_others(live_hub: LiveHub) -> None:
    sender = {"Authorization": f"Bearer {live_hub.token('A/x')}"}
    reader = {"Authorization": f"Bearer {live_hub.token('B/x')}"}
    stalled_token = live_hub.token("C/x")
    # A raw client that asks for the stream and then never reads a byte.
    stalled = socket.create_connection(("127.0.0.1", live_hub.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /api/coord/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stalled_token}\r\n\r\n"
                    .encode())
    healthy = Subscriber(live_hub.url, reader, {"kinds": "message."})
    assert live_hub.proc is not None
    rss_before = _rss_kib(live_hub.proc.pid)
    try:
        pad = "x" * 480  # events carry the subject: ~1 kB each, ~1.5 MB in all, far beyond socket buffers
        with httpx2.Client(base_url=live_hub.url, headers=sender) as c:
            for i in range(N):
                assert c.post("/api/coord/messages", json={"subject": f"m{i} {pad}"}).status_code == 201
        got = healthy.take(N, timeout=30)
        assert [e["payload"]["subject"].split()[0] for e in got] == [f"m{i}" for i in range(N)]
        grown_mib = (_rss_kib(live_hub.proc.pid) - rss_before) / 1024
        assert grown_mib < 40, f"hub RSS grew {grown_mib:.1f} MiB while one subscriber stalled"
        r = httpx2.get(live_hub.url + "/health", timeout=5)
        assert r.status_code == 200
    finally:
        healthy.close()
        stalled.close()
