"""Seed 002's eight ``coord_*`` tools, by name and argument, over ``/mcp`` (profiles ``seed002`` and ``all``)."""

from __future__ import annotations

import uuid

import pytest

from coordhub.core import messages
from coordhub.core.seed002 import INBOX_PAGE, hub_message_id
from coordhub.mcp.connect import drop_none
from tests.mcp.conftest import MODES, McpHub, error, ok

pytestmark = pytest.mark.anyio

SEED_TOOLS = {"coord_publish_message", "coord_check_messages", "coord_ack_message", "coord_get_presence",
              "coord_get_notifications", "coord_register_presence", "coord_deregister_presence",
              "coord_heartbeat"}


async def test_profiles_list_the_seed_tools(mcp_hub: McpHub) -> None:
    async with mcp_hub.client("backend", tools="seed002") as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
    assert set(listed) == SEED_TOOLS
    publish = listed["coord_publish_message"].input_schema
    assert publish["required"] == ["msg_type", "subject", "description"]
    assert publish["properties"]["to_instance"]["default"] == "orchestrator"
    assert publish["properties"]["requires_ack"]["default"] is True
    assert "READY_FOR_REVIEW" in publish["properties"]["msg_type"]["enum"]
    assert "from_instance" not in publish["properties"]  # the sender is never an argument
    check = listed["coord_check_messages"].input_schema["properties"]
    assert set(check) == {"to_instance", "from_instance", "msg_type", "pending_only", "limit", "before_seq"}
    assert set(listed["coord_register_presence"].input_schema["properties"]) == {"role", "worktree_path",
                                                                                   "session_id", "idempotency_key"}
    async with mcp_hub.client("backend", tools="all") as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert SEED_TOOLS < names and "send_message" in names
    async with mcp_hub.client("backend") as c:
        assert not SEED_TOOLS & {t.name for t in (await c.list_tools()).tools}


@pytest.mark.parametrize("mode", MODES)
async def test_publish_check_ack(mcp_hub: McpHub, mode: str) -> None:
    async with mcp_hub.client("backend", mode, "seed002") as be, mcp_hub.client("orchestrator", mode,
                                                                                "seed002") as orch:
        sent = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "READY_FOR_REVIEW", "subject": "feature-x", "description": "ready"}))
        assert sent["success"] and sent["from"] == "backend" and sent["to"] == "orchestrator"
        assert sent["type"] == "READY_FOR_REVIEW" and sent["requires_ack"] is True
        info = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "fyi", "description": "d", "requires_ack": False}))

        got = ok(await orch.call_tool("coord_check_messages", {}))
        assert got["count"] == 2 and [m["id"] for m in got["messages"]] == [info["message_id"], sent["message_id"]]
        first = got["messages"][1]
        assert first["from"] == "backend" and first["to"] == "orchestrator" and first["type"] == "READY_FOR_REVIEW"
        assert first["payload"] == {"subject": "feature-x", "description": "ready"}
        assert first["acknowledged"] is False and first["ack_by"] is None
        pending = ok(await orch.call_tool("coord_check_messages", {"pending_only": True}))
        assert [m["id"] for m in pending["messages"]] == [sent["message_id"]]
        typed = ok(await orch.call_tool("coord_check_messages", {"msg_type": "GENERAL"}))
        assert [m["id"] for m in typed["messages"]] == [info["message_id"]]
        assert ok(await orch.call_tool("coord_check_messages", {"from_instance": "frontend"}))["count"] == 0
        assert ok(await orch.call_tool("coord_check_messages", {"limit": 1}))["count"] == 1

        acked = ok(await orch.call_tool("coord_ack_message", {"message_id": sent["message_id"],
                                                              "comment": "merged"}))
        assert acked == {"success": True, "message_id": sent["message_id"], "acknowledged_by": "orchestrator",
                         "comment_message_id": acked["comment_message_id"]}
        assert ok(await orch.call_tool("coord_check_messages", {"pending_only": True}))["count"] == 0
        done = ok(await orch.call_tool("coord_check_messages", {"msg_type": "READY_FOR_REVIEW"}))["messages"][0]
        assert done["acknowledged"] is True and done["ack_by"] == "orchestrator"

        # the ack comment reaches the sender as a reply
        back = ok(await be.call_tool("coord_check_messages", {}))["messages"]
        assert [(m["from"], m["payload"]["description"]) for m in back] == [("orchestrator", "merged")]

        # another session's inbox is the hub's 403
        text = error(await be.call_tool("coord_check_messages", {"to_instance": "orchestrator"}))
        assert text.startswith("Error executing tool coord_check_messages: forbidden: ")


async def test_broadcast_and_bad_arguments(mcp_hub: McpHub) -> None:
    async with mcp_hub.client("orchestrator", tools="seed002") as orch, mcp_hub.client("backend",
                                                                                       tools="seed002") as be:
        sent = ok(await orch.call_tool("coord_publish_message", {
            "msg_type": "CONTRACT_APPROVED", "subject": "v2", "description": "go", "to_instance": "all"}))
        assert sent["to"] == "all"
        got = ok(await be.call_tool("coord_check_messages", {}))["messages"]
        assert [(m["id"], m["to"]) for m in got] == [(sent["message_id"], "all")]
        direct = ok(await orch.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "d", "description": "d", "to_instance": "backend"}))
        assert len(ok(await be.call_tool("coord_check_messages", {}))["messages"]) == 2
        only = ok(await be.call_tool("coord_check_messages", {"to_instance": "all"}))["messages"]
        assert [m["id"] for m in only] == [sent["message_id"]] and direct["to"] == "backend"
        # naming the instance is its inbox, which in seed 002 held no broadcast (seed-002 user run: it held them)
        mine = ok(await be.call_tool("coord_check_messages", {"to_instance": "backend"}))["messages"]
        assert [m["id"] for m in mine] == [direct["message_id"]]
        text = error(await orch.call_tool("coord_publish_message", {
            "msg_type": "NOT_A_TYPE", "subject": "s", "description": "d"}))
        assert "msg_type" in text
        text = error(await orch.call_tool("coord_check_messages", {"limit": 5000}))
        assert "limit" in text
        text = error(await orch.call_tool("coord_ack_message", {"message_id": str(uuid.uuid4())}))
        assert "not_found" in text


async def test_ack_names_a_seed_id_as_the_agent_gave_it(mcp_hub: McpHub) -> None:
    """An imported message acked by its seed id answers with that id, and an unknown seed id is named in the error
    (seed-002 user run: 'no message 'fed64557-…' for frontend', the UUID the seed id maps to, and the answer's
    message_id was that UUID too)."""
    await mcp_hub.token("orchestrator")
    item = {"kind": "message", "id": "msg-a810fae1", "from_session": "backend", "to_session": "orchestrator",
            "subject": "feature-auth", "body": "ready", "message_type": "READY_FOR_REVIEW", "requires_ack": True,
            "created_at": "2026-01-23T10:00:00Z"}
    done = await mcp_hub.rest("POST", "/api/coord/imports/seed002", json={"source": "test", "items": [item]})
    assert [r["outcome"] for r in done["results"]] == ["imported"], done
    async with mcp_hub.client("orchestrator", tools="seed002") as orch:
        acked = ok(await orch.call_tool("coord_ack_message", {"message_id": "msg-a810fae1"}))
        assert acked["message_id"] == "msg-a810fae1" and acked["acknowledged_by"] == "orchestrator"
        text = error(await orch.call_tool("coord_ack_message", {"message_id": "msg-nope0000"}))
        assert "not_found: no message 'msg-nope0000': neither a hub id (a UUID, as coord_check_messages shows it) " \
            "nor the seed id" in text, text
        assert hub_message_id("msg-nope0000") not in text


async def test_a_senders_own_ack_required_broadcast_is_not_pending_for_it(mcp_hub: McpHub) -> None:
    """Acks are per recipient, and a sender owes its own broadcast none: ``pending_only`` listed it for its sender
    (no ack of its own), a message that no ack was ever expected for. For everyone else it stays pending."""
    async with mcp_hub.client("orchestrator", tools="seed002") as orch, mcp_hub.client("backend",
                                                                                       tools="seed002") as be:
        sent = ok(await orch.call_tool("coord_publish_message", {
            "msg_type": "BLOCKING_ISSUE", "subject": "freeze", "description": "no merges", "to_instance": "all"}))
        assert sent["requires_ack"] is True
        assert ok(await orch.call_tool("coord_check_messages", {"pending_only": True}))["count"] == 0
        (mine,) = ok(await orch.call_tool("coord_check_messages", {}))["messages"]
        assert mine["acknowledged"] is True and mine["ack_timestamp"] == sent["timestamp"]
        theirs = ok(await be.call_tool("coord_check_messages", {"pending_only": True}))["messages"]
        assert [(m["id"], m["acknowledged"]) for m in theirs] == [(sent["message_id"], False)]


async def test_a_filter_looks_at_one_page_a_call_and_says_where_to_go_on(mcp_hub: McpHub) -> None:
    """Review: a filter matching nothing made one tool call read ten 500-message pages, charged as one request;
    now a call reads one page and the agent walks on with ``before_seq``."""
    async with mcp_hub.http({"Authorization": f"Bearer {await mcp_hub.token('frontend')}"}) as fe:
        r = await fe.post("/api/coord/messages", json={"to_session": "orchestrator", "subject": "old",
                                                       "message_type": "READY_FOR_REVIEW"})
        assert r.status_code == 201, r.text
        oldest = r.json()
    async with mcp_hub.http({"Authorization": f"Bearer {await mcp_hub.token('backend')}"}) as be:
        for i in range(1100):
            r = await be.post("/api/coord/messages", json={"to_session": "orchestrator", "subject": f"m{i}",
                                                           "body": "x" * 200, "message_type": "GENERAL"})
            assert r.status_code == 201, r.text
    async with mcp_hub.client("orchestrator", tools="seed002") as orch:
        walked, found, before = 0, [], None
        for _ in range(4):
            got = ok(await orch.call_tool("coord_check_messages", drop_none({
                "from_instance": "frontend", "before_seq": before})))
            assert got["scanned"] <= 500
            walked += got["scanned"]
            found += got["messages"]
            before = got["next_before_seq"]
            if before is None:
                break
            assert f"before_seq={before}" in got["more"] and got["count"] == 0
        assert walked == 1101 and [m["hub_id"] for m in found] == [oldest["id"]] and before is None
        assert "more" not in got

        newest = ok(await orch.call_tool("coord_check_messages", {"limit": 3}))
        assert newest["count"] == 3 and newest["scanned"] == 3
        assert [m["payload"]["subject"] for m in newest["messages"]] == ["m1099", "m1098", "m1097"]
        nxt = ok(await orch.call_tool("coord_check_messages", {"limit": 2, "before_seq": newest["next_before_seq"]}))
        assert [m["payload"]["subject"] for m in nxt["messages"]] == ["m1096", "m1095"]
        big = ok(await orch.call_tool("coord_check_messages", {"limit": 1000, "msg_type": "GENERAL"}))
        assert big["count"] == 500 and big["next_before_seq"] == big["messages"][-1]["seq"]


def test_the_inbox_page_of_the_seed_tools_is_the_hubs_largest() -> None:
    """The MCP tool, the CLI and the Python API page by the stdlib-only ``INBOX_PAGE``: it must be the hub's bound."""
    assert INBOX_PAGE == messages.MAX_INBOX


async def test_presence_register_heartbeat_deregister(mcp_hub: McpHub) -> None:
    async with mcp_hub.client("backend", tools="seed002") as be, mcp_hub.client("frontend",
                                                                                tools="seed002") as fe:
        reg = ok(await be.call_tool("coord_register_presence", {"role": "backend", "worktree_path": "/w/be",
                                                                "session_id": "cc-123"}))
        assert reg["success"] and reg["role"] == "backend" and reg["registered_at"] and reg["incarnation"] == 1
        seen = ok(await fe.call_tool("coord_get_presence", {}))["instances"]
        assert seen["backend"]["active"] is True and seen["backend"]["stale"] is False
        assert seen["backend"]["session_id"] == "cc-123" and seen["backend"]["instance_id"] == "backend"

        beat = ok(await be.call_tool("coord_heartbeat", {"role": "backend"}))
        assert beat["success"] and beat["last_heartbeat"]

        for tool in ("coord_heartbeat", "coord_register_presence", "coord_deregister_presence"):
            text = error(await fe.call_tool(tool, {"role": "backend"}))
            assert "identity comes from the token" in text and "'frontend'" in text

        assert ok(await be.call_tool("coord_deregister_presence", {"role": "backend"})) == {
            "success": True, "role": "backend"}
        seen = ok(await fe.call_tool("coord_get_presence", {}))["instances"]
        assert seen["backend"]["active"] is False and seen["backend"]["state"] == "offline"


async def test_notifications_are_a_cursor(mcp_hub: McpHub) -> None:
    async with mcp_hub.client("backend", tools="seed002") as be, mcp_hub.client("orchestrator",
                                                                                tools="seed002") as orch:
        sent = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "BLOCKING_ISSUE", "subject": "db down", "description": "help"}))
        first = ok(await orch.call_tool("coord_get_notifications", {}))
        assert first["count"] == 1
        note = first["notifications"][0]
        assert note["event"] == "message_published" and note["message_id"] == sent["message_id"]
        assert note["from"] == "backend" and note["to"] == "orchestrator" and note["type"] == "BLOCKING_ISSUE"
        again = ok(await orch.call_tool("coord_get_notifications", {}))
        assert again == first  # reading never destroys

        acked = ok(await orch.call_tool("coord_get_notifications", {"ack": True}))
        assert acked["notifications"] == first["notifications"] and acked["cursor"] == note["id"]
        after = ok(await orch.call_tool("coord_get_notifications", {}))
        assert after["count"] == 0 and after["cursor"] == note["id"]

        second = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "s2", "description": "d"}))
        third = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "s3", "description": "d"}))
        one = ok(await orch.call_tool("coord_get_notifications", {"limit": 1, "ack": True}))
        assert [n["message_id"] for n in one["notifications"]] == [second["message_id"]]
        rest = ok(await orch.call_tool("coord_get_notifications", {}))
        assert [n["message_id"] for n in rest["notifications"]] == [third["message_id"]]


async def test_publish_to_an_instance_the_hub_never_saw_says_so(mcp_hub: McpHub) -> None:
    await mcp_hub.token("frontend")
    async with mcp_hub.client("backend", "legacy", "seed002") as be:
        typo = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "s", "description": "d", "to_instance": "frontedn"}))
        assert typo["success"] and typo["recipient_known"] is False
        assert "never seen frontedn" in typo["warning"] and "did you mean frontend" in typo["warning"]
        known = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "s", "description": "d", "to_instance": "FRONTEND"}))
        assert known["recipient_known"] is True and known["to"] == "frontend" and "warning" not in known
        everyone = ok(await be.call_tool("coord_publish_message", {
            "msg_type": "GENERAL", "subject": "s", "description": "d", "to_instance": "all"}))
        assert everyone["recipient_known"] is None
