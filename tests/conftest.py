"""Shared fixtures: stores on both backends, a hub on a manual clock, an HTTP client, a real server.

PostgreSQL tests use the server at ``COORD_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432``): one scratch database per test run,
emptied before each test. When that server is unreachable the PostgreSQL
half is skipped, unless ``COORD_REQUIRE_POSTGRES=1`` (set by ``.ci/run``),
which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.bench.target import NotReady, free_port, wait_healthy
from coordhub.clock import ManualClock
from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store import Store
from coordhub.store.sqlite import SQLiteStore

PG_BASE = os.environ.get("COORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REQUIRE_PG = os.environ.get("COORD_REQUIRE_POSTGRES") == "1"

# Run as a shell's background job (`./.ci/run &`, nohup, some CI runners) the suite starts with SIGINT ignored,
# and every child it spawns would inherit that: a `coord watch` or `conv sync --follow` a test stops with SIGINT,
# as Ctrl-C would, then never stops. Python's own handler is reset to the default in a child, so children get
# Ctrl-C's usual meaning back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _pg_admin_conn() -> Any:
    import psycopg

    return psycopg.connect(f"{PG_BASE}/postgres", autocommit=True, connect_timeout=3)


def pytest_configure(config: pytest.Config) -> None:
    """Once per run, before any worker starts: compile the package's bytecode into its ``__pycache__``.

    The suite starts a few thousand Python subprocesses (hubs, ``coord``, hooks, fake ``claude`` workers). An
    editable install leaves the source uncompiled, and where ``PYTHONDONTWRITEBYTECODE`` is set (this machine's
    shell sets it) no import ever writes a ``.pyc``, so every one of them compiled each module it imported again:
    about 0.3 s of CPU per hub start. ``compileall`` writes whatever that variable says, and reading a cache is
    never turned off. Measured on tests/cli, 3 workers on 2 cores: 192 s without the cache, 138 s with it
    (2026-12-06).
    """
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller compiled before starting it
    import compileall

    import coordhub
    compileall.compile_dir(str(Path(coordhub.__file__).parent), quiet=1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default addopts): three test workers for every two cores the suite may use.

    The suite waits about a third of its time on what it started (hubs starting as subprocesses, sockets, a
    kill's aftermath), so one worker per core leaves cores idle: on the 2-core CI machine the whole suite took
    23 min 36 s with 2 workers and 17 min 28 s with 3, both green (2026-12-05). ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still sets the number, as with pytest-xdist's own rule.
    """
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if chosen:
        return int(chosen)
    return max(1, len(os.sched_getaffinity(0)) * 3 // 2)


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own XDG config dir: the client records trusted URLs and its queue key there."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@contextlib.contextmanager
def scratch_database(prefix: str = "coordhub_test", options: str = "") -> Iterator[str]:
    """A new PostgreSQL database ``<prefix>_<hex>`` (its URL; ``options`` follow ``CREATE DATABASE``), dropped
    after; fails (CI) or skips the test when the server is not there."""
    try:
        conn = _pg_admin_conn()
    except Exception as exc:  # the server is not there
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (COORD_REQUIRE_POSTGRES=1) but unreachable at {PG_BASE}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_BASE}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE DATABASE {name} {options}")
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this run (dropped at the end)."""
    with scratch_database() as url:
        yield url


def sqlite_database_before(path: Path, migration: str, rows: Sequence[tuple[str, tuple[Any, ...]]] = ()) -> Path:
    """A SQLite file at ``path`` with the migrations named before ``migration`` and ``rows`` in it: the database
    an older hub left behind (the SQLite side of :func:`pg_database_before`)."""
    import sqlite3

    from coordhub.store import migrate

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, sql in migrate.migration_scripts("sqlite"):
            if name < migration:
                conn.executescript(sql)
                conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
        for sql, params in rows:
            conn.execute(sql, params)
    finally:
        conn.close()
    return path


@contextlib.contextmanager
def pg_database_before(migration: str, rows: Sequence[tuple[str, tuple[Any, ...]]] = ()) -> Iterator[str]:
    """A scratch PostgreSQL database with the migrations named before ``migration`` and ``rows`` in it; its URL.

    ``rows`` are ``(sql, params)`` with ``?`` placeholders, as the store writes
    them. For migration tests: the database an older hub left behind. Dropped
    afterwards.
    """
    import psycopg

    from coordhub.store import migrate

    name = f"coordhub_mig_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin_conn()
    admin.execute(f"CREATE DATABASE {name}")
    url = f"{PG_BASE}/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            for mig, sql in migrate.migration_scripts("postgres"):
                if mig < migration:
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (mig,))
            for sql, params in rows:
                conn.execute(sql.replace("?", "%s"), params)
        yield url
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


_EMPTYING: dict[str, str] = {}  # scratch database URL -> the statements that empty it


def _empty_pg(url: str) -> None:
    """Empty every table a migration made, but the migrations' own record and the hub's identity.

    DELETE, children before the tables they reference, and sequences restarted,
    in one round trip: on a database of a few rows it takes ~12 ms where
    TRUNCATE of the 30-odd tables took ~100 ms, up to 700 ms beside a running
    suite (new files for each table), once per PostgreSQL test.
    """
    import graphlib

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        script = _EMPTYING.get(url)
        if script is None:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT IN ('schema_migrations', 'hub_meta', 'counters')").fetchall()]
            if not tables:  # no hub has opened it yet: nothing to empty, nothing to remember
                return
            referenced: dict[str, set[str]] = {t: set() for t in tables}  # table -> tables referencing it
            for child, parent in conn.execute(
                    "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
                    "WHERE contype = 'f'").fetchall():
                if parent in referenced and child != parent:
                    referenced[parent].add(child)
            order = list(graphlib.TopologicalSorter(referenced).static_order())  # referencing tables first
            sequences = [r[0] for r in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'").fetchall()]
            script = "; ".join([*(f"DELETE FROM {t}" for t in order),
                                *(f"ALTER SEQUENCE {s} RESTART" for s in sequences),
                                "UPDATE counters SET value = 0",
                                # the pruner's bound and the like go; the hub id stays (migration 0004 makes
                                # it once, and nothing writes it again)
                                "DELETE FROM hub_meta WHERE key <> 'hub_id'"])
            _EMPTYING[url] = script
        conn.execute(script.encode())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test; tests using it run once per backend."""
    return str(request.param)


@pytest.fixture
def store_factory(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Opens stores of the backend under test on one database; all are closed after the test."""
    opened: list[Store] = []
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        _empty_pg(url)

    def make() -> Store:
        from coordhub.store import open_store

        s = open_store(url) if backend == "postgres" else SQLiteStore(tmp_path / "coord.db")
        s.open()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    """An open, empty store of the backend under test."""
    return store_factory()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


@pytest.fixture
def hub(store: Store, clock: ManualClock) -> Hub:
    """A hub over the store on the manual clock."""
    return Hub(store, clock)


class Api:
    """An in-process HTTP client for the hub with helpers to mint session tokens."""

    def __init__(self, client: TestClient, hub: Hub, admin_token: str) -> None:
        self.client = client
        self.hub = hub
        self.admin_token = admin_token
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    def token(self, session_id: str, admin: bool = False) -> dict[str, str]:
        """Create a token for ``session_id``; return the headers that use it."""
        r = self.client.post("/api/coord/tokens", json={"name": session_id, "admin": admin}, headers=self.admin)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def api(hub: Hub) -> Iterator[Api]:
    """The HTTP app over ``hub`` (auth on), with an admin token."""
    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    app = create_app(hub, sweep_seconds=0)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield Api(client, hub, admin)


@pytest.fixture
def open_api(hub: Hub) -> Iterator[TestClient]:
    """The HTTP app over ``hub`` in --no-auth mode, reached as ``127.0.0.1`` (it answers only loopback names)."""
    with TestClient(create_app(hub, no_auth=True, sweep_seconds=0), base_url="http://127.0.0.1:8001") as client:
        yield client


# ---- a real `coord serve` subprocess ---------------------------------------------------------



class LiveHub:
    """A ``coord serve`` child process on a free port with its own data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.chosen = port is None  # a port of our choosing, which another test's server may take first
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "hub.log"

    def start(self, wait: bool = True) -> LiveHub:
        """Start the process and wait until /health answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            cmd = [sys.executable, "-m", "coordhub", "serve", "--port", str(self.port), "--data-dir",
                   str(self.data_dir), "--sweep-seconds", "0.5", "--retry-after", "1", "--rate-limit", "0",
                   *self.args]
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
            if not wait:
                return self
            try:
                self.wait_ready()
                self.chosen = False  # a restart comes back on this port
                return self
            except NotReady as exc:
                if self.chosen and attempt < 2 and self.proc.poll() is not None and "already in use" in str(exc):
                    self.port = free_port()  # another test's server took it before this hub bound it
                    self.url = f"http://127.0.0.1:{self.port}"
                    continue
                self.stop(9)
                raise
            except BaseException:  # the caller never gets the hub to stop: do not leave the process running
                self.stop(9)
                raise
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until /health answers 200; fail with the log if the process dies or times out."""
        assert self.proc is not None
        wait_healthy(self.url, self.proc, timeout, self.log.read_text)

    @property
    def admin_token(self) -> str:
        """The admin token the hub wrote at first start."""
        return (self.data_dir / "admin.token").read_text().strip()

    def token(self, session_id: str, admin: bool = False) -> str:
        """Create a token for ``session_id`` through the admin API."""
        r = httpx2.post(self.url + "/api/coord/tokens", json={"name": session_id, "admin": admin},
                        headers={"Authorization": f"Bearer {self.admin_token}"})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def stop(self, sig: int = 15) -> int:
        """Signal the process (SIGTERM by default) and return its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self.proc = None
        return code


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """A running ``coord serve`` on SQLite in a temp data dir."""
    h = LiveHub(tmp_path / "hub").start()
    try:
        yield h
    finally:
        h.stop()


def on_event_loop() -> bool:
    """Whether the calling code runs on an event loop's thread (a spy's test that a read ran off the loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def where_run(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[bool]:
    """Spy on ``owner.name`` for the test: the list returned gets, for each call, whether it ran on an event loop's
    thread (:func:`on_event_loop`); the call itself runs as before."""
    where: list[bool] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        where.append(on_event_loop())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return where
