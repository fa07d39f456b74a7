"""Seed 001 softfail, end to end: writes queued while the hub is down, replayed exactly once when it is back.

Real ``coord`` subprocesses against a real ``coord serve`` that is stopped and
restarted on the same data dir and port; the 503 path of the Python client
against a tiny real HTTP server that always answers 503 with ``Retry-After: 1``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client import ClientSettings, CoordClient, Queued, Unreachable
from coordhub.client.queue import Entry, Signer
from coordhub.client.softfail import _actor
from coordhub.client.trust import origin
from tests.client.conftest import serving
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, git_init, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
UNKNOWN_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"



def read_queue(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- a hub that goes away and comes back -------------------------------------------------------

@dataclass
class Outage:
    """A hub that can be stopped and restarted on the same data dir and port, and CLIs for A, B, admin."""

    data_dir: Path
    port: int
    work: Path
    anon: Coord
    hub: LiveHub | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def queue(self) -> Path:
        return self.work / ".claude" / "coord-queue.jsonl"

    @property
    def rejected(self) -> Path:
        return self.work / ".claude" / "coord-queue.rejected.jsonl"

    def start(self) -> None:
        assert self.hub is None
        self.hub = LiveHub(self.data_dir, port=self.port).start()

    def stop(self) -> None:
        assert self.hub is not None
        self.hub.stop()
        self.hub = None

    def cli(self, who: str) -> Coord:
        return self.anon.with_(token=self.tokens[who])

    @property
    def a(self) -> Coord:
        return self.cli("a")

    @property
    def b(self) -> Coord:
        return self.cli("b")


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    """A hub with tokens for A, B and the admin; up at the start of the test."""
    work = git_init(tmp_path / "work")  # a project: its queue is <git root>/.claude/coord-queue.jsonl
    port = free_port()
    o = Outage(tmp_path / "hub", port, work, Coord(work, isolated_env(tmp_path), f"http://127.0.0.1:{port}"))
    o.start()
    try:
        assert o.hub is not None
        o.tokens = {"a": o.hub.token(A), "b": o.hub.token(B), "admin": o.hub.admin_token}
        yield o
    finally:
        if o.hub is not None:
            o.hub.stop()


def subjects(rows: list[dict[str, Any]]) -> list[str]:
    return [r["subject"] for r in rows]


# ---- queueing and sync -------------------------------------------------------------------------

def test_writes_queue_while_down_and_sync_applies_each_once_in_order(outage: Outage) -> None:
    lease = outage.a.json("lock", "claim", "gururmm", "server/src/", "before the outage")
    outage.stop()

    outage.a.queued("msg", "send", "HOWARD-HOME", "queued direct", "body 1")
    outage.a.queued("todo", "add", "queued todo", "--project", "gururmm", "--user", "mike")
    outage.a.queued("component", "set", "gururmm", "server", "building", "--version", "0.3.0")
    outage.a.queued("component", "set", "gururmm", "server", "deployed", "--version", "0.3.0",
                    "--notes", "after build")
    outage.a.queued("lock", "release", lease["id"])
    r = outage.a.queued("msg", "send", "ALL", "queued broadcast", "body 2")
    assert str(outage.queue.relative_to(outage.work)) in r.out and "6 pending" in r.out, r

    entries = read_queue(outage.queue)
    assert [(e["method"], e["path"]) for e in entries] == [
        ("POST", "/api/coord/messages"),
        ("POST", "/api/coord/todos"),
        ("PUT", "/api/coord/components"),
        ("PUT", "/api/coord/components"),
        ("DELETE", f"/api/coord/locks/{lease['id']}"),
        ("POST", "/api/coord/messages"),
    ]
    for e in entries:
        assert isinstance(e["idempotency_key"], str) and e["idempotency_key"], e
        assert e["ts"].endswith("Z"), e
    assert len({e["idempotency_key"] for e in entries}) == 6
    # a machine name is the hub's to resolve when the send is replayed (core.identity.machine_recipient)
    assert (entries[0]["body"]["to_machine"], entries[0]["body"]["to_session"]) == ("HOWARD-HOME", None)
    assert entries[0]["body"]["subject"] == "queued direct"
    assert entries[0]["body"]["body"] == "body 1"
    assert entries[1]["body"]["text"] == "queued todo" and entries[1]["body"]["project_key"] == "gururmm"
    assert entries[2]["body"]["state"] == "building" and entries[3]["body"]["state"] == "deployed"
    assert entries[5]["body"]["to_session"] is None
    saved = outage.queue.read_text(encoding="utf-8")

    # reads cannot be queued, and neither can a lease claim
    outage.a.unreachable("msg", "inbox")
    outage.a.unreachable("status")
    outage.a.unreachable("lock", "list")
    r = outage.a.unreachable("lock", "claim", "gururmm", "dashboard/", "while down")
    assert "queued" not in r.out
    assert outage.queue.read_text(encoding="utf-8") == saved

    outage.start()
    r = outage.a.ok("sync")
    assert r.out.startswith("sent 6 queued write(s)\n"), r
    assert not outage.queue.exists() and not outage.rejected.exists()

    def check_applied_once() -> dict[str, Any]:
        inbox = outage.b.json("msg", "inbox")
        assert subjects(inbox) == ["queued direct", "queued broadcast"]
        assert all(m["from_session"] == A for m in inbox)
        todos = outage.a.json("todo", "list", "--status", "all")
        assert [(t["text"], t["created_by"], t["user"]) for t in todos] == [("queued todo", A, "mike")]
        comps = outage.a.json("component", "list")
        assert [(c["component"], c["state"], c["notes"]) for c in comps] == [("server", "deployed", "after build")]
        assert outage.a.json("lock", "list") == []
        first: dict[str, Any] = comps[0]
        return first

    comp = check_applied_once()

    # the hub applied it all but the client "did not hear back": the same lines come round again
    outage.queue.parent.mkdir(exist_ok=True)
    outage.queue.write_text(saved, encoding="utf-8")
    r = outage.a.ok("sync")
    assert r.out.startswith("sent 6 queued write(s)\n"), r
    assert not outage.queue.exists() and not outage.rejected.exists()
    assert check_applied_once()["updated_at"] == comp["updated_at"]


def test_same_idempotency_key_twice_in_the_queue_is_applied_once(outage: Outage) -> None:
    outage.stop()
    outage.a.queued("todo", "add", "exactly once", "--project", "p")
    outage.a.queued("msg", "send", "HOWARD-HOME", "exactly once", "x")
    lines = outage.queue.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    outage.queue.write_text("\n".join([lines[0], lines[0], lines[1], lines[1], lines[0]]) + "\n",
                            encoding="utf-8")

    outage.start()
    r = outage.a.ok("sync")
    assert r.out.startswith("sent 5 queued write(s)\n"), r
    assert [t["text"] for t in outage.a.json("todo", "list", "--project", "p")] == ["exactly once"]
    assert subjects(outage.b.json("msg", "inbox", "--all")) == ["exactly once"]


def test_write_applied_but_unacknowledged_is_not_applied_again(outage: Outage) -> None:
    """The first attempt reached the hub and was applied; the answer was lost, so the client queued it."""
    entry = Entry("POST", "/api/coord/messages",
                  {"to_session": B, "subject": "lost answer", "body": "applied once", "importance": "normal",
                   "requires_ack": False}, "test-lost-answer-key-1",
                  actor=_actor(outage.tokens["a"], None), hub=origin(outage.url))
    Signer(Path(outage.anon.env["XDG_CONFIG_HOME"]) / "coordhub" / "queue.key").sign(entry)  # as A's client would
    assert outage.hub is not None
    first = httpx2.post(outage.url + entry.path, json=entry.body,
                        headers={"Authorization": f"Bearer {outage.tokens['a']}",
                                 "Idempotency-Key": entry.idempotency_key})
    assert first.status_code == 201, first.text
    outage.queue.parent.mkdir(parents=True, exist_ok=True)
    outage.queue.write_text(entry.to_json() + "\n", encoding="utf-8")

    r = outage.a.ok("sync")
    assert r.out.startswith("sent 1 queued write(s)\n"), r
    inbox = outage.b.json("msg", "inbox", "--all")
    assert [m["id"] for m in inbox] == [first.json()["id"]]


def test_next_successful_call_drains_the_queue_before_its_own_work(outage: Outage) -> None:
    outage.stop()
    outage.a.queued("msg", "send", "HOWARD-HOME", "first (queued)", "x")
    outage.a.queued("todo", "add", "queued todo")
    outage.start()

    # a write: the queued message must land before this one
    live = outage.a.json("msg", "send", "HOWARD-HOME", "second (live)", "y")
    assert not outage.queue.exists()
    inbox = outage.b.json("msg", "inbox")
    assert subjects(inbox) == ["first (queued)", "second (live)"]
    assert inbox[1]["id"] == live["id"] and inbox[0]["seq"] < inbox[1]["seq"]
    assert [t["text"] for t in outage.a.json("todo", "list")] == ["queued todo"]

    # a read drains too
    outage.stop()
    outage.a.queued("todo", "add", "drained by status")
    outage.start()
    status = outage.a.json("status")
    assert status["halt"] is None
    assert not outage.queue.exists()
    assert sorted(t["text"] for t in outage.a.json("todo", "list")) == ["drained by status", "queued todo"]


def test_refused_entries_move_to_the_rejected_file_and_do_not_block(outage: Outage) -> None:
    b_lease = outage.b.json("lock", "claim", "gururmm", "dashboard/", "B's lease")
    outage.stop()
    outage.a.queued("msg", "send", "HOWARD-HOME", "before", "x")
    outage.a.queued("todo", "done", UNKNOWN_UUID)           # 404 on replay
    outage.a.queued("lock", "release", b_lease["id"])        # 403 on replay: not A's lease
    outage.a.queued("msg", "send", "HOWARD-HOME", "after", "y")
    entries = read_queue(outage.queue)

    outage.start()
    r = outage.a.ok("sync")
    assert r.out.startswith("sent 2 queued write(s), 2 refused by the hub (kept in "), r
    assert "coord-queue.rejected.jsonl" in r.out
    assert not outage.queue.exists()
    assert read_queue(outage.rejected) == [entries[1], entries[2]]
    assert subjects(outage.b.json("msg", "inbox")) == ["before", "after"]
    assert [x["id"] for x in outage.b.json("lock", "list")] == [b_lease["id"]]

    # refused entries are not tried again
    assert outage.a.ok("sync").out.startswith("sent 0 queued write(s)\n")
    assert len(read_queue(outage.rejected)) == 2


def test_queue_file_from_env_and_flag(outage: Outage, tmp_path: Path) -> None:
    env_q = tmp_path / "queues" / "env" / "q.jsonl"
    flag_q = tmp_path / "queues" / "flag" / "q.jsonl"
    by_env = outage.a.with_(env={**outage.anon.env, "COORD_QUEUE_FILE": str(env_q)})
    by_flag = outage.a.with_(globals_=("--queue-file", str(flag_q)))
    outage.stop()

    r = by_env.queued("msg", "send", "HOWARD-HOME", "via env queue", "x")
    assert str(env_q) in r.out
    by_flag.queued("msg", "send", "HOWARD-HOME", "via flag queue", "y")
    assert [e["body"]["subject"] for e in read_queue(env_q)] == ["via env queue"]
    assert [e["body"]["subject"] for e in read_queue(flag_q)] == ["via flag queue"]
    assert not outage.queue.exists()

    outage.start()
    assert by_flag.ok("sync").out.startswith("sent 1 queued write(s)\n")
    assert not flag_q.exists() and env_q.exists()
    assert subjects(outage.b.json("msg", "inbox")) == ["via flag queue"]
    assert by_env.ok("sync").out.startswith("sent 1 queued write(s)\n")
    assert not env_q.exists()
    assert subjects(outage.b.json("msg", "inbox")) == ["via flag queue", "via env queue"]


def test_sync_with_hub_still_down_keeps_the_queue_and_exits_3(outage: Outage) -> None:
    outage.stop()
    outage.a.queued("todo", "add", "kept")
    before = outage.queue.read_text(encoding="utf-8")
    r = outage.a("sync")
    assert r.code == 3, r
    assert "unreachable" in r.err and "1 queued write(s) stay" in r.err
    assert outage.queue.read_text(encoding="utf-8") == before


# ---- the 503 + Retry-After path, against a real HTTP server that is always "unavailable" ---------

class _Unavailable(BaseHTTPRequestHandler):
    """Answers every request with the server's status (503 + Retry-After: 1 by default) and records it."""

    server: _RecordingServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, self.headers.get("Idempotency-Key"), body))
        payload = json.dumps({"detail": "Database unavailable. Retry after 1 seconds.", "retry_after": 1}).encode()
        self.send_response(self.server.status)
        if self.server.retry_after is not None:
            self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Unavailable)
        self.seen: list[tuple[str, str, str | None, bytes]] = []
        self.status = 503
        self.retry_after: str | None = "1"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def unavailable() -> Iterator[_RecordingServer]:
    with serving(_RecordingServer()) as srv:
        yield srv


def _client(url: str, queue_file: Path, waits: list[float]) -> CoordClient:
    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    settings = ClientSettings(url=url, token="coord_test", session=None, user=None, machine=None,
                              queue_file=queue_file, timeout=10.0)
    return CoordClient(settings, sleep=sleep)


def test_client_waits_retry_after_once_then_queues(unavailable: _RecordingServer, tmp_path: Path) -> None:
    waits: list[float] = []
    with _client(unavailable.url, tmp_path / "q.jsonl", waits) as c:
        result = c.send_message(B, "during 503", "x")
        assert isinstance(result, Queued), result
        assert waits == [1.0]
        assert [(m, p) for m, p, _, _ in unavailable.seen] == [("POST", "/api/coord/messages")] * 2
        keys = {k for _, _, k, _ in unavailable.seen}
        assert keys == {result.idempotency_key}  # the retry reuses the key, and the queue keeps it
        assert unavailable.seen[0][3] == unavailable.seen[1][3]
        [entry] = c.queue.pending()
        assert (entry.method, entry.path, entry.idempotency_key) == ("POST", "/api/coord/messages",
                                                                     result.idempotency_key)
        assert entry.body["subject"] == "during 503"
        assert result.pending == 1


def test_client_read_waits_once_then_is_unreachable(unavailable: _RecordingServer, tmp_path: Path) -> None:
    waits: list[float] = []
    with _client(unavailable.url, tmp_path / "q.jsonl", waits) as c:
        with pytest.raises(Unreachable):
            c.inbox()
    assert waits == [1.0]
    assert [m for m, _, _, _ in unavailable.seen] == ["GET", "GET"]
    assert not (tmp_path / "q.jsonl").exists()


def test_client_without_retry_after_queues_at_once(unavailable: _RecordingServer, tmp_path: Path) -> None:
    unavailable.status, unavailable.retry_after = 500, None
    waits: list[float] = []
    with _client(unavailable.url, tmp_path / "q.jsonl", waits) as c:
        assert isinstance(c.add_todo("during 500"), Queued)
    assert waits == []
    assert [m for m, _, _, _ in unavailable.seen] == ["POST"]


def test_cli_against_503_retries_once_then_queues_but_never_queues_a_claim(
        unavailable: _RecordingServer, tmp_path: Path) -> None:
    work = git_init(tmp_path / "work")
    coord = Coord(work, isolated_env(tmp_path), unavailable.url, token="coord_test")
    r = coord.queued("component", "set", "gururmm", "server", "deployed")
    assert "503" in r.out, r
    assert [(m, p) for m, p, _, _ in unavailable.seen] == [("PUT", "/api/coord/components")] * 2
    [entry] = read_queue(work / ".claude" / "coord-queue.jsonl")
    assert entry["idempotency_key"] == unavailable.seen[0][2] == unavailable.seen[1][2]

    unavailable.seen.clear()
    coord.unreachable("lock", "claim", "gururmm", "server/", "no lease while down")
    # /health for how long the hub keeps keys, then the queued entry, waiting Retry-After once as any write
    # does, then the claim twice
    assert [(m, p) for m, p, _, _ in unavailable.seen] == [
        ("GET", "/health"), ("PUT", "/api/coord/components"), ("PUT", "/api/coord/components"),
        ("POST", "/api/coord/locks"), ("POST", "/api/coord/locks")]
    assert len(read_queue(work / ".claude" / "coord-queue.jsonl")) == 1


# ---- rough edges -------------------------------------------------------------------------------

def test_a_queued_write_is_not_replayed_as_another_session(outage: Outage) -> None:
    outage.stop()
    outage.a.queued("msg", "send", "ALL", "written by A", "x")
    outage.start()
    outage.b.ok("status")  # B works in the same directory; its first call drains the queue
    seen = {m["id"]: m for who in (outage.a, outage.b) for m in who.json("msg", "inbox", "--all")
            if m["subject"] == "written by A"}
    assert [m["from_session"] for m in seen.values()] == [A], seen


def test_queued_writes_wait_out_a_halt(outage: Outage) -> None:
    outage.stop()
    outage.a.queued("todo", "add", "queued before the halt")
    outage.start()
    halt = httpx2.post(outage.url + "/api/coord/halt", json={"reason": "maintenance"},
                       headers={"Authorization": f"Bearer {outage.tokens['admin']}"})
    assert halt.status_code == 201, halt.text
    outage.a.ok("msg", "inbox")  # a read while halted drains the queue
    assert not outage.rejected.exists(), outage.rejected.read_text()
    assert len(read_queue(outage.queue)) == 1


# ---- the queue lives with the project (issue 7 point 17) ---------------------------------------

def test_the_queue_is_at_the_project_root_and_sync_drains_it_from_anywhere(outage: Outage) -> None:
    deep = outage.work / "src" / "deep"
    deep.mkdir(parents=True)
    docs = outage.work / "docs"
    docs.mkdir()
    outage.stop()
    r = outage.a.with_(cwd=deep).queued("msg", "send", "HOWARD-HOME", "from deep", "x")
    assert str(outage.queue) in r.out, r
    assert not (deep / ".claude").exists()
    [entry] = read_queue(outage.queue)
    outage.start()
    r = outage.a.with_(cwd=docs).ok("sync")
    assert r.out.startswith("sent 1 queued write(s)\n"), r
    assert not outage.queue.exists()
    assert sorted(p.name for p in outage.queue.parent.iterdir()) == []  # no .lock file left behind
    assert "(queued " in outage.b.ok("msg", "inbox").out  # the banner shows when it was written
    [m] = outage.b.json("msg", "inbox", "--all")
    assert m["subject"] == "from deep"
    assert m["queued_at"] is not None and m["queued_at"][:19] == entry["ts"][:19] and m["queued_at"] < m["created_at"]
    assert "/.claude/coord-queue.jsonl" in (outage.work / ".git" / "info" / "exclude").read_text()


def test_sync_with_the_hub_unreachable_exits_3_even_with_nothing_queued(tmp_path: Path) -> None:
    coord = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path), f"http://127.0.0.1:{free_port()}",
                  token="coord_test")
    r = coord.fails(3, "sync")
    assert "unreachable" in r.err, r


@pytest.mark.parametrize("url", ["notaurl", "ftp://127.0.0.1:8001", "http://127.0.0.1:99999", "http://",
                                 "127.0.0.1:8001"])
def test_an_invalid_url_is_a_usage_error_and_nothing_is_queued(url: str, tmp_path: Path) -> None:
    work = git_init(tmp_path / "work")
    coord = Coord(work, isolated_env(tmp_path), url, token="coord_test")
    r = coord.fails(2, "msg", "send", "ALL", "never queued", "x")
    assert "URL" in r.err, r
    assert not (work / ".claude").exists()
    assert not list((tmp_path / "xdg-state").rglob("*.jsonl"))


def test_install_hooks_git_ignores_the_settings_file_it_writes(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    Coord(repo, isolated_env(tmp_path)).ok("install-hooks")
    assert (repo / ".claude" / "settings.local.json").exists()
    assert "/.claude/settings.local.json" in (repo / ".git" / "info" / "exclude").read_text()
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status
    Coord(repo, isolated_env(tmp_path)).ok("install-hooks")  # a second run adds nothing twice
    assert (repo / ".git" / "info" / "exclude").read_text().count("settings.local.json") == 1


def test_a_queue_file_that_cannot_be_used_is_exit_1_not_an_auth_error(outage: Outage) -> None:
    """A write that must be queued while the queue the user chose is no regular file (here a directory): exit 1
    with the queue's problem; it was exit 6, documented as a missing or refused credential."""
    outage.stop()
    chosen = outage.work.parent / "queue-dir"
    chosen.mkdir()
    r = outage.a.with_(globals_=("--queue-file", str(chosen))).fails(1, "msg", "send", "HOWARD-HOME",
                                                                       "nowhere to queue", "body")
    assert "queue-dir" in r.err
