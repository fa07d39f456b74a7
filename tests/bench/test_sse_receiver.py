"""The raw SSE receiver's kernel receive times (``SO_TIMESTAMPNS``): the moment data reached the socket, not the
moment the receiver got round to reading it."""

from __future__ import annotations

import socket
import time

from coordhub.bench import sse_receiver


def test_a_late_read_still_gets_the_time_the_data_arrived() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    reader = socket.create_connection(listener.getsockname())
    writer, _ = listener.accept()
    try:
        reader.setsockopt(socket.SOL_SOCKET, sse_receiver.SO_TIMESTAMPNS, 1)
        # The kernel turns receive timestamps on for the whole stack when a first socket asks, and may do it
        # a moment later (a deferred switch): until then packets arrive unstamped. Wait for a stamped one.
        for _ in range(200):
            writer.sendall(b"warm-up")
            _, warm, _, _ = reader.recvmsg(sse_receiver.CHUNK, sse_receiver.ANCILLARY)
            if sse_receiver.kernel_time(warm) is not None:
                break
            time.sleep(0.01)
        offset = sse_receiver.realtime_offset()
        before = time.monotonic()
        writer.sendall(b'data: {"subject":"s1"}\n\n')
        after = time.monotonic()
        time.sleep(0.3)  # the receiver is busy elsewhere: it reads late
        data, ancillary, _, _ = reader.recvmsg(sse_receiver.CHUNK, sse_receiver.ANCILLARY)
        read_at = time.monotonic()
        real = sse_receiver.kernel_time(ancillary)
        assert data == b'data: {"subject":"s1"}\n\n'
        assert real is not None, ancillary
        arrived = real - offset  # on the monotonic clock
        slack = 0.005  # the offset between the clocks is read to microseconds; NTP may slew a little meanwhile
        assert before - slack <= arrived <= after + slack  # stamped during the send, on loopback
        assert read_at - arrived >= 0.3 - slack  # not when it was read
    finally:
        for s in (reader, writer, listener):
            s.close()


def test_no_time_without_the_ancillary_item() -> None:
    assert sse_receiver.kernel_time([]) is None
    assert sse_receiver.kernel_time([(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"\0" * 16)]) is None


def test_the_raw_broadcaster_times_each_send_and_stops_at_a_refusal() -> None:
    """``push_raw.broadcast`` writes each POST by hand on one connection, notes when each went to the kernel, reads
    each ``Content-Length`` answer, and raises on a refusal instead of counting it."""
    import threading

    import pytest

    from coordhub.bench import push_raw
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[tuple[float, bytes]] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            for status in (b"201 Created", b"403 Forbidden"):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += reader.readline()
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                got.append((time.monotonic(), head + reader.read(length)))
                conn.sendall(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\n{}")

    server = threading.Thread(target=serve)
    server.start()
    try:
        with pytest.raises(RuntimeError, match="refused: 403"):
            push_raw.broadcast(f"http://127.0.0.1:{listener.getsockname()[1]}", "tok", ["s1", "s2"], 0.0)
    finally:
        server.join(10)
        listener.close()
    assert [b'"subject": "s1"' in r and b"Authorization: Bearer tok" in r for _, r in got] == [True, False]
    assert b'"subject": "s2"' in got[1][1]
