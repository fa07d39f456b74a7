"""``coord archive export`` / ``import`` on both backends: every row back as it was, filters, refusals, bad files."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.core import archive
from coordhub.errors import Invalid
from coordhub.store import open_store
from coordhub.store.tables.archive import TABLES
from tests.conftest import Api, pg_database_before
from tests.coordcli import Coord, isolated_env

A, B = "A/claude-main", "B/claude-main"


@pytest.fixture
def source(api: Api, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The api hub's database URL, after some history: messages (one read), a lease, an event or two."""
    a, b = api.token(A), api.token(B)
    for n in range(3):
        r = api.post("/api/coord/messages", json={"to_session": B, "subject": f"s{n}", "body": "b"}, headers=a)
        assert r.status_code == 201
    first = api.get("/api/coord/messages", headers=b).json()[0]["id"]
    assert api.put(f"/api/coord/messages/{first}/read", headers=b).status_code == 200
    assert api.post("/api/coord/locks", json={"project_key": "p", "resource": "x.py"}, headers=a).status_code == 201
    return request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'coord.db'}"


@pytest.fixture
def target(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the backend under test (every migration applied, no row)."""
    if backend == "postgres":
        with pg_database_before("9999") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'audit' / 'coord.db'}"


@pytest.fixture
def coord(tmp_path: Path) -> Coord:
    return Coord(tmp_path, isolated_env(tmp_path / "env"))


def _rows(url: str) -> dict[str, list[dict[str, Any]]]:
    store = open_store(url)
    store.open()
    try:
        return {t: store.read_sync(lambda tx, t=t: tx.ex.all(f"SELECT * FROM {t} ORDER BY {', '.join(TABLES[t].key)}"))
                for t in TABLES}
    finally:
        store.close()


def test_export_then_import_gives_back_every_row(source: str, target: str, coord: Coord, tmp_path: Path) -> None:
    out = coord.ok("archive", "export", "--database-url", source)
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert lines[0]["format"] == "coordhub-archive" and lines[0]["version"] == 1 and lines[0]["hub_id"]
    assert sum(1 for x in lines[1:] if x["table"] == "messages") == 3 and f"exported {len(lines) - 1} rows" in out.err
    file = tmp_path / "all.jsonl"
    file.write_text(out.out)
    r = coord.ok("archive", "import", str(file), "--database-url", target)
    assert f"imported {len(lines) - 1} rows" in r.err
    before, after = _rows(source), _rows(target)
    assert after == before and after["events"] and after["receipts"]
    store = open_store(target)
    store.open()
    try:  # the counters moved past what was imported: the next lease gets a new fence
        fence = store.read_sync(lambda tx: tx.ex.one("SELECT value FROM counters WHERE name = 'fence'"))["value"]
        assert fence == max(row["fence"] for row in after["leases"])
    finally:
        store.close()
    again = coord("archive", "import", str(file), "--database-url", target)
    assert again.code == 4 and "not empty" in again.err and "events" in again.err  # EXIT_CONFLICT


def test_kinds_and_time_window_choose_what_is_exported(source: str, coord: Coord) -> None:
    out = coord.ok("archive", "export", "--database-url", source, "--kinds", "messages")
    tables = {json.loads(line)["table"] for line in out.out.splitlines()[1:]}
    assert tables == {"messages", "receipts"}
    later = coord.ok("archive", "export", "--database-url", source, "--since", "2100-01-01T00:00:00Z")
    assert {json.loads(line)["table"] for line in later.out.splitlines()[1:]} == {"sessions"}  # sessions: no time
    assert coord("archive", "export", "--database-url", source, "--kinds", "tokens").code == 2
    assert coord("archive", "export", "--database-url", source, "--since", "yesterday").code == 2


BAD = [
    ('{"format": "something-else", "version": 1}\n', "not a coordhub archive"),
    ('{"format": "coordhub-archive", "version": 9}\n', "version 9"),
    ('{"format": "coordhub-archive", "version": 1}\n{"table": "tokens", "row": {"id": "x"}}\n', "line 2"),
    ('{"format": "coordhub-archive", "version": 1}\n{"table": "events", "row": {"id) VALUES (1); --": 1}}\n',
     "has no column"),
    ('{"format": "coordhub-archive", "version": 1}\n{"table": "events", "row": {"id": 1, "kind": "x", '
     '"payload": "{}", "created_at": 1}}\n{"table": "events", "row": {"payload": [1]}}\n', "line 3"),
    ('{"format": "coordhub-archive", "version": 1}\nnot json\n', "line 2 is not JSON"),
]


def test_a_bad_file_is_refused_and_changes_nothing(target: str) -> None:
    store = open_store(target)
    store.open()
    try:
        for body, says in BAD:
            with pytest.raises(Invalid, match=re.escape(says)):
                archive.import_archive(store, io.BytesIO(body.encode()))
            assert not store.read_sync(lambda tx: tx.archive.has_rows()), body
        twice = '{"format": "coordhub-archive", "version": 1}\n' + (json.dumps(
            {"table": "events", "row": {"id": 1, "kind": "x", "payload": "{}", "created_at": 1.0}}) + "\n") * 2
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            archive.import_archive(store, io.BytesIO(twice.encode()))
        assert not store.read_sync(lambda tx: tx.archive.has_rows())  # one transaction: nothing of it stayed
    finally:
        store.close()


def test_the_command_reports_a_bad_file_in_one_line(coord: Coord, tmp_path: Path) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text(BAD[3][0])
    r = coord.fails(2, "archive", "import", str(file), "--database-url", f"sqlite:///{tmp_path / 'a' / 'coord.db'}")
    assert "line 2: table events has no column" in r.err
