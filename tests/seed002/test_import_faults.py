"""``coord import redis`` against the faults a review found: one bad record, a seed id shared by two teams,
and retention pruning imported history.

Real Redis (the test's own prefixes), a real ``coord serve`` on SQLite and on PostgreSQL, the real CLI.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.core.seed002 import hub_message_id
from tests.conftest import LiveHub
from tests.coordcli import Coord
from tests.seed002.conftest import SeedRedis, admin_cli
from tests.seed002.test_import import T0, hub_get, run_import

pytestmark = pytest.mark.redis

OLD = T0 - 400 * 86400  # more than a year before T0: far past any retention


@pytest.fixture
def other(seed: SeedRedis) -> Iterator[SeedRedis]:
    """A second team's key space in the same Redis (its own prefix), deleted afterwards."""
    s = SeedRedis(seed.r, seed.prefix.replace(":coord", ":teamb"))
    try:
        yield s
    finally:
        keys = list(seed.r.scan_iter(match=s.prefix + ":*", count=1000))
        if keys:
            seed.r.delete(*keys)


# ---- F1: one bad record never blocks the rest -----------------------------------------------------------

def poison(seed: SeedRedis) -> str:
    """Good records and one of each kind that the hub's schema refuses; returns the long message id."""
    seed.publish("msg-00000001", "GENERAL", "backend", "orchestrator", T0, "first", "kept")
    long_id = "msg-" + "a" * 190  # a valid id; "<id>.ack-comment" would be 206 characters
    seed.publish(long_id, "GENERAL", "backend", "orchestrator", T0 + 1, "long id", "kept")
    seed.ack(long_id, "orchestrator", T0 + 2, comment="merged")
    seed.publish("msg-00000003", "GENERAL", "frontend", "orchestrator", T0 + 3, "third", "kept")
    seed.r.set(seed.key("msg", "msg-00000004"), json.dumps({
        "id": "msg-00000004", "from": "backend", "to": "orchestrator", "timestamp": T0 + 4,
        "subject": "bad \ud800 text", "description": "x", "type": "GENERAL"}))
    seed.presence("backend", T0 + 5, session="abc\ndef")
    seed.presence("frontend", T0 + 5, session="fe-1")
    seed.r.lpush(seed.key("notifications", "orchestrator"), json.dumps({
        "event": "message_published", "message_id": "msg-1\t2", "from": "backend", "to": "orchestrator",
        "timestamp": "2026-05-28T20:26:40Z"}))
    seed.notify("orchestrator", "msg-00000003", "GENERAL", "frontend", T0 + 3)
    return long_id


def test_one_bad_record_is_left_out_and_the_rest_imported(seed: SeedRedis, live: LiveHub, cli: Coord) -> None:
    long_id = poison(seed)
    admin = admin_cli(cli, live)
    dry = run_import(admin, seed, "--dry-run")
    s = run_import(admin, seed)
    assert s["counts"]["message"] == {"imported": 5}, s  # four messages and the long id's ack comment
    assert s["counts"]["presence"] == {"imported": 2}, s
    assert s["counts"]["notification"] == {"imported": 1, "left out": 1}, s
    # the dry run said the same: what the hub would refuse is left out there too
    assert dry["counts"]["notification"] == {"to import": 1, "left out": 1}, dry
    assert dry["counts"]["message"] == {"to import": 5}, dry
    (bad,) = [p for p in s["skipped"] if p["kind"] == "notification"]
    assert "message_id" in bad["reason"] and "control" in bad["reason"]
    notes = {n["ref"]: n["note"] for n in s["notes"]}
    assert "U+FFFD" in notes["msg-00000004"] and "client_session" in notes["backend"]
    orch = live.token("orchestrator")
    got = {m["origin_id"]: m for m in hub_get(live, orch, "/api/coord/messages")}
    assert got["msg-00000004"]["subject"] == "bad \ufffd text"
    (reply,) = hub_get(live, live.token("backend"), "/api/coord/messages", to_session="backend")
    assert reply["reply_to"] == hub_message_id(long_id) and reply["body"] == "merged"
    assert len(reply["origin_id"]) <= 200 and reply["origin_id"].endswith(".ack-comment")
    seen = {p["session_id"]: p for p in hub_get(live, orch, "/api/coord/presence")}
    assert seen["backend"]["client_session"] == "abc def"
    # a rerun derives the same shortened id: nothing twice
    again = run_import(admin, seed)
    assert again["counts"]["message"] == {"already": 5}, again
    assert again["counts"]["notification"] == {"already": 1, "left out": 1}, again


def test_the_hub_skips_a_bad_item_not_the_batch(live: LiveHub) -> None:
    def item(mid: str, **fields: Any) -> dict[str, Any]:
        return {"kind": "message", "id": mid, "from_session": "backend", "to_session": "orchestrator",
                "subject": "s", "body": "b", "message_type": "GENERAL", "requires_ack": True,
                "created_at": "2026-01-23T10:00:00Z", **fields}

    note = {"kind": "notification", "key": "k1", "session_id": "frontend", "message_id": "msg-1\t2",
            "from_session": "backend", "to_session": None, "requires_ack": True, "sent_at": "2026-01-23T10:00:00Z"}
    body = {"source": "t", "items": [item("ok-1"), item("x" * 201), note, item("bad-type", message_type="a\nb"),
                                     item("ok-2")]}
    r = httpx2.post(live.url + "/api/coord/imports/seed002", json=body,
                    headers={"Authorization": f"Bearer {live.admin_token}"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["outcome"] for x in out["results"]] == ["imported", "skipped", "skipped", "skipped", "imported"]
    assert "at most 200" in out["results"][1]["reason"] and "message_id" in out["results"][2]["reason"]
    assert out["counts"] == {"imported": 2, "already": 0, "skipped": 3}


# ---- F2: an ack comment answers its own team's message ----------------------------------------------------

def test_an_ack_comment_answers_its_own_message_after_an_id_collision(seed: SeedRedis, other: SeedRedis,
                                                                      live: LiveHub, cli: Coord) -> None:
    seed.publish("msg-aaaa0001", "GENERAL", "alice", "bob", T0, "A: private plan", "team A only")
    other.publish("msg-aaaa0001", "GENERAL", "carol", "dave", T0 + 86400, "B: review", "team B")
    other.ack("msg-aaaa0001", "dave", T0 + 86460, comment="dave's comment for carol")
    admin = admin_cli(cli, live)
    run_import(admin, seed)
    b = run_import(admin, other)
    assert b["counts"]["message"] == {"imported": 2}, b
    (mine,) = hub_get(live, live.token("dave"), "/api/coord/messages")
    (reply,) = hub_get(live, live.token("carol"), "/api/coord/messages")
    assert mine["id"] != hub_message_id("msg-aaaa0001") and mine["subject"] == "B: review"
    assert reply["reply_to"] == mine["id"] and reply["thread_id"] == mine["id"], (reply, mine)
    # team A's message has no reply in its thread, and a rerun of either team writes nothing
    bob = hub_get(live, live.token("bob"), "/api/coord/messages")
    assert [m["subject"] for m in bob] == ["A: private plan"] and bob[0]["id"] == hub_message_id("msg-aaaa0001")
    assert hub_get(live, live.token("alice"), "/api/coord/messages") == []  # dave's reply went to carol only
    assert run_import(admin, other)["counts"]["message"] == {"already": 2}
    assert run_import(admin, seed)["counts"]["message"] == {"already": 1}


def test_a_reply_to_an_ambiguous_seed_id_without_its_digest_is_skipped(live: LiveHub) -> None:
    def item(mid: str, sender: str, subject: str, **fields: Any) -> dict[str, Any]:
        return {"kind": "message", "id": mid, "from_session": sender, "to_session": "orchestrator",
                "subject": subject, "body": "b", "message_type": None, "requires_ack": False,
                "created_at": "2026-01-23T10:00:00Z", **fields}

    def send(*items: dict[str, Any]) -> Any:
        r = httpx2.post(live.url + "/api/coord/imports/seed002", json={"source": "t", "items": list(items)},
                        headers={"Authorization": f"Bearer {live.admin_token}"})
        assert r.status_code == 200, r.text
        return r.json()["results"]

    send(item("msg-dup", "alice", "A"), item("msg-dup", "carol", "B"))
    (r,) = send(item("msg-dup.c", "orchestrator", "Re", reply_to="msg-dup"))
    assert r["outcome"] == "skipped" and "more than one" in r["reason"], r


# ---- F3: imported history survives retention, and a rerun never imports it again -----------------------

def pruning_hub(request: pytest.FixtureRequest, data_dir: Path, retain_hours: float) -> LiveHub:
    args: tuple[str, ...] = ()
    if request.node.callspec.params.get("backend") == "postgres":
        from tests.conftest import _empty_pg

        url = request.getfixturevalue("pg_url")
        _empty_pg(url)
        args = ("--database-url", url)
    env = {"COORD_PRUNE_SECONDS": "0.3", "COORD_RETAIN_MESSAGES_HOURS": str(retain_hours)}
    return LiveHub(data_dir, args=args, env=env).start()


def prune_batches(hub: LiveHub) -> float:
    r = httpx2.get(hub.url + "/metrics", headers={"Authorization": f"Bearer {hub.admin_token}"})
    assert r.status_code == 200, r.text
    found = re.search(r"^coord_prune_batches(?:_total)? (\S+)$", r.text, re.M)
    assert found, r.text
    return float(found.group(1))


def wait_passes(hub: LiveHub, batches: int = 20) -> None:
    """Wait until the pruner has run several whole passes (each runs a batch per kind)."""
    start = prune_batches(hub)
    deadline = time.monotonic() + 30
    while prune_batches(hub) < start + batches:
        assert time.monotonic() < deadline, "the pruner did not run"
        time.sleep(0.2)


def old_history(seed: SeedRedis, n: int = 6) -> None:
    for i in range(n):
        mid = seed.publish(f"msg-0000{i:04x}", "GENERAL", "backend", "frontend", OLD + i * 60, f"s{i}", "d")
        seed.ack(mid, "frontend", OLD + i * 60 + 5, comment=f"c{i}" if i % 2 else None)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_imported_history_is_kept_for_the_retention_window_after_the_import(
        request: pytest.FixtureRequest, backend: str, seed: SeedRedis, cli: Coord, tmp_path: Path) -> None:
    old_history(seed)
    hub = pruning_hub(request, tmp_path / "hub", 720.0)
    try:
        admin = admin_cli(cli, hub)
        s = run_import(admin, seed)
        assert s["counts"]["message"] == {"imported": 9}, s
        wait_passes(hub)
        fe = hub.token("frontend")
        assert len(hub_get(hub, fe, "/api/coord/messages")) == 6  # read and acked a year ago, still there
        again = run_import(admin, seed)
        assert again["counts"]["message"] == {"already": 9}, again
        # an ack comment on an imported message still finds it
        (m,) = [m for m in hub_get(hub, fe, "/api/coord/messages") if m["origin_id"] == "msg-00000000"]
        assert httpx2.get(f"{hub.url}/api/coord/messages/{m['id']}",
                          headers={"Authorization": f"Bearer {fe}"}).status_code == 200
    finally:
        hub.stop()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_rerun_never_imports_again_what_retention_pruned(
        request: pytest.FixtureRequest, backend: str, seed: SeedRedis, cli: Coord, tmp_path: Path) -> None:
    old_history(seed)
    hub = pruning_hub(request, tmp_path / "hub", 1 / 3600)  # one second
    try:
        admin = admin_cli(cli, hub)
        assert run_import(admin, seed)["counts"]["message"] == {"imported": 9}
        time.sleep(1.2)
        wait_passes(hub)
        assert hub_get(hub, hub.token("frontend"), "/api/coord/messages") == []  # past retention: pruned
        again = run_import(admin, seed)
        assert again["counts"]["message"] == {"already, pruned": 9}, again
        text = admin.ok("import", "redis", "--url", seed.url, "--prefix", seed.prefix).out
        assert "9 already, pruned" in text
    finally:
        hub.stop()
