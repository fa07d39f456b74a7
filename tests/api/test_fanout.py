"""The one-pass SSE fan-out (issue 15): every subscriber gets every event once, in order; slow ones catch up."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import httpx2
import pytest

from coordhub.api import fanout, wire
from coordhub.api.fanout import Fanout
from coordhub.bench.sse_receiver import ANCILLARY, SO_TIMESTAMPNS, kernel_time
from coordhub.core import events
from coordhub.store.base import Row
from tests.api.test_events import Subscriber
from tests.conftest import LiveHub


def _row(i: int, kind: str = "message.sent") -> Row:
    return {"id": i, "kind": kind, "payload": "{}"}


def _render(row: Row) -> bytes:
    return f"id: {row['id']}\n\n".encode()


def test_live_subscriber_gets_kept_frames_in_order_rendered_once() -> None:
    async def run() -> None:
        rendered: list[int] = []

        def render(row: Row) -> bytes:
            rendered.append(row["id"])
            return _render(row)

        fan = Fanout(render, 15.0)
        odd = fan.join(lambda r: r["id"] % 2 == 1, 0)
        every = fan.join(lambda r: True, 0)
        for sub in (odd, every):
            sub.go_live()
        fan.publish([_row(1), _row(2), _row(3)])
        fan.publish([_row(4)])
        assert odd.take() == [_render(_row(1)), _render(_row(3))]
        assert odd.sent == 4  # the filtered-out 4 counts as passed
        assert every.take() == [_render(_row(i)) for i in (1, 2, 3, 4)]
        assert sorted(rendered) == [1, 2, 3, 4]  # once per event, not per subscriber
        fan.leave(odd)
        fan.leave(every)
        assert len(fan) == 0

    asyncio.run(run())


def test_a_subscriber_past_its_queue_bound_drops_to_catch_up_at_its_cursor() -> None:
    async def run() -> None:
        fan = Fanout(_render, 15.0)
        sub = fan.join(lambda r: True, 0)
        sub.go_live()
        fan.publish([_row(1)])
        assert sub.take() == [_render(_row(1))]  # handed to the connection: sent = 1
        fan.publish([_row(i) for i in range(2, fanout.LIVE_FRAMES + 3)])
        assert fan.drops == 1
        assert sub.behind and sub.frames == [] and sub.sent == 1  # it will read 2.. from the log itself
        fan.publish([_row(fanout.LIVE_FRAMES + 3)])
        assert sub.frames == [] and sub.sent == 1  # nothing queued while behind
        fan.leave(sub)

    asyncio.run(run())


def test_a_direct_write_that_must_wait_hands_the_stream_to_its_task() -> None:
    """Parked: the fan-out writes itself; a send that waits for the socket goes on as a task, later frames queue."""
    async def run() -> None:
        written: list[bytes] = []
        full = asyncio.Event()  # the socket's buffer: set = room again

        async def send(message: dict[str, object]) -> None:  # an ASGI send under flow control, as uvicorn's
            if not full.is_set():
                await full.wait()
            body = message["body"]
            assert isinstance(body, bytes)
            written.append(body)

        fan = Fanout(_render, 15.0)
        sub = fan.join(lambda r: True, 0, send)
        sub.go_live()
        full.set()
        parked = asyncio.ensure_future(sub.wait())
        await asyncio.sleep(0)
        assert sub.parked
        fan.publish([_row(1)])  # written at once, in the publish loop: the stream's task is not woken
        assert written == [_render(_row(1))] and sub.sent == 1 and not parked.done()
        full.clear()
        fan.publish([_row(2)])  # the send must wait: it goes on as a task, and the stream's task is woken
        assert sub.inflight is not None
        fan.publish([_row(3)])  # queued for the stream's task, behind the write in flight
        assert sub.frames == [_render(_row(3))]
        await parked
        full.set()
        await sub.inflight
        assert written == [_render(_row(i)) for i in (1, 2)]
        assert sub.take() == [_render(_row(3))] and sub.sent == 3
        fan.leave(sub)

    asyncio.run(run())


def test_idle_stream_is_pinged_by_the_shared_timer() -> None:
    async def run() -> None:
        fan = Fanout(_render, 0.3)
        sub = fan.join(lambda r: True, 0)
        sub.go_live()
        await asyncio.wait_for(sub.wait(), 5)  # woken by the one ping timer, not by a timer of its own
        assert sub.ping
        fan.leave(sub)
        fan.close()

    asyncio.run(run())


def _read_slowly(port: int, token: str, want: int, got: list[str], go: threading.Event, done: threading.Event) -> None:
    """A raw SSE client with a tiny receive buffer that reads nothing until ``go``, then reads in small sips."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/coord/events?kinds=message. HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
              .encode())
    go.wait(120)  # meanwhile this stream's socket fills up and its live queue overflows
    buf = b""
    s.settimeout(60)
    try:
        while len(got) < want:
            chunk = s.recv(2048)
            if not chunk:
                return
            buf += chunk
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        got.append(json.loads(line[6:])["payload"]["subject"].split()[0])
    finally:
        s.close()
        done.set()


def _audit_subjects(hub: LiveHub) -> list[str]:
    """The message subjects' first words in the log's order (the order every stream must follow)."""
    out: list[str] = []
    after = 0
    admin = {"Authorization": f"Bearer {hub.admin_token}"}
    while True:
        page = httpx2.get(hub.url + "/api/coord/audit", params={"after": after, "limit": 1000, "kinds": "message."},
                          headers=admin).json()
        if not page:
            return out
        out += [e["payload"]["subject"].split()[0] for e in page]
        after = page[-1]["id"]


def test_streams_dropped_to_catch_up_get_every_event_once_in_order(tmp_path: Path) -> None:
    """Concurrent senders; a fast reader and one that stalls, then reads in sips: both see the log exactly.

    The hub's live-queue bound is lowered to 2 frames (a ``sitecustomize`` on
    the hub's path), so that every group commit of three or more messages
    drops the live streams to catch-up, over and over, racing with the
    publishes; at the real bound (1,000) the kernel's socket buffers, which
    grow to megabytes on loopback, absorb any test of reasonable length.
    """
    senders, each = 6, 250
    n = senders * each
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text("import coordhub.api.fanout as f\nf.LIVE_FRAMES = 2\n")
    path = os.pathsep.join(p for p in (str(patch), os.environ.get("PYTHONPATH", "")) if p)
    live_hub = LiveHub(tmp_path / "hub", env={"PYTHONPATH": path}).start()
    fast = Subscriber(live_hub.url, {"Authorization": f"Bearer {live_hub.token('B/x')}"}, {"kinds": "message."})
    got: list[str] = []
    go, done = threading.Event(), threading.Event()
    reader = threading.Thread(target=_read_slowly, args=(live_hub.port, live_hub.token("C/x"), n, got, go, done),
                              daemon=True)
    reader.start()
    time.sleep(0.5)  # the slow stream is open (and live) before the first send

    def send_all(k: int, token: str) -> None:
        with httpx2.Client(base_url=live_hub.url, headers={"Authorization": f"Bearer {token}"}) as c:
            for i in range(each):
                assert c.post("/api/coord/messages", json={"subject": f"s{k}m{i} {'x' * 200}"}).status_code == 201

    threads = [threading.Thread(target=send_all, args=(k, live_hub.token(f"A{k}/x"))) for k in range(senders)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        go.set()
        want = _audit_subjects(live_hub)
        assert len(want) == n
        assert [e["payload"]["subject"].split()[0] for e in fast.take(n, timeout=30)] == want
        assert done.wait(90)
        assert got == want
        drops = httpx2.get(live_hub.url + "/metrics", headers={"Authorization": f"Bearer {live_hub.admin_token}"})
        dropped = [line for line in drops.text.splitlines() if line.startswith("coord_sse_catch_up_drops_total")]
        assert dropped and float(dropped[0].split()[1]) >= 1  # streams did go through catch-up
    finally:
        go.set()
        fast.close()
        live_hub.stop()


class _Transport:
    """What a :class:`~coordhub.api.wire.Wire` uses of uvicorn's cycle and transport; records what is written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.transport = self
        self.flow = self
        self.write_paused = False  # flow control: the socket is backed up
        self.buffered = 0  # bytes the transport holds unwritten (below the high-water mark unless write_paused)
        self.disconnected = self.response_complete = False

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 1 << 17 if self.write_paused else self.buffered

    def write(self, data: bytes) -> None:
        assert not self.write_paused, "written while backed up"
        self.chunks.append(data)


class _Counted(events.Filter):
    """A stream filter that counts its calls."""

    __slots__ = ("calls",)

    def __init__(self, viewer: str, kinds: tuple[str, ...] = ()) -> None:
        super().__init__(viewer, False, kinds)
        self.calls = 0

    def __call__(self, row: Row) -> bool:
        self.calls += 1
        return super().__call__(row)


def _event(i: int, kind: str = "message.sent", target: str | None = "*", by: str = "A") -> Row:
    return {"id": i, "kind": kind, "target": target, "session_id": by, "project_key": None, "payload": "{}"}


def test_one_event_reaches_each_open_wire_once_its_filter_decided_once_per_subscription() -> None:
    """The publish loop's own path (one event, parked subscribers on wires): each subscriber gets exactly the
    events it may see and asked for, once, in order; a public event is filtered once per distinct subscription,
    a private one per subscriber; a backed-up wire gets nothing written and its frames queue for its task."""
    async def run() -> None:
        fan = Fanout(_render, 15.0)
        wires = {name: _Transport() for name in ("B", "C", "D", "E")}
        keeps = {"B": _Counted("B", ("message.",)), "C": _Counted("C", ("message.",)),
                 "D": _Counted("D", ("message.",)), "E": _Counted("E", ("lease.",))}
        subs = {name: fan.join(keeps[name], 0, None, wire.Wire(wires[name])) for name in wires}
        parked = []
        for sub in subs.values():
            sub.go_live()
            parked.append(asyncio.ensure_future(sub.wait()))
        await asyncio.sleep(0)
        fan.publish([_event(1)])  # public, to everyone
        fan.publish([_event(2, target="C")])  # a direct message from A to C: only C may see it
        fan.publish([_event(3, kind="lease.granted")])
        wires["D"].write_paused = True
        fan.publish([_event(4)])
        framed = {i: wire.chunk(_render(_event(i))) for i in (1, 2, 3, 4)}
        assert wires["B"].chunks == [framed[1], framed[4]]
        assert wires["C"].chunks == [framed[1], framed[2], framed[4]]
        assert wires["D"].chunks == [framed[1]]  # 4 was not written: the socket is backed up
        assert wires["E"].chunks == [framed[3]]
        assert subs["D"].frames == [_render(_event(4))] and subs["D"].sent == 3  # queued for its woken task
        assert all(subs[name].sent == 4 for name in "BCE")
        # the three "message." subscriptions share one decision per public event (1 and 3: one call among them;
        # 4: B's and C's, then D's in offer as its wire is backed up), and each decides the private one itself
        assert keeps["B"].calls + keeps["C"].calls + keeps["D"].calls == 2 + 3 + 2
        await parked[2]  # D's task was woken to send what is queued
        assert not any(p.done() for i, p in enumerate(parked) if i != 2)  # the others were never woken
        for sub in subs.values():
            fan.leave(sub)

    asyncio.run(run())


def _stamped_read(s: socket.socket, until: bytes) -> tuple[bytes, float | None]:
    """Read ``s`` until ``until`` has arrived; the bytes and the kernel's receive time of the read that ended it."""
    buf, stamp = b"", None
    while until not in buf:
        data, ancillary, _, _ = s.recvmsg(65_536, ANCILLARY)
        assert data, f"connection closed; got {buf!r}"
        buf += data
        stamp = kernel_time(ancillary)
    return buf, stamp


def test_a_sender_is_answered_before_its_event_is_written_to_the_streams(live_hub: LiveHub) -> None:
    """The fan-out's pass is queued two hops after the batch's events, behind the handlers its answers resume:
    the send's response leaves the hub before its frame goes to any of the open streams.

    Judged by the kernel's receive times on loopback sockets (the hub writes each one with its own ``write``,
    so their order is the order the hub wrote them in)."""
    token = live_hub.token("A/x")
    streams = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", live_hub.port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.sendall(f"GET /api/coord/events?kinds=message. HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {live_hub.token(f'S{i}/x')}\r\n\r\n".encode())
        _stamped_read(s, b": connected")
        streams.append(s)
    sender = socket.create_connection(("127.0.0.1", live_hub.port), timeout=20)
    sender.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for _ in range(50):  # receive timestamps may start a moment after the first socket asks for them
            sender.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            if _stamped_read(sender, b"}")[1] is not None:
                break
        time.sleep(0.3)  # every stream has gone live and parked
        body = json.dumps({"subject": "ordered", "body": "x"}).encode()
        sender.sendall(b"POST /api/coord/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                       + body)
        answer, answered = _stamped_read(sender, b'"ordered"')
        assert answer.startswith(b"HTTP/1.1 201")
        frames = [_stamped_read(s, b'"ordered"') for s in streams]
        assert answered is not None and all(t is not None for _, t in frames)
        assert answered < min(t for _, t in frames if t is not None), (answered, sorted(t for _, t in frames))
    finally:
        sender.close()
        for s in streams:
            s.close()


def test_a_failing_deferred_pass_is_logged_as_a_bus_listener_failure(caplog: pytest.LogCaptureFixture) -> None:
    def broken(row: Row) -> bytes:
        raise RuntimeError("render failed")

    async def run() -> None:
        fan = Fanout(broken, 15.0)
        sub = fan.join(lambda r: True, 0)
        sub.go_live()
        fan.publish_soon([_row(1)])
        for _ in range(3):  # the pass runs two hops later
            await asyncio.sleep(0)
        fan.leave(sub)

    with caplog.at_level(logging.ERROR, logger="coordhub.bus"):
        asyncio.run(run())
    assert [r.getMessage() for r in caplog.records if r.name == "coordhub.bus"] == ["event bus listener failed"]


def test_a_wire_holding_unwritten_bytes_gets_its_frame_through_the_subscribers_own_path_in_order() -> None:
    """The pass writes straight to a wire only when its transport holds nothing unwritten (Wire.clear); one with
    bytes waiting below the high-water mark still gets the frame at once, in order, through Subscriber.offer."""
    async def run() -> None:
        fan = Fanout(_render, 15.0)
        plain, waiting = _Transport(), _Transport()
        waiting.buffered = 10
        subs = [fan.join(events.Filter(name, False, ("message.",)), 0, None, wire.Wire(t))
                for name, t in (("B", plain), ("C", waiting))]
        parked = []
        for sub in subs:
            sub.go_live()
            parked.append(asyncio.ensure_future(sub.wait()))
        await asyncio.sleep(0)
        assert wire.Wire(plain).clear() and not wire.Wire(waiting).clear()
        fan.publish([_event(1)])
        fan.publish([_event(2)])
        framed = [wire.chunk(_render(_event(i))) for i in (1, 2)]
        assert plain.chunks == framed and waiting.chunks == framed
        assert [sub.sent for sub in subs] == [2, 2] and not any(sub.frames for sub in subs)
        for sub in subs:
            fan.leave(sub)
        for p in parked:
            p.cancel()

    asyncio.run(run())


def test_equal_subscriptions_share_one_filter_object_while_any_is_open() -> None:
    """join makes one object of equal ``asked`` (a publish decides by its identity); leave lets it go with its
    last subscriber, and a second leave of one subscriber changes nothing."""
    async def run() -> None:
        fan = Fanout(_render, 15.0)
        a = fan.join(events.Filter("B", False, ("message.",)), 0)
        b = fan.join(events.Filter("C", False, ("message.",)), 0)
        c = fan.join(events.Filter("D", False, ("lease.",)), 0)
        assert a.asked is b.asked and a.asked is not c.asked
        fan.leave(a)
        fan.leave(a)
        d = fan.join(events.Filter("E", False, ("message.",)), 0)
        assert d.asked is b.asked  # b still holds it: the second leave of a did not drop the count to zero
        for sub in (b, c, d):
            fan.leave(sub)
        assert not fan._asked

    asyncio.run(run())
