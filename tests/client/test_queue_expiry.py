"""A queued write older than the hub keeps idempotency keys is set aside, not replayed (a replay could apply it twice).

A real hub started with a short ``--retain-idempotency-hours`` advertises it
on ``/health``; the user's own signed entry, queued (by its ``ts``) longer
ago than that, is moved to ``coord-queue.expired.jsonl`` by ``coord sync``
with a message, and never reaches the hub (review: a message sent twice
after the hub pruned its key).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2

from coordhub.client.queue import Entry, Signer
from coordhub.client.softfail import _actor
from coordhub.client.trust import origin
from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"


def test_a_write_queued_longer_ago_than_the_hub_keeps_keys_is_set_aside(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "hub", args=("--retain-idempotency-hours", "1")).start()
    try:
        token_a, token_b = hub.token(A), hub.token(B)
        work = git_init(tmp_path / "work")
        cli = Coord(work, isolated_env(tmp_path / "env"), hub.url, token=token_a)
        queue = work / ".claude" / "coord-queue.jsonl"
        signer = Signer(Path(cli.env["XDG_CONFIG_HOME"]) / "coordhub" / "queue.key")
        lines = []
        for subject, age in (("two hours ago", timedelta(hours=2)), ("a minute ago", timedelta(minutes=1))):
            ts = (datetime.now(UTC) - age).isoformat().replace("+00:00", "Z")
            entry = Entry("POST", "/api/coord/messages", {"to_session": B, "subject": subject, "body": "x",
                                                           "importance": "normal", "requires_ack": False},
                          f"key-{age.seconds}", ts=ts, actor=_actor(token_a, None), hub=origin(hub.url))
            signer.sign(entry)
            lines.append(entry.to_json())
        queue.parent.mkdir(parents=True, exist_ok=True)
        queue.write_text("".join(line + "\n" for line in lines))

        r = cli.ok("sync")
        assert r.out.startswith("sent 1 queued write(s)"), r
        assert "1 queued write(s) older than the hub keeps idempotency keys not sent" in r.err, r
        expired = work / ".claude" / "coord-queue.expired.jsonl"
        assert [json.loads(line)["body"]["subject"] for line in expired.read_text().splitlines()] == ["two hours ago"]
        assert not queue.exists()
        inbox = httpx2.get(hub.url + "/api/coord/messages", params={"unread_only": "false"},
                           headers={"Authorization": f"Bearer {token_b}"}).json()
        assert [m["subject"] for m in inbox] == ["a minute ago"]
        assert httpx2.get(hub.url + "/health").json()["idempotency_retention_hours"] == 1.0  # what the client read
        queue.write_text(lines[0] + "\n")  # again, with --json: the answer names the expired file, stderr says so
        r = cli.ok("sync", "--json")
        assert json.loads(r.out)["expired"] == 1 and json.loads(r.out)["expired_file"] == str(expired), r
        assert "1 queued write(s) older than the hub keeps idempotency keys not sent" in r.err, r
    finally:
        hub.stop()


def test_a_write_that_never_reached_the_hub_is_replayed_however_old(tmp_path: Path) -> None:
    """Review r8: a write queued on a refused connection carries no duplicate risk: it is sent, not set aside;
    one that may have reached the hub (a 5xx, a timeout) or an entry from before ``reached`` was kept is not."""
    import socket

    from coordhub.client import ClientSettings, CoordClient, Queued
    from coordhub.client.queue import SoftfailQueue

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    queue_file = tmp_path / "q" / "coord-queue.jsonl"
    signer = Signer(tmp_path / "queue.key")
    settings = ClientSettings(url=dead, token="t", session=None, user=None, machine=None, queue_file=queue_file,
                              timeout=5.0)
    with CoordClient(settings) as c:
        c.queue.signer = signer
        assert isinstance(c.send_message(B, "refused", "x"), Queued)
    [refused] = SoftfailQueue(queue_file, signer=signer).pending()
    assert refused.reached is False
    for subject, reached in (("answered 5xx", True), ("from before", None)):
        entry = Entry("POST", "/api/coord/messages", {"subject": subject}, subject, ts=refused.ts,
                      actor=refused.actor, hub=refused.hub, reached=reached)
        SoftfailQueue(queue_file, signer=signer).append(entry)
    sent: list[str] = []
    d = SoftfailQueue(queue_file, signer=signer).drain(lambda e: sent.append(e.body["subject"]) or "applied",
                                                       dead, refused.actor, now=datetime.now(UTC) + timedelta(days=30))
    assert sent == ["refused"] and (d.applied, d.expired) == (1, 2), d
    expired = (tmp_path / "q" / "coord-queue.expired.jsonl").read_text().splitlines()
    assert [json.loads(line)["body"]["subject"] for line in expired] == ["answered 5xx", "from before"]
