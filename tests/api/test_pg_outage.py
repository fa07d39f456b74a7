"""Seed 001's 503 path with PostgreSQL stopped and restarted under a running ``coord serve``.

The shared PostgreSQL server is never touched: this module starts a private
PostgreSQL 15 cluster in a temp dir (as the ``postgres`` OS user when the tests
run as root, since PostgreSQL refuses root) on a free port, and stops and
restarts *that*. Each test gets its own database in the cluster and its own hub
(``--retry-after 1``). The module is skipped when the PostgreSQL binaries are
missing, unless ``COORD_REQUIRE_POSTGRES=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest

from tests.conftest import LiveHub, free_port
from tests.coordcli import git_init

PG_BIN = Path(os.environ.get("COORD_PG_BIN", "/usr/lib/postgresql/15/bin"))
REQUIRE_PG = os.environ.get("COORD_REQUIRE_POSTGRES") == "1"
A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
RECOVERY_SECONDS = 20.0
T = TypeVar("T")

pytestmark = pytest.mark.postgres


# ---- a private PostgreSQL cluster --------------------------------------------------------------

class PrivateCluster:
    """``initdb`` + ``pg_ctl`` in a temp dir, on a free port, trust auth, listening on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="coord-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        p = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=120)
        if check and p.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}\n{log}")
        return p

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", opts, "start")

    def stop(self, mode: str = "fast", check: bool = True) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=check)

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def create_database(self) -> str:
        import psycopg

        name = f"coord_outage_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        if self.data.exists():
            self.stop("immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _missing() -> str | None:
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL binaries not found: {PG_BIN / tool} (set COORD_PG_BIN)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root but runuser is missing (PostgreSQL refuses to run as root)"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' OS user to run PostgreSQL as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """The module's private cluster; stopped and removed at the end even when a test fails."""
    why = _missing()
    if why is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (COORD_REQUIRE_POSTGRES=1): {why}")
        pytest.skip(why)
    c = PrivateCluster()
    try:
        c.init()
        c.start()
        yield c
    finally:
        c.destroy()


@pytest.fixture
def pg(cluster: PrivateCluster) -> PrivateCluster:
    """The cluster, running (a previous test may have left it stopped)."""
    if not cluster.running:
        cluster.start()
    return cluster


@dataclass
class PgHub:
    hub: LiveHub
    http: httpx2.Client
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def pg_hub(pg: PrivateCluster, tmp_path: Path) -> Iterator[PgHub]:
    """A ``coord serve`` on a fresh database of the private cluster, with tokens for A, B and the admin."""
    url = pg.create_database()
    hub = LiveHub(tmp_path / "hub", args=("--database-url", url)).start()
    try:
        with httpx2.Client(base_url=hub.url, timeout=60.0) as http:
            yield PgHub(hub, http, {"a": hub.token(A), "b": hub.token(B), "admin": hub.admin_token})
    finally:
        hub.stop()


# ---- helpers -----------------------------------------------------------------------------------

def eventually(probe: Callable[[], T], ok: Callable[[T], bool], what: str,
               timeout: float = RECOVERY_SECONDS) -> T:
    """Call ``probe`` until ``ok(result)``, for at most ``timeout`` seconds; fail with the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if ok(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s; last result: {result!r}")
        time.sleep(0.25)


def describe(r: httpx2.Response) -> str:
    return f"{r.request.method} {r.request.url.path} -> {r.status_code} {dict(r.headers)} {r.text}"


def assert_unavailable(r: httpx2.Response) -> None:
    """Seed 001: 503, ``Retry-After`` (the hub runs with --retry-after 1), detail + retry_after in the body."""
    assert r.status_code == 503, describe(r)
    assert r.headers.get("Retry-After") == "1", describe(r)
    body = r.json()
    assert "database unavailable" in body["detail"].lower(), describe(r)
    assert body["retry_after"] == 1, describe(r)
    assert body["error"]["code"] == "database_unavailable", describe(r)


def health(h: PgHub) -> tuple[int, dict[str, Any]]:
    r = h.http.get("/health")
    return r.status_code, r.json()


# ---- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_503_while_postgres_is_down_then_recovery_without_restarting_the_hub(
        pg: PrivateCluster, pg_hub: PgHub, mode: str) -> None:
    h = pg_hub
    status, body = health(h)
    assert status == 200 and body["status"] == "ok" and body["database"] == "connected", body
    assert body["backend"] == "postgresql"

    # --- before: writes work
    msg = h.http.post("/api/coord/messages", headers=h.headers("a"),
                      json={"to_session": B, "subject": "before the outage", "body": "must survive"})
    assert msg.status_code == 201, describe(msg)
    todo = h.http.post("/api/coord/todos", headers=h.headers("a"), json={"text": "survive the outage"})
    assert todo.status_code == 201, describe(todo)
    lease = h.http.post("/api/coord/locks", headers=h.headers("a"),
                        json={"project_key": "gururmm", "resource": "server/", "description": "held across",
                              "ttl_hours": 0})
    assert lease.status_code == 201, describe(lease)
    comp = h.http.put("/api/coord/components", headers=h.headers("a"),
                      json={"project_key": "gururmm", "component": "server", "state": "deployed",
                            "version": "0.3.0"})
    assert comp.status_code == 200, describe(comp)

    # --- PostgreSQL goes away
    pg.stop(mode)
    assert not pg.running

    lost_key = f"lost-{mode}-{uuid.uuid4()}"
    lost_body = {"to_session": B, "subject": "sent during the outage", "body": "must not exist"}
    lost = h.http.post("/api/coord/messages", headers={**h.headers("a"), "Idempotency-Key": lost_key},
                       json=lost_body)
    assert_unavailable(lost)
    assert_unavailable(h.http.post("/api/coord/todos", headers=h.headers("a"), json={"text": "lost todo"}))
    assert_unavailable(h.http.post("/api/coord/locks", headers=h.headers("b"),
                                   json={"project_key": "gururmm", "resource": "lost/", "description": "lost"}))
    assert_unavailable(h.http.put("/api/coord/components", headers=h.headers("a"),
                                  json={"project_key": "gururmm", "component": "server", "state": "degraded"}))
    assert_unavailable(h.http.delete(f"/api/coord/locks/{lease.json()['id']}", headers=h.headers("a")))
    assert_unavailable(h.http.get("/api/coord/messages", headers=h.headers("b"), params={"unread_only": "true"}))
    assert_unavailable(h.http.get("/api/coord/status", headers=h.headers("a")))
    # a token the hub cannot check right now is "try later", not "unauthorized"
    assert_unavailable(h.http.get("/api/coord/status", headers={"Authorization": "Bearer coord_never-seen"}))

    status, body = health(h)
    assert status == 503, body
    assert body["status"] == "degraded" and body["database"] == "disconnected", body
    assert h.hub.proc is not None and h.hub.proc.poll() is None, "the hub must keep running"

    # --- PostgreSQL is back; the same hub process recovers by itself
    pg.start()
    status, body = eventually(lambda: health(h), lambda x: x[0] == 200, "/health back to 200")
    assert body["status"] == "ok" and body["database"] == "connected", body
    after = eventually(lambda: h.http.post("/api/coord/todos", headers=h.headers("a"),
                                           json={"text": "after the outage"}),
                       lambda r: r.status_code != 503, "writes succeed again")
    assert after.status_code == 201, describe(after)
    assert h.hub.proc is not None and h.hub.proc.poll() is None

    # data written before the outage is intact
    inbox = h.http.get("/api/coord/messages", headers=h.headers("b"), params={"unread_only": "false"})
    assert inbox.status_code == 200, describe(inbox)
    assert [(m["id"], m["subject"], m["body"]) for m in inbox.json()] == \
           [(msg.json()["id"], "before the outage", "must survive")]
    todos = h.http.get("/api/coord/todos", headers=h.headers("a"), params={"status": "all"}).json()
    assert sorted(t["text"] for t in todos) == ["after the outage", "survive the outage"]
    locks = h.http.get("/api/coord/locks", headers=h.headers("a")).json()
    assert [(x["id"], x["state"], x["session_id"]) for x in locks] == [(lease.json()["id"], "active", A)]
    comps = h.http.get("/api/coord/components", headers=h.headers("a")).json()
    assert [(c["state"], c["version"]) for c in comps] == [("deployed", "0.3.0")]

    # the 503'd write left nothing behind, not even its idempotency key
    again = h.http.post("/api/coord/messages", headers={**h.headers("a"), "Idempotency-Key": lost_key},
                        json=lost_body)
    assert again.status_code == 201, describe(again)
    assert again.headers.get("Idempotent-Replayed") is None, describe(again)
    replay = h.http.post("/api/coord/messages", headers={**h.headers("a"), "Idempotency-Key": lost_key},
                         json=lost_body)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", describe(replay)
    assert replay.json()["id"] == again.json()["id"]
    subjects = [m["subject"] for m in h.http.get("/api/coord/messages", headers=h.headers("b"),
                                                 params={"unread_only": "false"}).json()]
    assert sorted(subjects) == ["before the outage", "sent during the outage"]
    # the outage is logged as warnings, not as crashes
    assert "Traceback" not in h.hub.log.read_text(errors="replace")


def _coord(tmp_path: Path, url: str, token: str, *args: str, cwd: str = "work-a") -> subprocess.CompletedProcess[str]:
    """Run the CLI; each session has its own working directory (and so its own softfail queue)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    for name in ("home", "xdg"):
        (tmp_path / name).mkdir(exist_ok=True)
    if not (tmp_path / cwd / ".git").exists():
        git_init(tmp_path / cwd)  # its own project, so its own softfail queue at the project root
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"), COLUMNS="250", NO_COLOR="1")
    p = subprocess.run([sys.executable, "-m", "coordhub", "--url", url, "--token", token, *args],
                       cwd=tmp_path / cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    assert "Traceback" not in p.stdout + p.stderr, p
    return p


def test_cli_queues_on_503_and_sync_applies_once_after_postgres_returns(
        pg: PrivateCluster, pg_hub: PgHub, tmp_path: Path) -> None:
    h = pg_hub
    queue = tmp_path / "work-a" / ".claude" / "coord-queue.jsonl"
    pg.stop("fast")

    sent = _coord(tmp_path, h.hub.url, h.tokens["a"], "msg", "send", "HOWARD-HOME", "queued on 503", "x")
    assert sent.returncode == 0, sent
    assert "queued" in sent.stdout and "503" in sent.stdout, sent
    lines = queue.read_text().splitlines()
    assert len(lines) == 1 and '"queued on 503"' in lines[0]

    read = _coord(tmp_path, h.hub.url, h.tokens["b"], "msg", "inbox", cwd="work-b")
    assert read.returncode == 3, read
    assert "unreachable" in read.stderr and "503" in read.stderr, read
    claim = _coord(tmp_path, h.hub.url, h.tokens["a"], "lock", "claim", "gururmm", "server/", "not while down")
    assert claim.returncode == 3, claim
    assert len(queue.read_text().splitlines()) == 1

    pg.start()
    eventually(lambda: health(h), lambda x: x[0] == 200, "/health back to 200")
    synced = eventually(lambda: _coord(tmp_path, h.hub.url, h.tokens["a"], "sync"), lambda p: p.returncode == 0,
                        "coord sync drains the queue")
    assert synced.stdout.startswith("sent 1 queued write(s)"), synced
    assert not queue.exists()
    inbox = h.http.get("/api/coord/messages", headers=h.headers("b"), params={"unread_only": "false"}).json()
    assert [(m["subject"], m["from_session"]) for m in inbox] == [("queued on 503", A)]


def test_hub_start_with_postgres_down_fails_cleanly(pg: PrivateCluster, tmp_path: Path) -> None:
    url = pg.create_database()
    pg.stop("fast")
    hub = LiveHub(tmp_path / "hub", args=("--database-url", url)).start(wait=False)
    assert hub.proc is not None
    code = hub.proc.wait(timeout=90)
    hub.proc = None
    log = hub.log.read_text()
    assert code == 1, log
    assert "Traceback" not in log, log
    assert "database unreachable" in log, log
