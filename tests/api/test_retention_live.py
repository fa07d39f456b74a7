"""Retention on a real ``coord serve``: the SSE gap signal, a pruner killed mid-pass, space given back (SQLite)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx2

from coordhub.store.sqlite import SQLiteStore
from tests.conftest import LiveHub

A, B = "A/claude-main", "B/claude-main"
FAST = ("--prune-seconds", "0.2", "--retain-events-hours", "0.0003", "--retain-messages-hours", "0.0003",
        "--retain-assignments-hours", "0.0003", "--cursor-hold-hours", "0.0003")  # ~1 s


def _sse(url: str, headers: dict[str, str], n: int) -> list[tuple[str, dict[str, object]]]:
    """The first ``n`` events of a stream as (event name, data)."""
    out: list[tuple[str, dict[str, object]]] = []
    with httpx2.stream("GET", url + "/api/coord/events", headers=headers, timeout=10) as r:
        assert r.status_code == 200
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
                if len(out) == n:
                    return out
    return out


def test_a_stream_resuming_from_a_pruned_id_is_told_of_the_gap(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "hub", args=FAST).start()
    try:
        a, b = ({"Authorization": f"Bearer {hub.token(s)}"} for s in (A, B))
        for n in range(5):
            r = httpx2.post(hub.url + "/api/coord/messages", json={"to_session": B, "subject": f"m{n}", "body": "x"},
                            headers=a)
            assert r.status_code == 201
        deadline = time.monotonic() + 20
        while "Coord-Gap" not in (audit := httpx2.get(hub.url + "/api/coord/audit", params={"after": 1},
                                                       headers={"Authorization": f"Bearer {hub.admin_token}"})).headers:
            assert time.monotonic() < deadline, "the pruner never pruned"
            time.sleep(0.2)
        through = int(audit.headers["Coord-Gap"])
        hub.stop()  # a new process: its ring of recent events starts empty, so the stream reads the store
        hub.start()
        got = _sse(hub.url, {**b, "Last-Event-ID": "1"}, 1)
        assert got[0][0] == "gap" and got[0][1]["after"] == 1 and int(str(got[0][1]["pruned_through"])) >= through
    finally:
        hub.stop()


def _fill(path: Path, messages: int, now: float) -> None:
    """A hub database with ``messages`` read direct messages, their events and ended assignments, all old."""
    store = SQLiteStore(path)
    store.open()
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    old = now - 3600
    conn.executemany(
        "INSERT INTO messages (seq, id, from_session, to_session, subject, body, importance, requires_ack, "
        "created_at) VALUES (?, ?, ?, ?, 's', ?, 'normal', 0, ?)",
        ((n, f"m{n}", A, B, "x" * 200, old) for n in range(1, messages + 1)))
    conn.executemany("INSERT INTO receipts (session_id, message_seq, read_at) VALUES (?, ?, ?)",
                     ((B, n, old) for n in range(1, messages + 1)))
    conn.executemany("INSERT INTO events (kind, session_id, payload, created_at) VALUES ('message.sent', ?, ?, ?)",
                     ((A, json.dumps({"n": n}), old) for n in range(messages)))
    for n in range(messages // 10):
        conn.execute("INSERT INTO assignments (id, seq, state, attempt, repo, issue, labels, requires, model, "
                     "model_source, briefing, files_likely, branch, created_by, created_at, queued_at, ended_at, "
                     "updated_at) VALUES (?, ?, 'done', 1, 'r', ?, '[]', '[]', 's', 'default', 'b', '[]', 'i', 'x', "
                     "?, ?, ?, ?)", (f"a{n}", n + 1, n, old, old, old, old))
        conn.execute("INSERT INTO assignment_attempts (assignment_id, attempt, machine, host_incarnation, model, "
                     "state, dispatched_at) VALUES (?, 1, 'm', 1, 's', 'done', ?)", (f"a{n}", old))
        conn.execute("INSERT INTO assignment_logs (assignment_id, start, text, created_at) VALUES (?, 0, ?, ?)",
                     (f"a{n}", "log" * 100, old))
    conn.execute("COMMIT")
    conn.close()


def _consistent(path: Path) -> dict[str, int]:
    """Counts after a crash; fails if any batch was left half-done."""
    conn = sqlite3.connect(path)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        assert one("SELECT COUNT(*) FROM receipts WHERE message_seq NOT IN (SELECT seq FROM messages)") == 0
        assert one("SELECT COUNT(*) FROM messages WHERE seq NOT IN (SELECT message_seq FROM receipts)") == 0
        for table in ("assignment_attempts", "assignment_logs"):
            assert one(f"SELECT COUNT(*) FROM {table} WHERE assignment_id NOT IN (SELECT id FROM assignments)") == 0
            assert one(f"SELECT COUNT(*) FROM assignments WHERE id NOT IN (SELECT assignment_id FROM {table})") == 0
        through = int(one("SELECT COALESCE((SELECT value FROM hub_meta WHERE key = 'events_pruned_through'), 0)"))
        assert one(f"SELECT COUNT(*) FROM events WHERE id <= {through}") == 0  # the bound moves with its deletes
        return {"messages": one("SELECT COUNT(*) FROM messages"), "events": one("SELECT COUNT(*) FROM events"),
                "assignments": one("SELECT COUNT(*) FROM assignments")}
    finally:
        conn.close()


def test_a_pruner_killed_mid_pass_leaves_nothing_half_deleted(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    data.mkdir(mode=0o700)
    db = data / "coord.db"
    total = 30_000
    _fill(db, total, time.time())
    size_full = db.stat().st_size
    hub = LiveHub(data, args=(*FAST, "--prune-batch", "500"))
    seen: list[dict[str, int]] = []
    for delay in (0.1, 0.3):  # kill -9 at different moments of the pass
        hub.start()
        start = time.monotonic()
        while time.monotonic() - start < 20:
            counts = _consistent(db)
            if counts["messages"] < (seen[-1]["messages"] if seen else total):
                break
            time.sleep(0.05)
        time.sleep(delay)
        assert hub.stop(9) == -9
        seen.append(_consistent(db))
    assert 0 < seen[0]["messages"] < total or seen[0]["events"] > 0, seen  # the first kill came mid-pass
    hub.start()
    try:
        deadline = time.monotonic() + 60
        while (counts := _consistent(db)) != {"messages": 0, "events": counts["events"], "assignments": 0}:
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while db.stat().st_size > size_full // 2:  # incremental vacuum gave the pages back (at a checkpoint)
            assert time.monotonic() < deadline, (db.stat().st_size, size_full)
            time.sleep(0.2)
    finally:
        hub.stop()
