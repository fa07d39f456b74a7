"""Two hubs on one PostgreSQL database behind nginx, configured as docs/scaling.md says (its block, run as written).

What the documented config must give, each checked through the balancer: a browser's request reaches the hub
with the ``Host`` the browser named (else the hub's ``Origin`` check refuses it, 403), an event stream arrives
as it is written (not held in nginx's buffers), a hub that dies costs no request (nginx passes a refused
connection to the other hub), and failed sign-ins count per client, whatever a client writes in its own
``X-Forwarded-For``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx2

from tests.system.cluster import Cluster, documented_nginx_block, flood_bad_tokens, user_unharmed


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _browser_send(c: Cluster, token: str) -> httpx2.Response:
    """A send as the dashboard's page makes it: with the page's ``Origin``, the balancer's own address."""
    return httpx2.post(f"{c.url}/api/coord/messages", json={"subject": "from a page", "body": "x"},
                       headers={**_auth(token), "Origin": c.url}, timeout=10)


def test_the_documented_nginx_config_serves_browsers_streams_and_failover(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "cluster", hubs=2, balancer="nginx").start()
    try:
        sender = c.token(f"NGX-{uuid.uuid4().hex[:6]}/claude-main")
        listener = c.token(f"NGL-{uuid.uuid4().hex[:6]}/claude-main")
        # the browser's Origin names the address it sent to; nginx passes that Host on, so both hubs agree
        sends = [_browser_send(c, sender) for _ in range(4)]  # least_conn with keepalive: both hubs are asked
        assert [r.status_code for r in sends] == [201] * 4, [r.text for r in sends]

        # an event stream through nginx: the send's event arrives while the stream stays open
        got: list[str] = []
        opened = threading.Event()

        def listen() -> None:
            with httpx2.Client(timeout=httpx2.Timeout(10, read=20)) as client, client.stream(
                    "GET", f"{c.url}/api/coord/events", headers=_auth(listener)) as stream:
                assert stream.status_code == 200, stream.read()
                opened.set()
                for line in stream.iter_lines():
                    got.append(line)
                    if "pushed-through-nginx" in line:
                        return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert opened.wait(10)
        time.sleep(0.2)
        r = httpx2.post(f"{c.url}/api/coord/messages", headers=_auth(sender), timeout=10,
                        json={"to_session": _whoami(c, listener), "subject": "pushed-through-nginx", "body": "x"})
        assert r.status_code == 201, r.text
        t.join(15)
        assert not t.is_alive(), f"the event did not come through nginx's stream: {got[-5:]}"

        # a dead hub costs nothing: nginx passes the refused connection on (reads and unkeyed writes alike)
        c.hubs[1].stop(9)
        after = [httpx2.get(f"{c.url}/api/coord/whoami", headers=_auth(sender), timeout=10).status_code
                 for _ in range(6)]
        after += [httpx2.post(f"{c.url}/api/coord/messages", headers=_auth(sender), timeout=10,
                              json={"subject": f"after {i}", "body": "x"}).status_code for i in range(6)]
        assert after == [200] * 6 + [201] * 6, after
    finally:
        c.stop()


def _whoami(c: Cluster, token: str) -> str:
    r = httpx2.get(f"{c.url}/api/coord/whoami", headers=_auth(token), timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["session_id"])


def test_without_its_host_line_nginx_would_cost_the_dashboard_every_write(tmp_path: Path) -> None:
    """The documented block's ``proxy_set_header Host $http_host;`` is what lets a browser's request through:
    without it nginx names the upstream as ``Host`` and the hub refuses the page's ``Origin``."""
    block = documented_nginx_block()
    assert "proxy_set_header Host $http_host;" in block
    c = Cluster(tmp_path / "cluster", hubs=1, balancer="nginx",
                nginx_block=block.replace("    proxy_set_header Host $http_host;\n", "")).start()
    try:
        r = _browser_send(c, c.token(f"NGH-{uuid.uuid4().hex[:6]}/claude-main"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    finally:
        c.stop()


def test_failed_sign_ins_count_per_client_behind_nginx(tmp_path: Path) -> None:
    """With ``$proxy_add_x_forwarded_for`` and ``--trusted-proxies`` each client counts alone, and a client that
    names another's address in its own ``X-Forwarded-For`` still counts as itself."""
    c = Cluster(tmp_path / "cluster", hubs=1, balancer="nginx").start()
    try:
        flood_bad_tokens(c)
        user_unharmed(c, f"NGF-{uuid.uuid4().hex[:6]}/claude-main")
    finally:
        c.stop()
