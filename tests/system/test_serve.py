"""``coord serve`` as a user meets it: start-up, refusals, configuration and shutdown (contract §2.2, §2.9).

Every test runs the real command (``python -m coordhub serve …``) as a child
process. Checked: the first start creates the data dir and a 0600
``admin.token`` and says where it is, later starts reuse it; each start-up
failure (port in use, database unreachable or unsupported, data dir not
writable, ``--no-auth`` on a public interface) exits 1 with exactly one line
on stderr and no traceback; ``--no-auth`` warns loudly; ``COORD_*``
variables stand in for flags; SIGTERM and SIGINT shut the hub down cleanly
(exit 0) with its SQLite data intact.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from coordhub.bench.target import wait_healthy
from tests.conftest import free_port


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any ``COORD_*`` variable, plus ``extra``.

    ``XDG_DATA_HOME`` points into ``tmp_path`` so a start without a data dir
    never touches the real home directory.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env.update(extra)
    return env


def serve_cmd(*args: str) -> list[str]:
    """The command line of ``coord serve`` with ``args``."""
    return [sys.executable, "-m", "coordhub", "serve", *args]


def _default_sigint() -> None:
    # A shell's background job starts with SIGINT ignored and Popen passes that on;
    # restore the default so SIGINT reaches the hub as Ctrl-C in a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Served:
    """A running ``coord serve`` child; its stdout and stderr go to one file."""

    def __init__(self, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.output = tmp_path / f"serve-{port}-{time.monotonic_ns()}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(serve_cmd(*args), stdout=out, stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=_default_sigint)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until /health answers 200; fail with the output if the process exits or never answers."""
        wait_healthy(self.url, self.proc, timeout, self.text)

    def text(self) -> str:
        """Everything the process printed so far."""
        return self.output.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (if still running) and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@contextmanager
def serving(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            port: int | None = None) -> Iterator[Served]:
    """Run ``coord serve --port PORT args`` until the block ends (then SIGKILL if it still runs)."""
    port = port or free_port()
    s = Served(tmp_path, ("--port", str(port), *args), env or clean_env(tmp_path), port)
    try:
        s.wait_ready()
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
        s.proc.wait(timeout=30)


def run_serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``coord serve args`` expecting it to give up on its own; return how it ended."""
    return subprocess.run(serve_cmd(*args), capture_output=True, text=True, timeout=60,
                          env=env or clean_env(tmp_path))


def assert_one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1 with exactly one line on stderr, no traceback, mentioning every needle; return the line."""
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{p.stderr}"
    assert p.returncode == 1, (p.returncode, p.stderr)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def admin(data_dir: Path) -> dict[str, str]:
    """Headers carrying the admin token the hub wrote into ``data_dir``."""
    return {"Authorization": f"Bearer {(data_dir / 'admin.token').read_text().strip()}"}


# ---- (a) first start, second start ---------------------------------------------------------------

def test_first_start_creates_data_dir_and_private_admin_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        token_file = data_dir / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert f"admin token: {token_file} (new)" in hub.text()
        assert httpx2.get(hub.url + "/api/coord/tokens", headers=admin(data_dir)).status_code == 200


def test_second_start_reuses_the_admin_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        first = (data_dir / "admin.token").read_text()
        hub.stop()
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        assert (data_dir / "admin.token").read_text() == first
        assert f"admin token: {data_dir / 'admin.token'}" in hub.text()
        assert "(new)" not in hub.text()
        assert httpx2.get(hub.url + "/api/coord/tokens", headers=admin(data_dir)).status_code == 200


# ---- (b)-(d), (h) start-up failures: exit 1, one line, no traceback ------------------------------

def test_port_held_by_a_plain_socket_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = str(blocker.getsockname()[1])
        p = run_serve(tmp_path, "--port", port, "--data-dir", str(tmp_path / "data"))
    assert_one_line_error(p, port)


def test_port_held_by_another_hub_is_a_one_line_error(tmp_path: Path) -> None:
    with serving(tmp_path, "--data-dir", str(tmp_path / "first")) as first:
        port = first.url.rsplit(":", 1)[1]
        p = run_serve(tmp_path, "--port", port, "--data-dir", str(tmp_path / "second"))
        assert_one_line_error(p, port)
        assert httpx2.get(first.url + "/health").status_code == 200  # the first hub is unharmed


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    p = run_serve(tmp_path, "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
                  "--database-url", "postgresql://postgres@127.0.0.1:1/x")
    assert_one_line_error(p, "database")


def test_unsupported_database_scheme_is_a_one_line_error(tmp_path: Path) -> None:
    p = run_serve(tmp_path, "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
                  "--database-url", "mysql://user@127.0.0.1/coord")
    assert_one_line_error(p, "mysql://")


def test_unwritable_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    # Tests run as root, which chmod does not stop; a path under a regular file stops everyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    data_dir = blocker / "data"
    p = run_serve(tmp_path, "--port", str(free_port()), "--data-dir", str(data_dir))
    assert_one_line_error(p, str(data_dir))


# ---- (e) --no-auth ---------------------------------------------------------------------------------

def test_no_auth_on_a_public_interface_is_refused(tmp_path: Path) -> None:
    p = run_serve(tmp_path, "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
                  "--no-auth", "--host", "0.0.0.0")
    assert_one_line_error(p, "--no-auth", "--allow-remote-no-auth")
    assert not (tmp_path / "data").exists(), "a refused start must not create the data dir"


def test_no_auth_on_a_public_interface_starts_when_explicitly_allowed(tmp_path: Path) -> None:
    with serving(tmp_path, "--data-dir", str(tmp_path / "data"), "--no-auth", "--host", "0.0.0.0",
                 "--allow-remote-no-auth") as hub:
        assert "WARNING" in hub.text() and "NO AUTHENTICATION" in hub.text()


def test_no_auth_on_loopback_starts_with_a_loud_warning(tmp_path: Path) -> None:
    with serving(tmp_path, "--data-dir", str(tmp_path / "data"), "--no-auth") as hub:
        assert "WARNING" in hub.text() and "NO AUTHENTICATION" in hub.text()
        r = httpx2.get(hub.url + "/api/coord/locks")  # no token needed
        assert r.status_code == 200, r.text


# ---- (f) shutdown by signal ------------------------------------------------------------------------

def send_message(url: str, headers: dict[str, str]) -> str:
    """Send one direct message; return its id."""
    r = httpx2.post(url + "/api/coord/messages", headers=headers,
                    json={"to_session": "SIG/claude-main", "subject": "before the signal", "body": "keep me"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_cleanly_and_data_survives(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        message_id = send_message(hub.url, admin(data_dir))
        code = hub.stop(sig)
        first_run = hub.text()
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        r = httpx2.get(f"{hub.url}/api/coord/messages/{message_id}", headers=admin(data_dir))
        assert r.status_code == 200 and r.json()["body"] == "keep me", r.text
    assert "Traceback" not in first_run, first_run
    assert code == 0, f"{sig.name} ended coord serve with exit code {code}, not 0:\n{first_run}"


# ---- (g) COORD_* environment variables -------------------------------------------------------------

def test_environment_variables_stand_in_for_flags(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "from-env"
    env = clean_env(tmp_path, COORD_PORT=str(port), COORD_DATA_DIR=str(data_dir))
    s = Served(tmp_path, (), env, port)  # no flags at all
    try:
        s.wait_ready()
        assert (data_dir / "admin.token").exists()
        assert f"127.0.0.1:{port}" in s.text()
        assert httpx2.get(s.url + "/api/coord/tokens", headers=admin(data_dir)).status_code == 200
    finally:
        s.stop(signal.SIGKILL)


def test_a_shutdown_ends_open_event_streams_cleanly_without_waiting_for_them(tmp_path: Path) -> None:
    # Before, a shutdown waited its whole grace (5 s) for a client of /api/coord/events to leave, then cut the
    # stream and logged "Exception in ASGI application" (found on the dashboard): each stream now ends at once
    # with `: end: shutdown` and the end of its chunked body, so its client reconnects (to another hub, or later)
    data_dir = tmp_path / "data"
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        with httpx2.stream("GET", f"{hub.url}/api/coord/events", headers=admin(data_dir),
                           timeout=httpx2.Timeout(30.0)) as r:
            assert r.status_code == 200
            chunks = r.iter_raw()
            hub.proc.send_signal(signal.SIGTERM)
            received = b"".join(chunks)  # raises if the stream is cut instead of ended
        code = hub.stop()
        output = hub.text()
    assert received.endswith(b": end: shutdown\n\n"), received[-200:]
    assert code == 0 and "Traceback" not in output and "ERROR" not in output, output
    assert "graceful shutdown exceeded" not in output, output


def test_a_shutdown_answers_a_waiting_long_poll_at_once(tmp_path: Path) -> None:
    # A `GET /messages/wait` (and the orchestrator's long-polls) waiting when the hub is told to stop answers what
    # it has (nothing: []) at once, as at the end of its wait, instead of holding the shutdown for its grace
    import threading

    data_dir = tmp_path / "data"
    answers: list[httpx2.Response | BaseException] = []
    with serving(tmp_path, "--data-dir", str(data_dir)) as hub:
        def wait() -> None:
            try:
                answers.append(httpx2.get(f"{hub.url}/api/coord/messages/wait", params={"timeout": 60},
                                          headers=admin(data_dir), timeout=30))
            except BaseException as exc:  # noqa: BLE001 — the assertion below shows it
                answers.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 20
        while "coord_streams_open 1.0" not in httpx2.get(f"{hub.url}/metrics", headers=admin(data_dir)).text:
            assert time.monotonic() < deadline, "the long-poll never started waiting"
            time.sleep(0.05)
        hub.proc.send_signal(signal.SIGTERM)
        waiter.join(timeout=30)
        code = hub.stop()
        output = hub.text()
    [answer] = answers
    assert isinstance(answer, httpx2.Response) and answer.status_code == 200 and answer.json() == [], answer
    assert code == 0 and "ERROR" not in output and "graceful shutdown exceeded" not in output, output
