"""The git guard against a hub from before ``POST /locks/conflicts`` (review r2): it asks the old way, one path per
``GET /locks/conflicts``, and refuses what yesterday's guard refused. The 405 used to count as "the hub could not be
asked", so the default ``COORD_HOOK_FAIL_MODE=open`` accepted a commit touching another session's leased file.

The old hub is the live hub behind a loopback HTTP proxy that answers 405 (as a hub without the route does) for
``POST /api/coord/locks/conflicts``, and with ``old_get`` off for the ``GET`` too.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from coordhub.guard import run
from tests.guard.conftest import B, Fleet

CONFLICTS = "/api/coord/locks/conflicts"


class OldHub:
    """A proxy to ``target`` that has no ``POST /locks/conflicts`` (nor the ``GET`` unless ``old_get``)."""

    def __init__(self, target: str, old_get: bool = True, delay: float = 0.0) -> None:
        self.target = urlsplit(target)
        self.old_get = old_get
        self.delay = delay  # seconds each GET /locks/conflicts waits before it is answered
        self.seen: list[tuple[str, str, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                if path == CONFLICTS and (self.command == "POST" or not outer.old_get):
                    outer.seen.append((self.command, path, 405))
                    data = b'{"detail":"Method Not Allowed"}'
                    self.send_response(405)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if path == CONFLICTS:
                    time.sleep(outer.delay)
                conn = http.client.HTTPConnection(outer.target.hostname or "127.0.0.1", outer.target.port, timeout=10)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                finally:
                    conn.close()
                outer.seen.append((self.command, path, r.status))
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def old_hub(fleet: Fleet) -> Iterator[OldHub]:
    proxy = OldHub(fleet.hub.url)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_leased_path_is_refused_by_asking_an_old_hub_per_path(fleet: Fleet, old_hub: OldHub, mode: str) -> None:
    lease = fleet.claim(fleet.b, "lib/", "hands off")
    fleet.repo.change("lib/old.py")
    fleet.repo.change("README.md")
    before = fleet.repo.head()
    r = fleet.repo.commit(env={"COORD_URL": old_hub.url, "COORD_HOOK_FAIL_MODE": mode})
    assert r.code == 1 and fleet.repo.head() == before, r
    assert f"lib/old.py: leased by {B}" in r.err and lease["id"] in r.err, r.err
    assert "README.md" not in r.err and "accepted unchecked" not in r.err, r.err
    assert ("POST", CONFLICTS, 405) in old_hub.seen
    assert sorted(s for m, p, s in old_hub.seen if (m, p) == ("GET", CONFLICTS)) == [200, 200], old_hub.seen


def test_free_paths_are_accepted_by_an_old_hub(fleet: Fleet, old_hub: OldHub) -> None:
    fleet.claim(fleet.b, "src/", "elsewhere")
    fleet.repo.change("lib/old.py")
    r = fleet.repo.commit(env={"COORD_URL": old_hub.url})
    assert r.code == 0 and "warning" not in r.err, r


def test_a_hub_with_neither_endpoint_refuses_in_either_fail_mode(fleet: Fleet) -> None:
    proxy = OldHub(fleet.hub.url, old_get=False)
    try:
        fleet.repo.change("lib/old.py")
        r = fleet.repo.commit(env={"COORD_URL": proxy.url, "COORD_HOOK_FAIL_MODE": "open"})
        assert r.code == 1, r
        assert "no POST /locks/conflicts" in r.err and "nor GET /locks/conflicts (405)" in r.err, r.err
        assert "Upgrade the hub" in r.err and "accepted unchecked" not in r.err, r.err
    finally:
        proxy.close()


def test_more_paths_than_an_old_hub_is_asked_about_refuses(fleet: Fleet, old_hub: OldHub) -> None:
    for i in range(run.OLD_HUB_PATHS + 1):
        (fleet.repo.path / "many").mkdir(exist_ok=True)
        (fleet.repo.path / "many" / f"f{i}.txt").write_text("x\n")
    fleet.repo.git("add", "--", "many")
    r = fleet.repo.commit(env={"COORD_URL": old_hub.url})
    assert r.code == 1, r
    assert f"{run.OLD_HUB_PATHS + 1} paths are more than the {run.OLD_HUB_PATHS}" in r.err, r.err
    assert "Upgrade the hub" in r.err and "accepted unchecked" not in r.err, r.err
    assert not [s for s in old_hub.seen if s[:2] == ("GET", CONFLICTS)], old_hub.seen


def test_paths_left_unasked_when_the_budget_ends_refuse(fleet: Fleet) -> None:
    proxy = OldHub(fleet.hub.url, delay=0.25)  # 40 paths at 0.25 s each: past the 5 s budget
    try:
        for i in range(40):
            (fleet.repo.path / "slow").mkdir(exist_ok=True)
            (fleet.repo.path / "slow" / f"f{i}.txt").write_text("x\n")
        fleet.repo.git("add", "--", "slow")
        started = time.monotonic()
        r = fleet.repo.commit(env={"COORD_URL": proxy.url, "COORD_HOOK_FAIL_MODE": "open"})
        assert r.code == 1, r
        assert f"took longer than {run.RATE_LIMIT_WAIT:g} s" in r.err and "of 40 paths not asked" in r.err, r.err
        assert "Upgrade the hub" in r.err and "accepted unchecked" not in r.err, r.err
        assert time.monotonic() - started < 9
    finally:
        proxy.close()
