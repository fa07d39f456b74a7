"""``coord import redis``: seed 002's Redis data into a real hub, read back through the API, the verbs and Python.

Real Redis (the test's own prefix), a real ``coord serve`` on SQLite and on
PostgreSQL, the real CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client import seed002 as api
from coordhub.core.seed002 import hub_message_id
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord
from tests.seed002.conftest import SeedRedis, admin_cli

pytestmark = pytest.mark.redis

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def populate(seed: SeedRedis) -> None:
    """A small fleet's week in seed 002's layout: reviews, an acked message with a comment, a broadcast,
    presence and an offline queue."""
    seed.publish("msg-0000000a", "READY_FOR_REVIEW", "backend", "orchestrator", T0, "feature-x", "ready for review")
    seed.publish("msg-0000000b", "REVIEW_COMPLETE", "orchestrator", "backend", T0 + 60, "feature-x", "merged")
    seed.ack("msg-0000000b", "backend", T0 + 120, comment="thanks, deploying")
    seed.publish("msg-0000000c", "CONTRACT_APPROVED", "orchestrator", "all", T0 + 180, "api v2", "approved",
                 requires_ack=False)
    seed.publish("msg-0000000d", "REVIEW_FAILED", "orchestrator", "frontend", T0 + 240, "feature-y", "tests red")
    seed.presence("backend", T0 + 300, session="claude-abc")
    seed.presence("frontend", T0 + 310, active=False)
    seed.notify("frontend", "msg-0000000d", "REVIEW_FAILED", "orchestrator", T0 + 240)


def hub_get(hub: LiveHub, token: str, path: str, **params: Any) -> Any:
    r = httpx2.get(hub.url + path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def run_import(cli: Coord, seed: SeedRedis, *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = cli.json("import", "redis", "--url", seed.url, "--prefix", seed.prefix, *extra)
    return out


def test_imported_history_reads_back_through_api_verbs_and_python(seed: SeedRedis, live: LiveHub,
                                                                   cli: Coord) -> None:
    populate(seed)
    before = seed.dump()
    admin = admin_cli(cli, live)
    summary = run_import(admin, seed)
    assert seed.dump() == before  # only read
    assert summary["counts"] == {"message": {"imported": 5}, "notification": {"imported": 1},
                                 "presence": {"imported": 2}}, summary
    assert summary["skipped"] == [] and summary["unknown_types"] == {}

    backend, orch, frontend = (live.token(s) for s in ("backend", "orchestrator", "frontend"))
    # orchestrator: the pending review request arrives unread, with its seed id, time and sender
    (ready,) = hub_get(live, orch, "/api/coord/messages", unread_only="true")
    assert ready["id"] == hub_message_id("msg-0000000a") and ready["origin_id"] == "msg-0000000a"
    assert (ready["from_session"], ready["message_type"], ready["subject"], ready["body"]) == (
        "backend", "READY_FOR_REVIEW", "feature-x", "ready for review")
    assert ready["created_at"] == "2026-05-28T20:26:40Z" and ready["requires_ack"] and ready["acked_at"] is None
    assert ready["ack_deadline"] is None  # history is never redelivered or dead-lettered
    # backend: the acked review result is read and acked at its ack time; the broadcast is read; nothing unread
    assert hub_get(live, backend, "/api/coord/messages", unread_only="true") == []
    history = {m["origin_id"]: m for m in hub_get(live, backend, "/api/coord/messages")}
    assert set(history) == {"msg-0000000b", "msg-0000000c"}
    assert history["msg-0000000b"]["acked_at"] == "2026-05-28T20:28:40Z"
    assert history["msg-0000000c"]["broadcast"] and history["msg-0000000c"]["read"]
    # the ack comment reached the sender as a reply in the thread
    (comment,) = [m for m in hub_get(live, orch, "/api/coord/messages") if m["reply_to"]]
    assert (comment["from_session"], comment["body"], comment["reply_to"]) == (
        "backend", "thanks, deploying", hub_message_id("msg-0000000b"))
    # presence: last seen, offline until the agent reports in itself
    seen = {p["session_id"]: p for p in hub_get(live, backend, "/api/coord/presence")}
    assert seen["backend"]["last_heartbeat"] == "2026-05-28T20:31:40Z" and seen["backend"]["state"] == "offline"
    assert seen["backend"]["client_session"] == "claude-abc"
    # frontend's offline queue is its unread notification, with the seed id and original time
    (note,) = hub_get(live, frontend, "/api/coord/notifications")["events"]
    assert note["kind"] == "message.sent" and note["payload"]["origin_id"] == "msg-0000000d"
    assert note["payload"]["sent_at"] == "2026-05-28T20:30:40Z" and note["session_id"] == "orchestrator"

    # the seed-002 verbs show seed ids and take them
    orch_cli = cli.with_(url=live.url).as_token(orch)
    checked = orch_cli.json("msg", "check", "--pending")
    assert [(m["id"], m["type"], m["from"]) for m in checked["messages"]] == [
        ("msg-0000000a", "READY_FOR_REVIEW", "backend")]
    acked = orch_cli.json("msg", "ack", "msg-0000000a", "--comment", "looks good")
    assert acked["origin_id"] == "msg-0000000a" and acked["acked_at"] is not None
    assert orch_cli.json("msg", "check", "--pending")["count"] == 0

    # and so does the Python API
    async def python() -> None:
        c = await api.get_coordination_client("frontend", url=live.url, token=frontend)
        try:
            (failed,) = await c.check_messages(pending_only=True)
            assert (failed.id, failed.msg_type, failed.payload.subject) == (
                "msg-0000000d", api.MessageType.REVIEW_FAILED, "feature-y")
            (n,) = await c.pop_notifications()
            assert (n.event, n.message_id, n.from_instance) == ("message_published", "msg-0000000d", "orchestrator")
            assert await c.get_notifications() == []
            assert await c.acknowledge_message("msg-0000000d", comment="fixing")
            assert (await c.get_message("msg-0000000d")).acknowledged  # type: ignore[union-attr]
        finally:
            await api.reset_coordination_client()

    asyncio.run(python())


def test_seed_code_queries_imported_history_with_its_message_query(seed: SeedRedis, live_hub: LiveHub,
                                                                    cli: Coord) -> None:
    """Seed 002's code built a MessageQuery for get_messages (its scripts and services did), ``since`` included
    (seed-002 user run: `from coordhub.client.seed002 import MessageQuery` was an ImportError, and since was
    not taken)."""
    from datetime import datetime

    from coordhub.client.seed002 import MessageQuery

    populate(seed)
    run_import(admin_cli(cli, live_hub), seed)

    async def python() -> None:
        c = await api.get_coordination_client("backend", url=live_hub.url, token=live_hub.token("backend"))
        try:
            every = await c.get_messages(MessageQuery())
            assert [m.id for m in every] == ["msg-0000000c", "msg-0000000b"]
            later = await c.get_messages(MessageQuery(since="2026-05-28T20:28:40Z"))  # T0 + 120: the broadcast only
            assert [m.id for m in later] == ["msg-0000000c"]
            assert [m.id for m in await c.get_messages(MessageQuery(since=datetime(2026, 5, 28, 20, 27, 40)))] == [
                "msg-0000000c", "msg-0000000b"]  # no offset: UTC; T0 + 60 itself is kept
            assert [m.id for m in await c.get_messages(since="2026-05-28T20:27:41+00:00")] == ["msg-0000000c"]
            typed = await c.get_messages(MessageQuery(msg_type="review_complete", from_instance="orchestrator"))
            assert [m.id for m in typed] == ["msg-0000000b"]
            assert [m.id for m in await c.get_messages(MessageQuery(limit=1))] == ["msg-0000000c"]
            # seed 002's code printed what it read with to_dict()/to_json() and read a type's .value
            done = every[1]
            assert isinstance(done.type, api.MessageType) and done.type.value == "REVIEW_COMPLETE"
            assert {k: v for k, v in done.to_dict().items() if k != "hub_id"} == {
                "id": "msg-0000000b", "type": "REVIEW_COMPLETE", "from": "orchestrator", "to": "backend",
                "timestamp": "2026-05-28T20:27:40Z", "requires_ack": True, "acknowledged": True,
                "payload": {"subject": "feature-x", "description": "merged"}, "ack_by": "backend",
                "ack_timestamp": "2026-05-28T20:28:40Z", "read": True}
            assert json.loads(done.to_json()) == done.to_dict()
            seen = (await c.get_presence())["backend"].to_dict()
            assert (seen["instance_id"], seen["last_heartbeat"], seen["session_id"], seen["active"]) == (
                "backend", "2026-05-28T20:31:40Z", "claude-abc", False)
        finally:
            await api.reset_coordination_client()
        fe = await api.get_coordination_client("frontend", url=live_hub.url, token=live_hub.token("frontend"))
        try:
            (note,) = await fe.get_notifications()
            assert isinstance(note.msg_type, api.MessageType) and note.msg_type.value == "REVIEW_FAILED"
            shown = json.loads(note.to_json())
            seed_keys = ("event", "message_id", "type", "from", "to", "requires_ack", "timestamp")
            assert {k: shown[k] for k in seed_keys} == {
                "event": "message_published", "message_id": "msg-0000000d", "type": "REVIEW_FAILED",
                "from": "orchestrator", "to": "frontend", "requires_ack": True, "timestamp": "2026-05-28T20:30:40Z"}
        finally:
            await api.reset_coordination_client()

    asyncio.run(python())
    for bad in ({"limit": 0}, {"limit": 1001}, {"since": "yesterday"}, {"msg_type": "BUILD_BROKEN"}):
        with pytest.raises(ValueError):
            MessageQuery(**bad)  # type: ignore[arg-type]


def test_second_import_writes_nothing_and_a_later_one_only_what_is_new(seed: SeedRedis, live_hub: LiveHub,
                                                                        cli: Coord) -> None:
    populate(seed)
    admin = admin_cli(cli, live_hub)
    run_import(admin, seed)
    again = run_import(admin, seed)
    assert again["counts"] == {"message": {"already": 5}, "notification": {"already": 1},
                               "presence": {"already": 2}}, again
    # the team kept working on Redis meanwhile: a new message, an ack of a pending one, a newer heartbeat
    seed.publish("msg-0000000e", "GENERAL", "frontend", "backend", T0 + 400, "hello", "new")
    seed.ack("msg-0000000a", "orchestrator", T0 + 410)
    seed.presence("backend", T0 + 500)
    third = run_import(admin, seed)
    assert third["counts"]["message"] == {"imported": 1, "already": 5}
    assert third["counts"]["presence"] == {"imported": 1, "already": 1}
    orch = live_hub.token("orchestrator")
    assert hub_get(live_hub, orch, "/api/coord/messages", unread_only="true") == []  # the ack moved forward
    all_ids = [m["id"] for s in ("backend", "orchestrator", "frontend")
               for m in hub_get(live_hub, live_hub.token(s), "/api/coord/messages")]
    assert len(all_ids) == len(set(all_ids)) or all_ids.count(hub_message_id("msg-0000000c")) == 3


def test_import_killed_with_sigkill_resumes_without_loss_or_duplicates(seed: SeedRedis, live: LiveHub,
                                                                      cli: Coord) -> None:
    n = 400
    pipe = seed.r.pipeline(transaction=False)
    for i in range(n):
        mid = f"msg-{i:08x}"
        pipe.hset(seed.key("msg", mid), mapping={"id": mid, "type": "GENERAL", "from": "backend", "to": "frontend",
                                                 "timestamp": f"2026-05-{1 + i // 86400:02d}T00:00:00Z",
                                                 "requires_ack": "0", "acknowledged": "0", "subject": f"s{i}",
                                                 "description": "d"})
        pipe.sadd(seed.key("inbox", "frontend"), mid)
    pipe.execute()
    admin = admin_cli(cli, live)
    token = live.token("frontend")
    cmd = [sys.executable, "-m", "coordhub", "--url", live.url, "import", "redis", "--url", seed.url, "--prefix",
           seed.prefix, "--batch", "4"]
    proc = subprocess.Popen(cmd, cwd=admin.cwd, env=admin.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stored = 0
    try:
        while proc.poll() is None:
            stored = _count(live, token)
            if stored >= 40:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert 0 < _count(live, token) < n
    resumed = run_import(admin, seed)
    assert resumed["counts"]["message"]["imported"] + resumed["counts"]["message"]["already"] == n
    assert resumed["counts"]["message"]["already"] >= 40
    seen = [m["origin_id"] for m in _all(live, token)]
    assert len(seen) == n and len(set(seen)) == n


def _all(hub: LiveHub, token: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    before = None
    while True:
        page = hub_get(hub, token, "/api/coord/messages", limit=500, **({"before_seq": before} if before else {}))
        out += page
        if len(page) < 500:
            return out
        before = page[-1]["seq"]


def _count(hub: LiveHub, token: str) -> int:
    return len(_all(hub, token))


def test_bad_data_is_reported_never_fatal(seed: SeedRedis, live_hub: LiveHub, cli: Coord) -> None:
    r = seed.r
    seed.publish("msg-00000001", "READY_FOR_REVIEW", "backend", "orchestrator", T0, "good", "kept")
    seed.publish("msg-00000002", "BUILD_BROKEN", "frontend", "backend", T0 + 1, "unknown type", "kept as label")
    seed.publish("msg-00000003", "GENERAL", "qa team", "backend", T0 + 2, "bad sender", "mapped by --rename")
    seed.publish("msg-00000004", "GENERAL", "backend", "admin", T0 + 3, "reserved name", "left out")
    seed.publish("msg-00000005", "GENERAL", "backend", "frontend", T0 + 4, "line\none" * 80, "subject cut")
    r.hset(seed.key("msg", "msg-00000006"), mapping={"from": "backend", "to": "frontend", "timestamp": "yesterday",
                                                     "subject": "no usable time", "requires_ack": "maybe"})
    r.set(seed.key("msg", "msg-00000007"), json.dumps({"type": "GENERAL", "from": "backend", "to": "frontend",
                                                       "timestamp": T0 + 6, "payload": {"subject": "json string",
                                                                                         "description": "ok"}}))
    r.set(seed.key("msg", "msg-00000008"), "{corrupt")
    r.rpush(seed.key("msg", "msg-00000009"), "a list")
    r.set(seed.key("pending"), "not a set")
    r.sadd(seed.key("inbox", "backend"), "msg-expired")
    r.lpush(seed.key("notifications", "backend"), "{corrupt", json.dumps([1, 2]),
            json.dumps({"message_id": "msg-00000002", "from": "frontend", "type": "BUILD_BROKEN",
                        "timestamp": "2026-05-28T20:26:41Z", "requires_ack": True}))
    r.hset(seed.key("presence"), mapping={"backend.last_heartbeat": "garbage", "oddfield": "x"})
    before = seed.dump()
    admin = admin_cli(cli, live_hub)
    s = run_import(admin, seed, "--rename", "qa team=qa-team")
    assert seed.dump() == before
    assert s["counts"]["message"] == {"imported": 5, "left out": 4}, s
    assert s["counts"]["notification"] == {"imported": 1, "left out": 2}
    assert s["unknown_types"] == {"BUILD_BROKEN": 2}
    reasons = {p["ref"]: p["reason"] for p in s["skipped"]}
    assert "--rename" in reasons["msg-00000004"] and "reserved" in reasons["msg-00000004"]
    assert "no usable timestamp" in reasons["msg-00000006"]
    assert any("not JSON" in why for ref, why in reasons.items() if "msg-00000008" in ref)
    assert any("Redis list" in why for ref, why in reasons.items() if "msg-00000009" in ref)
    assert any("Redis string" in why for ref, why in reasons.items() if ref.endswith(":pending"))
    assert any("no " in why and "msg:{id}" in why for why in reasons.values())  # the expired id
    assert any("last_heartbeat" in why for ref, why in reasons.items() if ref == "backend")
    backend = live_hub.token("backend")
    got = {m["origin_id"]: m for m in hub_get(live_hub, backend, "/api/coord/messages")}
    assert got["msg-00000003"]["from_session"] == "qa-team"
    assert got["msg-00000002"]["message_type"] == "BUILD_BROKEN"
    frontend = {m["origin_id"]: m for m in hub_get(live_hub, live_hub.token("frontend"), "/api/coord/messages")}
    assert len(frontend["msg-00000005"]["subject"]) == 500 and "\n" not in frontend["msg-00000005"]["subject"]
    assert frontend["msg-00000007"]["subject"] == "json string"
    # the human summary says the same in lines, and never a traceback
    text = admin.ok("import", "redis", "--url", seed.url, "--prefix", seed.prefix, "--rename", "qa team=qa-team").out
    assert "left out (" in text and "BUILD_BROKEN (2)" in text and "msg-00000004" in text


def test_redis_down_or_hub_down_or_not_admin_write_nothing(seed: SeedRedis, live_hub: LiveHub, cli: Coord,
                                                          tmp_path: Path) -> None:
    populate(seed)
    admin = admin_cli(cli, live_hub)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    r = admin.fails(3, "import", "redis", "--url", dead, "--prefix", seed.prefix)
    assert "cannot use Redis at" in r.err and "nothing was imported" in r.err
    # REDIS_HOST/REDIS_PORT/REDIS_DB and COORD_KEY_PREFIX are the defaults, as in the seed
    env_run = admin.with_(env={**admin.env, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": dead.rsplit(":", 1)[1][:-2],
                               "COORD_KEY_PREFIX": seed.prefix})
    assert "127.0.0.1:" + dead.rsplit(":", 1)[1] in env_run.fails(3, "import", "redis").err
    session = cli.with_(url=live_hub.url).as_token(live_hub.token("backend"))
    r = session.fails(6, "import", "redis", "--url", seed.url, "--prefix", seed.prefix)
    assert "admin" in r.err
    down = admin.with_(url=f"http://127.0.0.1:{free_port()}")
    down.fails(3, "import", "redis", "--url", seed.url, "--prefix", seed.prefix)
    assert hub_get(live_hub, live_hub.admin_token, "/api/coord/messages", to_session="orchestrator") == []
    # without the optional driver: the install command, nothing else
    fake = tmp_path / "no-redis" / "redis"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    blocked = admin.with_(env={**admin.env, "PYTHONPATH": f"{fake.parent}:{admin.env.get('PYTHONPATH', '')}"})
    r = blocked.fails(1, "import", "redis", "--url", seed.url, "--prefix", seed.prefix)
    assert "pip install 'coordhub[redis]'" in r.err


def test_the_summary_says_where_else_the_history_may_be(seed: SeedRedis, live_hub: LiveHub, cli: Coord) -> None:
    """Nothing under the prefix, or a database other than 0 (where seed 002's bash scripts never wrote: they
    ignored REDIS_DB), is said in the summary (seed-002 user run: 'no keys', exit 0, and nothing more)."""
    admin = admin_cli(cli, live_hub)
    base = re.sub(r"/\d*$", "", seed.url.split("?")[0])  # redis://HOST:PORT, without the fixture's database
    empty = admin.json("import", "redis", "--url", f"{base}/0", "--prefix", seed.prefix, "--dry-run")
    assert empty["keys"] == {} and len(empty["hints"]) == 1, empty
    assert f"nothing under {seed.prefix}:*" in empty["hints"][0] and "--prefix" in empty["hints"][0]
    populate(seed)
    other = admin.ok("import", "redis", "--url", f"{base}/7", "--prefix", seed.prefix, "--dry-run")
    shown = base.split("@")[-1].split("//")[-1]
    assert f"note: nothing under {seed.prefix}:* at redis://{shown}/7" in other.out, other.out
    assert "note: seed 002's bash scripts wrote to database 0 whatever REDIS_DB said" in other.out
    assert f"--url redis://{shown}/0" in other.out and "REDIS_DB=7" in other.out
    from coordhub.importers.redis import db_number

    ok = run_import(admin, seed, "--dry-run")  # the fixture's own database: its keys, no 'nothing under'
    assert ok["counts"]["message"] == {"to import": 5}
    assert [h.split(" (")[0] for h in ok["hints"]] == (
        ["seed 002's bash scripts wrote to database 0 whatever REDIS_DB said"] if db_number(seed.url) else [])
    assert db_number("redis://h:1/3") == 3 and db_number("redis://h:1?db=4") == 4 and db_number("redis://h") == 0
    assert db_number("unix:///tmp/r.sock") is None


def test_seed_variables_that_name_no_port_or_database_are_refused_by_name(seed: SeedRedis, live_hub: LiveHub,
                                                                            cli: Coord) -> None:
    """REDIS_PORT and REDIS_DB are read as seed 002 read them, and one that is no number is refused naming it
    (seed-002 user run: REDIS_PORT=abc said 'not a Redis URL: (an unparsable Redis URL)', a URL the user never
    gave, and REDIS_DB=x read database 0 without a word)."""
    from coordhub.importers.redis import redis_url

    populate(seed)
    admin = admin_cli(cli, live_hub)
    db = re.search(r"/(\d+)$", seed.url.split("?")[0])
    host_port = re.sub(r"^redis://|/\d*$", "", seed.url.split("?")[0])
    host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "6379")
    env = {**admin.env, "REDIS_HOST": host, "REDIS_PORT": port, "REDIS_DB": db.group(1) if db else "0",
           "COORD_KEY_PREFIX": seed.prefix}
    assert admin.with_(env=env).json("import", "redis", "--dry-run")["counts"]["message"] == {"to import": 5}
    for name, value in (("REDIS_PORT", "abc"), ("REDIS_PORT", "70000"), ("REDIS_DB", "x"), ("REDIS_DB", "-1")):
        bad = admin.with_(env={**env, name: value}).fails(2, "import", "redis", "--dry-run")
        assert f"{name} {value!r} is not a" in bad.err and "--url" in bad.err, bad
    assert redis_url(env={"REDIS_HOST": "::1", "REDIS_DB": "3"}) == "redis://[::1]:6379/3"
    assert redis_url(env={}) == "redis://localhost:6379/0"
    assert redis_url("redis://given:1/2", env={"REDIS_PORT": "abc"}) == "redis://given:1/2"  # --url wins


def test_dry_run_reads_everything_and_writes_nothing(seed: SeedRedis, live_hub: LiveHub, cli: Coord) -> None:
    populate(seed)
    s = run_import(admin_cli(cli, live_hub), seed, "--dry-run")
    assert s["dry_run"] and s["counts"]["message"] == {"to import": 5}
    assert hub_get(live_hub, live_hub.admin_token, "/api/coord/messages", to_session="orchestrator") == []
