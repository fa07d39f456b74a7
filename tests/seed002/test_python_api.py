"""Seed 002's Python API (``coordhub.client.seed002``) against a real ``coord serve``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from coordhub.client import seed002 as api
from coordhub.client.outcomes import HubError
from coordhub.client.seed002 import MessageType, get_coordination_client
from coordhub.core.seed002 import hub_message_id
from tests.client.conftest import serving
from tests.client.test_queue_order import FlakyProxy
from tests.client.test_wire import Canned
from tests.conftest import LiveHub, free_port
from tests.coordcli import hung_hub

pytestmark = pytest.mark.usefixtures("api_isolation")


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await coro()
        finally:
            await api.reset_coordination_client()

    return asyncio.run(main())


def test_the_seeds_example_then_check_ack_presence_notifications(live_hub: LiveHub) -> None:
    tokens = {s: live_hub.token(s) for s in ("backend", "orchestrator")}

    async def go() -> None:
        be = await get_coordination_client(instance_id="backend", url=live_hub.url, token=tokens["backend"])
        orch = await get_coordination_client(instance_id="orchestrator", url=live_hub.url,
                                             token=tokens["orchestrator"])
        assert be is await get_coordination_client(instance_id="backend", url=live_hub.url, token=tokens["backend"])
        msg = await be.publish_message(msg_type=MessageType.READY_FOR_REVIEW, subject="feature-branch",
                                       description="Ready for review", to_instance="orchestrator")
        assert (msg.from_instance, msg.to_instance, msg.msg_type, msg.acknowledged) == (
            "backend", "orchestrator", MessageType.READY_FOR_REVIEW, False)
        assert msg.id and not msg.queued
        again = await be.publish_message(MessageType.GENERAL, "once", "retried", "orchestrator",
                                         idempotency_key="k-1")
        assert (await be.publish_message(MessageType.GENERAL, "once", "retried", "orchestrator",
                                         idempotency_key="k-1")).id == again.id

        pending = await orch.check_messages(pending_only=True)
        assert [m.payload.subject for m in pending] == ["once", "feature-branch"]
        assert [m.id for m in await orch.get_messages(msg_type="READY_FOR_REVIEW")] == [msg.id]
        result = await orch.ack_message(str(msg.id), comment="merged")
        assert result.acknowledged_by == "orchestrator" and result.comment_message_id
        assert await orch.acknowledge_message("00000000-0000-0000-0000-000000000000") is False
        assert await orch.acknowledge_message("msg-nope0000") is False
        with pytest.raises(api.AcknowledgeError) as unknown:  # named as given, not by the UUID it maps to
            await orch.ack_message("msg-nope0000")
        assert unknown.value.status == 404 and "no message 'msg-nope0000'" in unknown.value.message
        assert hub_message_id("msg-nope0000") not in unknown.value.message
        done = await orch.get_message(str(msg.id))
        assert done is not None and done.acknowledged and done.ack_by == "orchestrator"
        (reply,) = [m for m in await be.check_messages() if m.from_instance == "orchestrator"]
        assert reply.payload.description == "merged"

        with pytest.raises(api.CoordinationError) as refused:
            await be.publish_message(MessageType.GENERAL, "s", "d", from_instance="orchestrator")
        assert refused.value.code == "forbidden"
        with pytest.raises(api.PublishError):
            await be.publish_message(MessageType.GENERAL, "", "empty subject")
        with pytest.raises(ValueError):
            await be.publish_message("NOT_A_TYPE", "s", "d")

        await be.register_presence(session_id="claude-123", worktree_path="/w/backend")
        await be.heartbeat("backend")
        seen = await orch.get_presence()
        assert seen["backend"].active and seen["backend"].session_id == "claude-123"
        assert (await be.health_check())["connected"]

        notes = await orch.get_notifications()
        assert [n.message_id for n in notes if n.event == "message_published"][:1] == [msg.hub_id]
        assert await orch.get_notifications() == notes  # reading does not consume
        popped = await orch.pop_notifications()
        assert popped == notes and await orch.get_notifications() == []
        assert await be.unregister_instance("backend")
        assert not (await orch.get_presence())["backend"].active

    run(go)


def test_instance_id_must_be_the_tokens_session(live_hub: LiveHub) -> None:
    token = live_hub.token("frontend")

    async def go() -> None:
        c = await get_coordination_client(instance_id="backend", url=live_hub.url, token=token)
        with pytest.raises(api.CoordinationError) as err:
            await c.publish_message(MessageType.GENERAL, "s", "d", to_instance="all")
        # the hub refuses the named instance beside another session's token (403 session_mismatch); a hub too old
        # to check the header leaves it to the client's own whoami check, which names both the same way
        assert "'backend'" in err.value.message and "'frontend'" in err.value.message and err.value.status == 403
        no_token = await get_coordination_client(instance_id="backend", url=live_hub.url)
        with pytest.raises(api.CoordinationError) as err:
            await no_token.check_messages()
        assert "needs a token" in err.value.message and err.value.status == 401

    run(go)


def test_a_no_auth_hub_naming_no_session_is_refused_not_named_none(tmp_path: Path) -> None:
    open_hub = LiveHub(tmp_path / "open", args=("--no-auth",)).start()

    async def go() -> None:
        c = await get_coordination_client(url=open_hub.url)
        assert c.settings.session is None
        with pytest.raises(api.CoordinationError) as err:
            await c.session_id()
        assert (err.value.code, err.value.status) == ("no_session", 403)
        assert "acts as no session" in err.value.message
        with pytest.raises(api.CoordinationError) as err:
            await c.check_messages()
        assert err.value.code == "no_session"

    try:
        run(go)
    finally:
        open_hub.stop()


def test_writes_queue_while_the_hub_is_down_and_are_sent_once(tmp_path: Path) -> None:
    port = free_port()
    hub = LiveHub(tmp_path / "hub", port=port).start()
    token = hub.token("backend")
    hub.stop()

    async def offline() -> None:
        c = await get_coordination_client("backend", url=hub.url, token=token)
        # the identity was settled while the hub was up? no: a token needs no /health, so writes can queue
        queued = await c.publish_message(MessageType.GENERAL, "while down", "queued", "orchestrator")
        assert queued.queued and queued.id is None
        assert (await c.ack_message("msg-00001234")).queued
        with pytest.raises(api.CoordinationError):
            await c.check_messages()

    run(offline)
    hub.start()
    try:
        orch_token = hub.token("orchestrator")

        async def online() -> None:
            c = await get_coordination_client("backend", url=hub.url, token=token)
            drained = await c.sync()
            assert (drained.applied, drained.rejected) == (1, 1)  # the ack of an unknown message is refused
            orch = await get_coordination_client("orchestrator", url=hub.url, token=orch_token)
            got = await orch.check_messages()
            assert [m.payload.subject for m in got] == ["while down"]
            assert (await c.sync()).applied == 0

        run(online)
    finally:
        hub.stop()


def test_check_messages_reads_on_past_a_page_the_hub_ended_at_its_text_bound(live_hub: LiveHub) -> None:
    """Ten messages of 500,000 characters: the hub ends its page after 8 (about 4 MiB) and says where older ones
    follow in Coord-Next-Before-Seq; check_messages reads on and answers all ten, newest first (it stopped at a
    page shorter than 500, answering 8)."""
    tokens = {s: live_hub.token(s) for s in ("backend", "orchestrator")}

    async def go() -> None:
        be = await get_coordination_client(instance_id="backend", url=live_hub.url, token=tokens["backend"])
        sent = [(await be.publish_message(MessageType.GENERAL, f"m{n}", f"{n} " + "x" * 500_000,
                                          "orchestrator")).id for n in range(10)]
        orch = await get_coordination_client(instance_id="orchestrator", url=live_hub.url,
                                             token=tokens["orchestrator"])
        assert [m.id for m in await orch.check_messages(from_instance="backend")] == sent[::-1]

    run(go)


def test_a_write_after_a_drain_that_stopped_is_queued_behind_the_older_ones(live_hub: LiveHub) -> None:
    """Review: the seed-002 client sent a new write though the drain before it had stopped at an older queued one
    (the hub busy), so the newer one reached the hub first; it now waits behind, as CoordClient's writes do."""
    token, orch_token = live_hub.token("backend"), live_hub.token("orchestrator")
    with serving(FlakyProxy(live_hub.url)) as proxy:

        async def go() -> None:
            proxy.mode = "down"  # from the start: the client's first call meets the gateway's 502 (review: refused)
            c = await get_coordination_client("backend", url=proxy.url, token=token)
            assert (await c.publish_message(MessageType.GENERAL, "first", "x", "orchestrator")).queued
            proxy.mode, proxy.busy = "up", 2  # the replay of "first" meets 503 twice (Retry-After waited once)
            assert (await c.publish_message(MessageType.GENERAL, "second", "x", "orchestrator")).queued
            drained = await c.sync()
            assert (drained.applied, drained.rejected) == (2, 0)
            orch = await get_coordination_client("orchestrator", url=live_hub.url, token=orch_token)
            # newest first, as seed 002's check_messages lists: "second" reached the hub after "first"
            assert [m.payload.subject for m in await orch.check_messages()] == ["second", "first"]

        run(go)


def test_a_call_behind_a_hung_hub_takes_one_timeout_not_one_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the seed-002 client gave the identity check, the drain and the call's own request a whole timeout
    each, so a read behind a hub that accepts and never answers hung for three timeouts; they share one, as a drain
    and a call of CoordClient do."""
    monkeypatch.setenv("COORD_TIMEOUT", "1")  # long enough that a loaded machine's own delays fit in the slack
    with hung_hub() as (url, _):

        async def go() -> None:
            c = await get_coordination_client("backend", url=url, token="t0ken")
            start = time.monotonic()
            assert (await c.publish_message(MessageType.GENERAL, "first", "x", "orchestrator")).queued
            assert time.monotonic() - start < 1.6  # whoami and the write shared one 1 s (was 2 s)
            start = time.monotonic()
            with pytest.raises(api.CoordinationError) as err:
                await c.check_messages()
            assert time.monotonic() - start < 1.6  # whoami, the drain of "first" and the read (was 3 s)
            assert err.value.status == 0
            start = time.monotonic()
            second = await c.publish_message(MessageType.GENERAL, "second", "x", "orchestrator")
            assert second.queued and time.monotonic() - start < 1.6
            assert len(c._sync.queue) == 2

        run(go)


def test_a_read_waits_out_no_retry_after_past_its_timeout(live_hub: LiveHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the drain before a seed-002 read had no time budget, so its replay waited out a 503's Retry-After
    (up to 60 s) whatever the client's timeout; as in CoordClient, a wait past the call's budget is not made."""
    token = live_hub.token("backend")
    monkeypatch.setenv("COORD_TIMEOUT", "0.5")
    with serving(FlakyProxy(live_hub.url)) as proxy:

        async def go() -> None:
            proxy.mode = "down"
            c = await get_coordination_client("backend", url=proxy.url, token=token)
            assert (await c.publish_message(MessageType.GENERAL, "first", "x", "orchestrator")).queued
            proxy.mode, proxy.busy = "up", 5  # the replay meets 503 with Retry-After: 1, past the 0.5 s timeout
            start = time.monotonic()
            assert await c.check_messages() == []
            assert time.monotonic() - start < 0.9  # no wait of 1 s
            assert c.last_drain is not None and c.last_drain.stopped is not None

        run(go)


def test_a_publish_answered_by_a_redirect_is_not_applied_not_a_bad_answer() -> None:
    """Review: a write answered 301 (a proxy sending http to https) was read as the hub's answer, so the client
    called it an unreadable answer of the hub (bad_response, status 0: "may have been applied"); nothing was done."""
    canned = Canned()
    canned.answer = (b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://elsewhere.invalid/\r\n"
                     b"content-length: 0\r\n\r\n")

    async def go() -> None:
        c = await get_coordination_client(url=canned.url, token="t0ken")
        with pytest.raises(api.PublishError) as err:
            await c.publish_message(MessageType.GENERAL, "s", "d", "orchestrator")
        assert (err.value.status, err.value.code) == (301, "not_applied")
        assert len(c._sync.queue) == 0

    try:
        run(go)
    finally:
        canned.close()


def test_a_write_queues_while_a_no_auth_hub_is_down(tmp_path: Path) -> None:
    """Review: with no token the client settles its identity by asking /health; while the hub was down that raised
    CoordinationError for a publish, though CoordClient queues such a write (nothing was sent)."""
    port = free_port()
    open_hub = LiveHub(tmp_path / "open", port=port, args=("--no-auth",))

    async def offline() -> None:
        c = await get_coordination_client("backend", url=open_hub.url)
        assert (await c.publish_message(MessageType.GENERAL, "while down", "queued", "orchestrator")).queued
        with pytest.raises(api.CoordinationError) as err:
            await c.check_messages()
        assert err.value.status == 0

    run(offline)
    open_hub.start()
    try:

        async def online() -> None:
            c = await get_coordination_client("backend", url=open_hub.url)
            assert (await c.sync()).applied == 1
            orch = await get_coordination_client("orchestrator", url=open_hub.url)
            assert [m.payload.subject for m in await orch.check_messages()] == ["while down"]

        run(online)
    finally:
        open_hub.stop()


def test_a_read_behind_a_gateway_with_no_hub_could_not_reach_it(live_hub: LiveHub) -> None:
    """Review: a read answered 502 by a gateway raised status 502 ``http_502``/``bad_gateway``, where the class
    promises status 0 for a hub that could not be reached (and CoordClient raises Unreachable)."""
    token = live_hub.token("backend")
    with serving(FlakyProxy(live_hub.url)) as proxy:

        async def go() -> None:
            c = await get_coordination_client("backend", url=proxy.url, token=token)
            assert await c.check_messages() == []
            proxy.mode = "down"
            with pytest.raises(api.CoordinationError) as err:
                await c.check_messages()
            assert (err.value.status, err.value.code) == (0, "unreachable"), err.value
            assert "could not be reached" in err.value.message

        run(go)


@pytest.mark.parametrize(("body", "code", "message"), [
    (b"<html><body>404 Not Found</body></html>", "bad_response", "<html><body>404 Not Found</body></html>"),
    (b"", "bad_response", "HTTP 404"),
    (b'{"detail": "Not Found"}', "error", '{"detail": "Not Found"}'),
    (b'{"error": {"code": "not_found", "message": "no such message"}}', "not_found", "no such message"),
])
def test_a_refusal_reads_the_same_in_the_seed_002_and_the_sync_client(tmp_path: Path, body: bytes, code: str,
                                                                      message: str) -> None:
    """Review: a proxy's HTML 404 was code ``http_404`` to the seed-002 client (its asyncio client's own reader)
    and ``bad_response`` to CoordClient and the CLI; seed 002 names no error codes, so both read it one way."""
    canned = Canned()
    canned.answer = (b"HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: %d\r\n\r\n%s"
                     % (len(body), body))

    async def go() -> None:
        c = await get_coordination_client(url=canned.url, token="t0ken")
        with pytest.raises(api.CoordinationError) as err:
            await c.check_messages(to_instance="orchestrator")
        assert (err.value.status, err.value.code) == (404, code), err.value
        assert err.value.message == f"{message} [404 {code}]"
        with pytest.raises(HubError) as refused:
            c._sync.call("GET", "/api/coord/messages")
        assert (refused.value.status, refused.value.code, refused.value.message) == (404, code, message)

    try:
        run(go)
    finally:
        canned.close()


def test_a_write_answered_503_with_retry_after_is_sent_again_once_not_queued(live_hub: LiveHub) -> None:
    """Review: a seed-002 write answered 503 with ``Retry-After: 1`` was queued at once, where CoordClient waits
    once (within the call's timeout) and sends it again; it now goes through CoordClient's own request."""
    token, orch_token = live_hub.token("backend"), live_hub.token("orchestrator")
    with serving(FlakyProxy(live_hub.url)) as proxy:

        async def go() -> None:
            c = await get_coordination_client("backend", url=proxy.url, token=token)
            proxy.busy = 1  # the publish meets one 503 with Retry-After: 1, then the hub
            sent = await c.publish_message(MessageType.GENERAL, "busy once", "x", "orchestrator")
            assert not sent.queued and sent.id, sent
            assert len(c._sync.queue) == 0
            orch = await get_coordination_client("orchestrator", url=live_hub.url, token=orch_token)
            assert [m.id for m in await orch.check_messages()] == [sent.id]

        run(go)
    assert [path for _, method, path in proxy.seen if method == "POST"] == ["/api/coord/messages"] * 2


def test_a_write_whose_identity_check_the_hub_fails_500_is_queued_unchecked(live_hub: LiveHub) -> None:
    """Review: a 500 answered to the instance_id check (whoami) stopped a write with CoordinationError 500, where a
    gateway's 502 or 504 left it unchecked and queued it: a 500 says the hub is broken, not that the identity is
    wrong, so the write is queued unchecked too, and sent by the drain once the hub is well."""
    token, orch_token = live_hub.token("backend"), live_hub.token("orchestrator")
    with serving(FlakyProxy(live_hub.url)) as proxy:

        async def go() -> None:
            c = await get_coordination_client("backend", url=proxy.url, token=token)
            proxy.broken = {"/api/coord/whoami", "/api/coord/messages"}  # the hub fails both
            assert (await c.publish_message(MessageType.GENERAL, "while broken", "x", "orchestrator")).queued
            proxy.broken = set()
            assert (await c.sync()).applied == 1
            orch = await get_coordination_client("orchestrator", url=live_hub.url, token=orch_token)
            assert [m.payload.subject for m in await orch.check_messages()] == ["while broken"]

        run(go)


def test_two_tasks_on_one_client_keep_their_own_time_budgets(live_hub: LiveHub,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the tasks of one seed-002 client shared its CoordClient's call state, so a task's call that ended
    while another's waited out a Retry-After cleared that other's time budget, and the other's retry was sent
    past it. Each task's budget is now its own: the waiting task's retry, past its budget, is not sent (queued),
    and the other task's write, made meanwhile, is sent within its own."""
    token = live_hub.token("backend")
    monkeypatch.setenv("COORD_TIMEOUT", "1.5")
    a_waiting, b_done = threading.Event(), threading.Event()
    with serving(FlakyProxy(live_hub.url)) as proxy:

        async def go() -> None:
            c = await get_coordination_client("backend", url=proxy.url, token=token)
            assert not (await c.publish_message(MessageType.GENERAL, "settled", "x", "orchestrator")).queued

            def wait(seconds: float) -> None:
                """Task A's Retry-After wait, on its worker thread: task B's whole call runs meanwhile, and the
                wait lasts until A's budget is spent (as a wait on a loaded machine may)."""
                a_waiting.set()
                assert b_done.wait(30)
                while c._sync._left():
                    time.sleep(0.05)

            c._sync._sleep = wait
            proxy.busy = 1  # task A's write meets 503 with Retry-After: 1
            a = asyncio.create_task(c.publish_message(MessageType.GENERAL, "a", "x", "orchestrator"))
            assert await asyncio.to_thread(a_waiting.wait, 30)
            try:
                b = await c.publish_message(MessageType.GENERAL, "b", "x", "orchestrator")
            finally:
                b_done.set()
            assert not b.queued and b.id
            assert (await a).queued  # its retry would have been sent past its budget
            assert len(c._sync.queue) == 1

        run(go)
    assert [p for _, m, p in proxy.seen if m == "POST"] == ["/api/coord/messages"] * 3  # settled, a once, b


def test_a_notification_about_a_message_carries_its_message_id() -> None:
    """Seed 002's every notification had a message_id, and its users' code reads it (get_message(n.message_id));
    a redelivery or a dead letter is about a message too (seed-002 user run: message_id None for
    message.redelivered, so that code asked for message None). Other events have none."""
    from coordhub.client.seed002types import notification_event as _notification
    from coordhub.core.seed002 import seed_notification

    mid = "01a24f4b-41c0-72e3-9998-742852eb8cc4"
    redelivered = {"id": 26, "kind": "message.redelivered", "session_id": None, "subject_id": mid,
                   "created_at": "2026-12-07T07:02:45.974933Z", "payload": {"seq": 11, "deliveries": 2}}
    n = _notification(redelivered)
    assert (n.event, n.message_id, n.cursor, n.detail["deliveries"]) == ("message.redelivered", mid, 26, 2)
    assert seed_notification({**redelivered, "kind": "message.dead_lettered"})["message_id"] == mid
    other = seed_notification({**redelivered, "kind": "lease.expired", "subject_id": "lease-1"})
    assert "message_id" not in other and other["subject_id"] == "lease-1"


def test_a_notification_about_an_imported_message_names_it_by_its_seed_id(live_hub: LiveHub) -> None:
    """The sender's notification that an imported message was acked (or read) names it by its seed id, as its
    imported ``message_published`` notification does (seed-002 user run: the hub's UUID for it, which
    ``get_message`` of seed 002's code never saw)."""
    import httpx2

    item = {"kind": "message", "id": "msg-a810fae1", "from_session": "backend", "to_session": "orchestrator",
            "subject": "feature-auth", "body": "ready", "message_type": "READY_FOR_REVIEW", "requires_ack": True,
            "created_at": "2026-01-23T10:00:00Z"}
    r = httpx2.post(live_hub.url + "/api/coord/imports/seed002", json={"source": "t", "items": [item]},
                    headers={"Authorization": f"Bearer {live_hub.admin_token}"})
    assert r.status_code == 200 and r.json()["counts"]["imported"] == 1, r.text
    tokens = {s: live_hub.token(s) for s in ("backend", "orchestrator")}

    async def go() -> None:
        be = await get_coordination_client(instance_id="backend", url=live_hub.url, token=tokens["backend"])
        orch = await get_coordination_client(instance_id="orchestrator", url=live_hub.url,
                                             token=tokens["orchestrator"])
        await be.get_notifications(ack=True)  # past anything before the ack
        assert (await orch.ack_message("msg-a810fae1")).acknowledged_by == "orchestrator"
        notes = [n for n in await be.get_notifications() if n.event.startswith("message.")]
        assert [(n.event, n.message_id) for n in notes][-1:] == [("message.acked", "msg-a810fae1")], notes

    run(go)


def test_seed_code_calling_the_seeds_client_api_works(live_hub: LiveHub) -> None:
    """What seed 002's package exported and its client offered, called as seed code calls it (seed-002 user run:
    get_stats, CoordinationStats, generate_message_id and get_coordination_client_context were missing;
    get_presence(timeout_minutes=…) and message_id= were a TypeError; publish_message(t, s, d, "backend",
    "orchestrator"), the client's positional order, sent to backend; and naming an instance's inbox gave the
    broadcasts too, which seed 002's instance inbox never held)."""
    tokens = {s: live_hub.token(s) for s in ("backend", "orchestrator")}

    async def go() -> None:
        be = await api.get_coordination_client_context("backend", url=live_hub.url, token=tokens["backend"])
        orch = await get_coordination_client("orchestrator", url=live_hub.url, token=tokens["orchestrator"])
        assert be.is_connected
        first = await be.publish_message(MessageType.READY_FOR_REVIEW, "feat", "ready", "backend", "orchestrator")
        assert (first.from_instance, first.to_instance, first.requires_ack) == ("backend", "orchestrator", True)
        mid = api.generate_message_id()
        assert mid.startswith("msg-") and len(mid) == 12
        once = await be.publish_message(MessageType.GENERAL, "fyi", "x", "backend", "orchestrator", False, mid)
        assert (await be.publish_message(msg_type=MessageType.GENERAL, subject="fyi", description="x",
                                         from_instance="backend", to_instance="orchestrator", requires_ack=False,
                                         message_id=mid)).hub_id == once.hub_id  # sent once
        with pytest.raises(TypeError):
            await be.publish_message(MessageType.GENERAL, "s", "d", "orchestrator", to_instance="orchestrator")
        await orch.publish_message(MessageType.CONTRACT_APPROVED, "v2", "go", to_instance="all", requires_ack=False)

        mine = await orch.get_messages(api.MessageQuery(to_instance="orchestrator"))
        assert [m.payload.subject for m in mine] == ["fyi", "feat"]  # no broadcast in an instance's inbox
        assert [m.payload.subject for m in await orch.check_messages()] == ["v2", "fyi", "feat"]

        await be.register_instance("backend")
        await orch.register_instance("orchestrator")
        assert (await orch.get_presence(timeout_minutes=5))["backend"].active
        stats = await orch.get_stats()
        assert isinstance(stats, api.CoordinationStats)
        assert stats.to_dict() == {"total_messages": 3, "pending_messages": 1,
                                   "messages_by_type": {"READY_FOR_REVIEW": 1, "GENERAL": 1, "CONTRACT_APPROVED": 1},
                                   "active_instances": 2, "instance_names": ["backend", "orchestrator"]}
        be.set_correlation_id("req-1")
        assert be.correlation_id == "req-1"
        be.clear_correlation_id()
        assert be.correlation_id is None

        with pytest.raises(api.CoordinationError):
            await api.get_coordination_client_context("backend", url=f"http://127.0.0.1:{free_port()}",
                                                      token=tokens["backend"])

    run(go)


def test_get_presence_reads_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /presence answers 1,000 sessions a page (6793056): get_presence read the first alone, so an instance
    after the 1,000th by id was missing from it (and from get_stats' active instances); it reads on, 10 pages at
    most."""
    asked: list[Any] = []

    async def pages(self: Any, method: str, path: str, params: dict[str, Any] | None = None, kind: Any = None,
                    answered: dict[str, str] | None = None) -> Any:
        n = int((params or {}).get("cursor") or 0)
        asked.append(n)
        if answered is not None and n < 11:
            answered["coord-next-cursor"] = str(n + 1)
        return [{"session_id": f"h/s{n}", "state": "active"}]

    monkeypatch.setattr(api.CoordinationClient, "_read", pages)
    client = api.CoordinationClient(api.resolve("http://127.0.0.1:9", "t", "h/me"))
    found = run(lambda: client.get_presence())
    assert list(found) == [f"h/s{n}" for n in range(10)] and asked == list(range(10))


def test_the_seeds_constructor_and_config_forms_work(live_hub: LiveHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """`CoordinationClient(redis_client, config, instance_id)` and its keyword and `async with` forms, as seed 002's
    code makes its client, reach the hub COORD_URL/COORD_TOKEN name (seed-002 user run: TypeError on
    redis_client=; CoordinationConfig and get_coordination_config missing); the config's presence timeout is
    get_presence's default, as it was the seed's; what the hub cannot take says what to pass instead."""
    monkeypatch.setenv("COORD_URL", live_hub.url)
    monkeypatch.setenv("COORD_TOKEN", live_hub.token("backend"))
    monkeypatch.setenv("COORD_PRESENCE_TIMEOUT_MINUTES", "7")
    api.reset_coordination_config()
    redis_client = object()  # what seed code passes (a redis.asyncio.Redis): the hub does not use it

    async def go() -> None:
        config = api.get_coordination_config()
        assert (config.presence_timeout_minutes, config.redis_port, config.key_prefix) == (7, 6379, "coord")
        async with api.CoordinationClient(redis_client, config) as client:
            sent = await client.publish_message(MessageType.GENERAL, "s", "d", "backend", "orchestrator")
            assert sent.id and not sent.queued and client.config is config
        keyed = api.CoordinationClient(redis_client=redis_client, config=api.CoordinationConfig(
            presence_timeout_minutes=1), instance_id="backend")
        try:
            assert [m.payload.subject for m in await keyed.get_messages(api.MessageQuery(from_instance="backend"))] \
                == [] and keyed.instance_id == "backend"
            await keyed.register_instance("backend")
            assert keyed.config.presence_timeout_minutes == 1
            with pytest.raises(AttributeError, match="no Redis connection"):
                _ = keyed.redis
        finally:
            await keyed.aclose()
        with pytest.raises(api.CoordinationError, match="not a CoordinationConfig") as bad:
            api.CoordinationClient(redis_client, {"key_prefix": "coord"})  # type: ignore[arg-type]
        assert bad.value.code == "invalid"

    run(go)
    with pytest.raises(api.CoordinationError, match="REDIS_PORT 'sixty' is not a port"):
        api.CoordinationConfig.from_env({"REDIS_PORT": "sixty"})
    with pytest.raises(api.CoordinationError, match="COORD_TIMELINE_MAX_SIZE '9999.* is not a whole number"):
        api.CoordinationConfig.from_env({"COORD_TIMELINE_MAX_SIZE": "9" * 5000})  # past int()'s own digit limit
    api.reset_coordination_config()


def test_subscribe_notifications_calls_back_for_each_message_sent_to_the_session(live_hub: LiveHub) -> None:
    """Seed 002's `subscribe_notifications(instance, callback, include_broadcast)` (seed-002 user run: missing):
    the callback gets each message sent to the session from then on, and broadcasts only when asked; a callback
    that raises does not end it; cancelling the task stops it; another instance's id is refused."""
    tokens = {s: live_hub.token(s) for s in ("backend", "orchestrator")}

    async def go() -> None:
        be = await get_coordination_client("backend", url=live_hub.url, token=tokens["backend"])
        orch = await get_coordination_client("orchestrator", url=live_hub.url, token=tokens["orchestrator"])
        seen: dict[str, list[api.NotificationEvent]] = {"all": [], "direct": []}
        arrived = asyncio.Event()

        def collect(into: str) -> Callable[[api.NotificationEvent], Awaitable[None]]:
            async def callback(event: api.NotificationEvent) -> None:
                seen[into].append(event)
                arrived.set()
                if event.subject == "boom":
                    raise RuntimeError("a callback's own bug")
            return callback

        everything = await orch.subscribe_notifications("orchestrator", collect("all"))
        direct = await orch.subscribe_notifications(None, collect("direct"), include_broadcast=False)
        await be.publish_message(MessageType.GENERAL, "boom", "first", to_instance="orchestrator")
        await be.publish_message(MessageType.CONTRACT_APPROVED, "v2", "all of you", to_instance="all")
        last = await be.publish_message(MessageType.READY_FOR_REVIEW, "feat", "ready", to_instance="orchestrator")
        deadline = time.monotonic() + 20
        while (len(seen["all"]) < 3 or len(seen["direct"]) < 2) and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 1)
        assert [(n.event, n.subject, n.from_instance, n.to_instance) for n in seen["all"]] == [
            ("message_published", "boom", "backend", "orchestrator"), ("message_published", "v2", "backend", "all"),
            ("message_published", "feat", "backend", "orchestrator")], seen["all"]
        assert [n.subject for n in seen["direct"]] == ["boom", "feat"]
        assert seen["direct"][-1].message_id == last.id and seen["direct"][-1].msg_type == MessageType.READY_FOR_REVIEW
        for task in (everything, direct):
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        with pytest.raises(api.CoordinationError) as other:
            await orch.subscribe_notifications("backend", collect("all"))
        assert other.value.code == "forbidden"

    run(go)
    deadline = time.monotonic() + 10  # the readers end once their stream is closed, not at the next keep-alive
    while any(t.name.startswith("coord-notify-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("coord-notify-")]


def test_a_subscription_cancelled_while_it_connects_leaves_no_task_or_reader(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller that gives up on subscribe_notifications before the hub accepted the stream (asyncio.wait_for, a
    cancelled task) holds no task to cancel: nothing may go on calling back or reconnecting behind it."""
    from coordhub.client.seed002subscribe import subscribe
    from coordhub.client.settings import resolve

    monkeypatch.setenv("HOME", str(tmp_path))
    settings = resolve(url=f"http://127.0.0.1:{free_port()}", token="coord_" + "a" * 40, session="orchestrator",
                       timeout=30, start=tmp_path)

    async def nothing(event: api.NotificationEvent) -> None:
        raise AssertionError(event)

    async def go() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(subscribe(settings, "orchestrator", nothing), 0.5)
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(go())
    deadline = time.monotonic() + 5  # a reader between two attempts ends after its pause
    while any(t.name.startswith("coord-notify-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("coord-notify-")]
