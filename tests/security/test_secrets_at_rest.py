"""No token at rest (issue 7, point 6), on both backends.

A response that carries a new token is never kept for idempotent replays: a
replay answers the record with ``token_shown: false``. Migration 0003 scrubs
what older hubs kept. The database, its WAL and shared-memory files and every
directory the hub makes are private to its user, wherever they live.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.store import migrate
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import Api, LiveHub, pg_database_before

ME = "HOWARD-HOME/claude-main"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _table_text(api: Api) -> str:
    """Every value of every row of every table, as text."""
    sql = ("SELECT name AS t FROM sqlite_master WHERE type = 'table'" if api.hub.store.name == "sqlite"
           else "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")

    def dump(tx: Any, now: float) -> str:
        return "\n".join(repr(row) for t in tx.ex.all(sql) for row in tx.ex.all(f"SELECT * FROM {t['t']}"))

    return str(api.hub.query_sync(dump))


def _mint(api: Api, name: str, admin: bool, key: str) -> dict[str, Any]:
    r = api.post("/api/coord/tokens", json={"name": name, "admin": admin},
                 headers={**api.admin, "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_replay_of_token_create_answers_the_record_without_the_token(api: Api) -> None:
    first = _mint(api, ME, False, "k-1")
    assert first["token"].startswith("coord_") and first["token_shown"] is True
    r = api.post("/api/coord/tokens", json={"name": ME, "admin": False},
                 headers={**api.admin, "Idempotency-Key": "k-1"})
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
    replay = r.json()
    assert "token" not in replay and replay["token_shown"] is False
    assert "stored nowhere" in replay["message"] and "revoke" in replay["message"]
    assert {k: replay[k] for k in ("id", "name", "admin")} == {k: first[k] for k in ("id", "name", "admin")}
    # no second token was made, and the first one works
    assert sorted(t["name"] for t in api.get("/api/coord/tokens", headers=api.admin).json()) == [ME, "admin"]
    me = {"Authorization": f"Bearer {first['token']}"}
    assert api.get("/api/coord/whoami", headers=me).json()["session_id"] == ME


def test_minted_tokens_are_in_no_table_and_no_file(api: Api, tmp_path: Path) -> None:
    minted = [_mint(api, name, admin, f"key-{i}")["token"]
              for i, (name, admin) in enumerate(((ME, False), ("OPS/root", True), ("LAPTOP-7/codex", False)))]
    for i, token in enumerate(minted):  # replays too, and each token used once
        assert _mint(api, ["HOWARD-HOME/claude-main", "OPS/root", "LAPTOP-7/codex"][i], i == 1, f"key-{i}")
        assert api.post("/api/coord/todos", json={"text": "t"}, headers={"Authorization": f"Bearer {token}",
                                                                         "Idempotency-Key": "t"}).status_code == 201
    kept = api.hub.query_sync(lambda tx, now: tx.ex.all("SELECT body FROM idempotency"))
    assert len(kept) == 6  # three token creates and three todos, each kept for its replays
    text = _table_text(api)
    for token in minted:
        assert token not in text and token.removeprefix("coord_") not in text
    if api.hub.store.name == "sqlite":  # the database, its -wal and -shm, anything else in the directory
        raw = {f.name: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()}
        assert {"coord.db", "coord.db-wal"} <= set(raw)
        for token in minted:
            assert not [name for name, data in raw.items() if token.removeprefix("coord_").encode() in data]


# ---- migration 0003 scrubs what older hubs kept ------------------------------------------------

LEGACY = "coord_" + "L" * 43


def _legacy_rows() -> list[tuple[Any, ...]]:
    body = json.dumps({"id": "t1", "name": ME, "admin": False, "created_at": "x", "revoked_at": None,
                       "token": LEGACY})
    other = json.dumps({"id": "m1", "subject": "keep me"})
    return [("admin", "k1", "h", 201, body, 1.0), ("admin", "k2", "h", 201, other, 1.0)]


def _check_scrubbed(rows: list[dict[str, Any]]) -> None:
    by_key = {r["key"]: json.loads(r["body"]) for r in rows}
    assert by_key["k1"]["token_shown"] is False and "token" not in by_key["k1"] and by_key["k1"]["id"] == "t1"
    assert "stored nowhere" in by_key["k1"]["message"]
    assert by_key["k2"] == {"id": "m1", "subject": "keep me"}


def test_migration_0003_scrubs_tokens_kept_by_sqlite_hubs(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "coord.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for name, sql in migrate.migration_scripts("sqlite"):
        if name < "0003":
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    conn.executemany("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)", _legacy_rows())
    conn.close()

    store = SQLiteStore(db)
    store.open()
    try:
        _check_scrubbed(store.read_sync(lambda tx: tx.ex.all("SELECT * FROM idempotency")))
    finally:
        store.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
    assert LEGACY.removeprefix("coord_").encode() not in raw, "the scrubbed token lingers in the file or its WAL"


@pytest.mark.postgres
def test_migration_0003_scrubs_tokens_kept_by_postgres_hubs(pg_url: str) -> None:
    from coordhub.store.postgres import PostgresStore

    rows = [("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)", row) for row in _legacy_rows()]
    with pg_database_before("0003", rows) as url:
        store = PostgresStore(url)
        store.open()
        try:
            found = store.read_sync(lambda tx: tx.ex.all("SELECT * FROM idempotency"))
            _check_scrubbed(found)
            assert LEGACY not in repr(found)
        finally:
            store.close()


# ---- file modes ---------------------------------------------------------------------------------

@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask (022), as most users have, so modes are not private by accident."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_sqlite_store_anywhere_is_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "elsewhere" / "deeper" / "x.db"
    store = SQLiteStore(db)
    store.open()
    try:
        store.write_sync(lambda tx: tx.sessions.touch(ME, 1.0))
        assert {f.name for f in db.parent.iterdir()} >= {"x.db", "x.db-wal", "x.db-shm"}
        for f in db.parent.iterdir():
            assert _mode(f) == 0o600, (f, oct(_mode(f)))
        assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700
    finally:
        store.close()


def test_an_existing_database_readable_by_others_is_tightened(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "x.db"
    first = SQLiteStore(db)
    first.open()
    first.write_sync(lambda tx: tx.sessions.touch(ME, 1.0))
    first.close()
    for f in tmp_path.iterdir():
        os.chmod(f, 0o644)
    again = SQLiteStore(db)
    again.open()
    try:
        for f in tmp_path.iterdir():
            assert _mode(f) == 0o600, f
    finally:
        again.close()


def test_coord_serve_keeps_every_file_and_directory_private(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # an existing data dir open to everyone: tightened, with a warning line
    db = tmp_path / "else" / "where" / "x.db"
    hub = LiveHub(data, args=("--database-url", f"sqlite:///{db}")).start()
    try:
        token = hub.token(ME)
        r = httpx2.post(hub.url + "/api/coord/messages", json={"subject": "hi"},
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201
        assert _mode(data) == 0o700
        assert _mode(data / "admin.token") == 0o600
        assert {f.name for f in db.parent.iterdir()} >= {"x.db", "x.db-wal", "x.db-shm"}
        for f in db.parent.iterdir():
            assert _mode(f) == 0o600, f
        assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700
    finally:
        hub.stop()
    log = hub.log.read_text()
    assert "data dir" in log and "tightened to 0700" in log and "755" in log


def test_a_data_dir_that_cannot_be_tightened_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coordhub import server

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)

    def not_owner(path: Any, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", not_owner)  # what a directory of another user answers
    with pytest.raises(server.StartupError, match="open to group or others and cannot be made private"):
        server.prepare_data_dir(shared)


def test_serve_says_why_it_cannot_create_a_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = subprocess.run([sys.executable, "-m", "coordhub", "serve", "--data-dir", str(blocker / "d"), "--port", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot create data dir" in r.stderr and "Traceback" not in r.stderr
