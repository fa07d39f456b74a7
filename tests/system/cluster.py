"""A real cluster for tests: N ``coord serve`` processes on one PostgreSQL database behind HAProxy or nginx.

The database is a private one on the test server (created and dropped here),
the hubs are :class:`~tests.conftest.LiveHub` processes with their own data
dirs, and HAProxy (Debian's ``haproxy``) balances them round-robin with HTTP
health checks on ``/health`` every 100 ms. Clients use only :attr:`Cluster.url`.
A connection refused by a dead hub is retried on another one by HAProxy
(``retries`` + ``option redispatch``). A request a hub died while serving (the
connection closed with no answer: ``retry-on empty-response``) is retried too
when replaying it is safe: a read (GET, HEAD, OPTIONS) or a write carrying an
``Idempotency-Key`` (the hub answers its replay with the first response and no
second effect); any other write answers 502, which callers treat as "outcome
unknown", like a broken connection. docs/scaling.md gives the same config.

With ``balancer="nginx"`` the balancer is Debian's ``nginx`` running the server
block docs/scaling.md gives, as written there but for its ``listen``, TLS and
``server`` lines (:func:`nginx_config`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx2
import pytest

from tests.conftest import PG_BASE, REQUIRE_PG, LiveHub, free_port

HAPROXY_CONFIG = """\
global
    maxconn 4096
    log stderr format raw local0 notice

defaults
    mode http
    log global
    option dontlognull
    option forwardfor
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend coord
    bind 127.0.0.1:{port}
    default_backend hubs

backend hubs
    balance roundrobin
    acl replay_safe method GET HEAD OPTIONS
    acl keyed req.hdr(Idempotency-Key) -m found
    http-request disable-l7-retry unless replay_safe || keyed
    option httpchk GET /health
    http-check expect status 200
    default-server inter 100ms fastinter 100ms downinter 200ms fall 2 rise 2
{servers}
"""


def haproxy_binary() -> str:
    """The haproxy binary, or the test fails (``.ci/run`` installs Debian's package)."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.fail("haproxy is missing: apt-get install haproxy (.ci/run installs it)")
    return found


SCALING_DOC = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"


def documented_nginx_block() -> str:
    """The nginx config docs/scaling.md gives: its indented block from ``upstream hubs {`` to the last ``}``."""
    lines = SCALING_DOC.read_text().splitlines()
    start = lines.index("    upstream hubs {")
    end = start
    while end + 1 < len(lines) and (lines[end + 1].startswith("    ") or not lines[end + 1].strip()):
        end += 1
    return "\n".join(line[4:] for line in lines[start:end + 1]).rstrip() + "\n"


def nginx_config(root: Path, port: int, upstreams: list[int], block: str | None = None) -> str:
    """A whole nginx.conf around ``block`` (the documented one by default) for a test: it listens on
    127.0.0.1:``port`` over plain HTTP, balances the hubs on ``upstreams`` (loopback ports), and keeps its pid,
    logs and temporary files under ``root``; everything else is the block as given."""
    block = documented_nginx_block() if block is None else block
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in upstreams)
    block, n = re.subn(r"(?m)^    server 10\.0\.0\.\d+:8001 [^\n]*\n", "", block)
    assert n, "docs/scaling.md's nginx block names no server lines to replace"
    block = block.replace("    least_conn;\n", "    least_conn;\n" + servers, 1)
    block, n = re.subn(r"(?m)^    listen 443 ssl;\n", f"    listen 127.0.0.1:{port};\n", block)
    assert n == 1, "docs/scaling.md's nginx block has no `listen 443 ssl;` line"
    block = re.sub(r"(?m)^    ssl_certificate(_key)? [^\n]*\n", "", block)
    temp = "".join(f"    {kind}_temp_path {root / ('nginx-' + kind)};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    indented = "".join(f"    {line}\n" if line else "\n" for line in block.splitlines())
    return (f"pid {root / 'nginx.pid'};\nerror_log {root / 'nginx-error.log'} info;\nevents {{}}\nhttp {{\n"
            f"    access_log off;\n{temp}{indented}}}\n")


def nginx_binary() -> str:
    """The nginx binary, or the test fails (``.ci/run`` installs Debian's package)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.fail("nginx is missing: apt-get install nginx (.ci/run installs it)")
    return found


class Cluster:
    """``hubs`` hub processes on one private database behind one balancer (``"haproxy"`` or ``"nginx"``, given
    ``nginx_block`` or the documented one); :meth:`stop` removes it all."""

    def __init__(self, root: Path, hubs: int = 3, hub_args: tuple[str, ...] = (), balancer: str = "haproxy",
                 nginx_block: str | None = None) -> None:
        self.root = root
        self.balancer = balancer
        self.nginx_block = nginx_block
        self.database_name = f"coord_cluster_{uuid.uuid4().hex[:10]}"
        self.database = f"{PG_BASE}/{self.database_name}"
        self.hubs = [LiveHub(root / f"hub{i}", args=("--database-url", self.database, "--trusted-proxies",
                                                     "127.0.0.1", *hub_args))
                     for i in range(hubs)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy: subprocess.Popen[bytes] | None = None
        self.proxy_log = root / f"{balancer}.log"

    def start(self) -> Cluster:
        """Create the database, start every hub, then HAProxy; wait until the balancer answers /health."""
        import psycopg

        try:
            admin = psycopg.connect(f"{PG_BASE}/postgres", autocommit=True, connect_timeout=3)
        except Exception as exc:
            if REQUIRE_PG:
                pytest.fail(f"PostgreSQL required (COORD_REQUIRE_POSTGRES=1) but unreachable at {PG_BASE}: {exc}")
            pytest.skip(f"PostgreSQL unreachable at {PG_BASE}")
        with admin:
            admin.execute(f"CREATE DATABASE {self.database_name}")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.hubs[0].start(wait=False)  # migrates the database alone; the others then start on it at once
            self.hubs[0].wait_ready(timeout=90)  # a loaded CI machine starts hubs slowly
            for h in self.hubs[1:]:
                h.start(wait=False)
            for h in self.hubs[1:]:
                h.wait_ready(timeout=90)
            self._start_proxy()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_proxy(self) -> None:
        if self.balancer == "nginx":
            config = self.root / "nginx.conf"
            config.write_text(nginx_config(self.root, self.port, [h.port for h in self.hubs], self.nginx_block))
            # one process, in the foreground, as the user running the tests (no workers switching to nobody)
            cmd = [nginx_binary(), "-c", str(config), "-p", str(self.root), "-g", "daemon off; master_process off;"]
        else:
            servers = "\n".join(f"    server hub{i} 127.0.0.1:{h.port} check" for i, h in enumerate(self.hubs))
            config = self.root / "haproxy.cfg"
            config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
            cmd = [haproxy_binary(), "-db", "-f", str(config)]
        with open(self.proxy_log, "ab") as log:
            self.proxy = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx2.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if self.proxy.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.balancer} did not come up:\n{self.proxy_log.read_text(errors='replace')}")
            time.sleep(0.05)

    @property
    def admin_token(self) -> str:
        """The first hub's admin token (valid on every hub: tokens live in the database)."""
        return self.hubs[0].admin_token

    def token(self, session_id: str, admin: bool = False) -> str:
        """A new token for ``session_id``, created through the balancer."""
        r = httpx2.post(self.url + "/api/coord/tokens", json={"name": session_id, "admin": admin},
                        headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def wait_balanced(self, up: int, timeout: float = 10.0) -> None:
        """Wait until HAProxy's checks see ``up`` hubs answering (counted by asking each hub directly)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = 0
            for h in self.hubs:
                try:
                    alive += httpx2.get(h.url + "/health", timeout=1).status_code == 200
                except httpx2.TransportError:
                    pass
            if alive >= up:
                time.sleep(0.3)  # `rise 2` checks 100 ms apart
                return
            assert time.monotonic() < deadline, f"only {alive} of {up} hubs answer"
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the balancer and every hub, and drop the database."""
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(10)
        for h in self.hubs:
            try:
                h.stop(9)
            except Exception:  # already gone
                pass
        import psycopg

        try:
            with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True, connect_timeout=3) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {self.database_name} WITH (FORCE)")
        except Exception:  # the server went away; nothing left to drop
            pass


ATTACKER, USER = "127.0.0.3", "127.0.0.5"  # the two clients' own loopback addresses in the sign-in checks


def client_at(c: Cluster, address: str) -> httpx2.Client:
    """A client of the balancer whose connections come from ``address`` (a loopback address of its own)."""
    return httpx2.Client(base_url=c.url, timeout=10, transport=httpx2.HTTPTransport(local_address=address))


def flood_bad_tokens(c: Cluster) -> None:
    """From :data:`ATTACKER`, 100 bad tokens through the balancer, each request's own ``X-Forwarded-For`` naming
    :data:`USER`: answered 401 then 429, and the flood spent the attacker's own address, not the one its header
    named (asked again at once without the header: 429). A balancer passing the client's header on unchanged would
    have counted that last request as the balancer's own address (401), and the flood as the user's."""
    with client_at(c, ATTACKER) as attacker:
        codes = [attacker.get("/api/coord/status", headers={"Authorization": f"Bearer coord_guess{i}",
                                                             "X-Forwarded-For": USER}).status_code
                 for i in range(100)]
        assert set(codes) == {401, 429}, codes
        again = attacker.get("/api/coord/status", headers={"Authorization": "Bearer coord_guess-again"})
        assert again.status_code == 429, again.text


def user_unharmed(c: Cluster, session_id: str) -> None:
    """After :func:`flood_bad_tokens`: :data:`USER`'s own token works through the balancer, and a mistyped one is
    answered 401, not 429 (its address's budget is whole)."""
    fresh = c.token(session_id)  # minted through the balancer from 127.0.0.1
    with client_at(c, USER) as user:
        rs = [user.get("/api/coord/whoami", headers={"Authorization": f"Bearer {fresh}"}) for _ in range(4)]
        wrong = user.get("/api/coord/status", headers={"Authorization": "Bearer coord_typo"})
    assert [r.status_code for r in rs] == [200] * 4, [r.text for r in rs]
    assert wrong.status_code == 401, wrong.text
