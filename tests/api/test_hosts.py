"""DNS rebinding and cross-origin requests (issue 7, point 9): the ``Host`` and ``Origin`` rules of every route.

A web page that rebinds its own name to 127.0.0.1 reaches a loopback hub
with ``Host: <its name>`` and its own ``Origin``; a page on another origin
sends that origin. Neither may read a direct message or halt the fleet on a
``--no-auth`` hub. Over the real app (TestClient) on both backends, and
against real ``coord serve`` processes.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.api.hosts import host_name, is_loopback
from coordhub.core.hub import Hub
from tests.conftest import Api, LiveHub

ME, OTHER = "DESKTOP-0O8A1RL/claude-main", "HOWARD-HOME/claude-main"
EVIL = "evil.example:8001"
AS_ME = {"X-Coord-Session": ME}


def secret(client: TestClient) -> None:
    """A direct message for ME that a page must not read."""
    r = client.post("/api/coord/messages", json={"to_session": ME, "subject": "secret", "body": "the key"},
                    headers={"X-Coord-Session": OTHER, "Host": "127.0.0.1:8001"})
    assert r.status_code == 201, r.text


def test_a_rebound_host_cannot_read_messages_or_halt_a_no_auth_hub(open_api: TestClient) -> None:
    secret(open_api)
    for method, path, body in (("GET", "/api/coord/messages", None), ("POST", "/api/coord/halt", {"reason": "x"}),
                               ("GET", "/health", None), ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1,
                                                                           "method": "tools/list"})):
        r = open_api.request(method, path, json=body, headers={**AS_ME, "Host": EVIL, "Origin": f"http://{EVIL}"})
        assert r.status_code == 421, (path, r.text)
        assert r.json()["error"]["code"] == "misdirected_request" and "loopback" in r.json()["error"]["message"]
    assert open_api.get("/api/coord/halt").json()["halted"] is False
    for host in ("127.0.0.1:8001", "localhost:8001", "[::1]:8001", "127.0.0.2", "LOCALHOST"):
        r = open_api.get("/api/coord/messages", headers={**AS_ME, "Host": host})
        assert r.status_code == 200 and [m["subject"] for m in r.json()] == ["secret"], (host, r.text)


@pytest.mark.parametrize("origin", ["http://evil.example", "https://127.0.0.1:8001.evil.example", "null",
                                    "http://127.0.0.1:9999", "http://localhost:8001"])
def test_a_cross_origin_request_is_refused(open_api: TestClient, origin: str) -> None:
    """Same Host, but the page that sent it is elsewhere: a plain form POST or fetch from another site."""
    secret(open_api)
    r = open_api.post("/api/coord/halt", json={"reason": "from a web page"},
                      headers={**AS_ME, "Host": "127.0.0.1:8001", "Origin": origin})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden" and "Origin" in r.text
    r = open_api.get("/api/coord/messages", headers={**AS_ME, "Host": "127.0.0.1:8001", "Origin": origin})
    assert r.status_code == 403
    assert open_api.get("/api/coord/halt").json()["halted"] is False


def test_a_same_origin_request_passes(open_api: TestClient) -> None:
    r = open_api.get("/api/coord/messages", headers={**AS_ME, "Host": "127.0.0.1:8001",
                                                      "Origin": "http://127.0.0.1:8001"})
    assert r.status_code == 200


def test_with_auth_any_host_works_and_a_foreign_origin_is_refused(api: Api) -> None:
    """``coord serve --host 0.0.0.0``: clients use the machine's name; the token is the defence."""
    auth = api.admin
    for host in (f"{socket.gethostname()}:8001", "192.168.1.20:8001", "coord.example.org"):
        r = api.client.get("/api/coord/messages", headers={**auth, "Host": host})
        assert r.status_code == 200, (host, r.text)
    r = api.client.get("/api/coord/messages", headers={**auth, "Host": "coord.lan:8001", "Origin": "http://coord.lan:8001"})
    assert r.status_code == 200
    r = api.client.post("/api/coord/halt", json={"reason": "x"},
                        headers={**auth, "Host": "coord.lan:8001", "Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_a_no_auth_hub_serving_a_network_answers_its_names(hub: Hub) -> None:
    """``--no-auth --allow-remote-no-auth --host 0.0.0.0``: the operator declared the network trusted."""
    app = create_app(hub, no_auth=True, sweep_seconds=0, loopback_only=False)
    with TestClient(app, base_url="http://coord.lan:8001") as client:
        assert client.get("/api/coord/messages", headers=AS_ME).status_code == 200
        r = client.get("/api/coord/messages", headers={**AS_ME, "Origin": "http://evil.example"})
        assert r.status_code == 403


def test_host_parsing() -> None:
    assert [host_name(h) for h in ("a:1", "a", "[::1]:80", "[::1]", "::1", "")] == ["a", "a", "[::1]", "[::1]",
                                                                                   "::1", ""]
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "[::1]", "::1", "LocalHost"))
    assert not any(is_loopback(h) for h in ("", "localhost.evil.example", "0.0.0.0", "10.0.0.1", "[::]", "evil"))


def raw_get(port: int, host: str, path: str, extra: str = "") -> tuple[int, bytes]:
    """One hand-written HTTP/1.1 request to 127.0.0.1:port with a ``Host`` of our choosing; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Coord-Session: {ME}\r\n{extra}Connection: close\r\n\r\n"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_a_real_no_auth_hub_on_loopback(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "open", args=("--no-auth",)).start()
    try:
        r = httpx2.post(hub.url + "/api/coord/messages", json={"to_session": ME, "subject": "secret"},
                        headers={"X-Coord-Session": OTHER})
        assert r.status_code == 201, r.text
        status, body = raw_get(hub.port, EVIL, "/api/coord/messages")
        assert status == 421 and b"misdirected_request" in body and b"secret" not in body
        status, body = raw_get(hub.port, f"127.0.0.1:{hub.port}", "/api/coord/messages",
                               extra="Origin: http://evil.example\r\n")
        assert status == 403 and b"secret" not in body
        status, body = raw_get(hub.port, f"localhost:{hub.port}", "/api/coord/messages")
        assert status == 200 and b"secret" in body
    finally:
        hub.stop()


def test_a_real_auth_hub_on_every_interface_answers_the_machines_name(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "lan", args=("--host", "0.0.0.0")).start()
    try:
        status, _ = raw_get(hub.port, f"{socket.gethostname()}:{hub.port}", "/health")
        assert status == 200
    finally:
        hub.stop()
