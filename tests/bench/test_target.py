"""Starting a server under test on a port another server takes first (coordhub.bench.target)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx2
import pytest

from coordhub.bench import target


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Another server: answers every GET 200 with a body no hub or ceiling gives."""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b'{"status": "ok", "backend": "foreign"}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign() -> Iterator[int]:
    """A foreign HTTP server on 127.0.0.1; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_from_another_process_on_the_port_is_not_ready(foreign: int) -> None:
    """A /health 200 counts only from the started process: here a sleeper that never listens, so the wait
    runs out instead of returning as if the foreign server were it."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert target.listens(sleeper.pid, foreign) is False
        with pytest.raises(target.NotReady, match="did not answer"):
            target.wait_healthy(f"http://127.0.0.1:{foreign}", sleeper, 1.0, lambda: "")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_ceiling_started_on_a_taken_port_moves_to_another(foreign: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The port found free is taken before the ceiling binds it (as a parallel test's hub can): the ceiling
    exits on it and is started again on another port, and the target names the ceiling, not the other."""
    ports = iter([foreign])
    real = target.free_port
    monkeypatch.setattr(target, "free_port", lambda: next(ports, None) or real())
    ceiling = target.start_ceiling(timeout=60)
    try:
        assert ceiling.url != f"http://127.0.0.1:{foreign}"
        assert httpx2.get(ceiling.url + "/health").json()["backend"] == "memory"
        assert ceiling.proc is not None and target.listens(ceiling.proc.pid, int(ceiling.url.rsplit(":", 1)[1]))
    finally:
        ceiling.stop()
