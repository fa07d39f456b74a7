"""One tool call cannot put megabytes into an agent's context: ``inbox``, ``wait_for_messages``, ``conv_inbox``,
``conv_show`` and the tools answering one message (``read_message``, ``ack_message``, ``send_message``, ``reply``).

The hub pages conversations and messages at about 4 MiB and a turn may hold
256 KiB (its body, and its file with the body again); a message body may hold
512 KiB. Before, ``conv_inbox`` and ``conv_show`` answered a whole hub page
(measured: 8 pending turns of 200,000 characters made one ``conv_inbox``
result of 3.2 MB), ``inbox`` and ``wait_for_messages`` each message with its
body cut to 4,000 characters but as many as the hub answered (30 messages of
100,000 characters: one ``inbox`` result of 143,000 characters), and the
tools answering one message answered whatever body the hub sent. Each test
goes through the real SDK client to a real hub.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.mcp.conftest import McpHub, ok, text

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
RESULT_CHARS = 50_000  # coordhub.mcp.bounds.RESULT_CHARS
LISTED_BODY = 4_000  # coordhub.mcp.bounds.LISTED_BODY
TURN_TEXT = 20_000  # coordhub.mcp.tools.TURN_TEXT
MESSAGE_BODY = 524_288  # coordhub.mcp.bounds.MESSAGE_BODY
SLACK = 2_000  # what the indented text block adds to the records' compact JSON (a few hundred characters each)


async def send_turns(mcp_hub: McpHub, conversation: str, bodies: list[str]) -> list[int]:
    """A sends ``bodies`` as the turns of ``conversation`` to B; their ids."""
    await mcp_hub.declare(A, "host-a", "career")
    await mcp_hub.declare(B, "host-b", "homelab")
    ids = []
    for n, body in enumerate(bodies):
        sent = await mcp_hub.rest("POST", "/api/coord/conversations/turns", await mcp_hub.token(A), json={
            "to": "host-b.homelab", "conversation_id": conversation, "type": "request" if n == 0 else "progress",
            "body": body})
        ids.append(sent["id"])
    return ids


async def test_conv_inbox_cuts_each_turn_as_inbox_cuts_bodies_and_answers_a_bounded_result(mcp_hub: McpHub) -> None:
    """Each listed turn's body and content are cut to 4,000 characters (marked as inbox marks a body), a call
    answers about RESULT_CHARS and its last line says where to read on; reading on reaches every turn."""
    bodies = [f"{n} " + "x" * 200_000 for n in range(8)]
    ids = await send_turns(mcp_hub, "big", bodies)
    async with mcp_hub.client(B) as b:
        first = await b.call_tool("conv_inbox", {})
        page = ok(first)
        assert len(text(first)) <= RESULT_CHARS + SLACK
        assert 1 <= page["count"] < 8
        turn = page["turns"][0]
        assert turn["body"] == bodies[0][:LISTED_BODY] and turn["body_truncated"] is True
        assert turn["body_chars"] == len(bodies[0])
        assert len(turn["content"]) == LISTED_BODY and turn["content_truncated"] is True
        assert turn["content_chars"] > len(bodies[0])
        assert text(first).splitlines()[-2].startswith('  "note": "More turns are pending')
        assert f"after={page['next_after']} " in page["note"]
        seen, after = [], 0
        for _ in range(10):
            page = ok(await b.call_tool("conv_inbox", {"after": after}))
            if not page["turns"]:
                break
            seen += [t["id"] for t in page["turns"]]
            after = page["next_after"]
        assert seen == ids
        assert "note" not in page


async def test_conv_show_answers_about_result_chars_a_call_and_its_last_line_says_where_to_read_on(
        mcp_hub: McpHub) -> None:
    """Six turns of 12,000 characters (about 25,000 each with their files) are read whole, a few a call: each
    result ends with a note naming the after of the next, and reading on reaches every turn in order."""
    bodies = [f"{n} " + "y" * 12_000 for n in range(6)]
    ids = await send_turns(mcp_hub, "long", bodies)
    async with mcp_hub.client(A) as a:
        seen, after, calls = [], 0, 0
        while True:
            result = await a.call_tool("conv_show", {"conversation_id": "long", "after": after})
            page = ok(result)
            calls += 1
            assert len(text(result)) <= RESULT_CHARS + SLACK
            assert [t["body"] for t in page["turns"]] == bodies[len(seen):len(seen) + len(page["turns"])]
            assert not any("body_truncated" in t or "content_truncated" in t for t in page["turns"])
            seen += [t["id"] for t in page["turns"]]
            if page["next_after"] is None:
                assert "note" not in page
                break
            assert page["next_after"] == seen[-1]
            assert text(result).splitlines()[-2] == (f'  "note": "More turns follow: call conv_show with '
                                                     f'after={seen[-1]} to read on."')
            after = page["next_after"]
        assert seen == ids and calls == 3
        assert page["conversation_id"] == "long" and page["last_sequence"] == 6


async def test_conv_show_cuts_a_turn_larger_than_the_budget_and_says_how_to_read_it_whole(mcp_hub: McpHub) -> None:
    """A turn of 250,000 characters is answered alone with its body and content cut to TURN_TEXT, the note
    counting what was left out and naming where the whole turn is; that place answers it whole."""
    big = "z" * 250_000
    ids = await send_turns(mcp_hub, "huge", [big, "small"])
    async with mcp_hub.client(A) as a:
        result = await a.call_tool("conv_show", {"conversation_id": "huge"})
        page = ok(result)
        assert len(text(result)) <= RESULT_CHARS + SLACK
        [turn] = page["turns"]
        assert turn["body"] == big[:TURN_TEXT] and (turn["body_truncated"], turn["body_chars"]) == (True, 250_000)
        assert len(turn["content"]) == TURN_TEXT and turn["content_truncated"] is True
        left = 250_000 - TURN_TEXT + turn["content_chars"] - TURN_TEXT
        whole = f"GET /api/coord/conversations/huge?after={ids[0] - 1}&limit=1"
        assert page["note"] == (
            f"Turn {ids[0]} is cut to {TURN_TEXT:,} characters of its body and of its content: {left:,} "
            f"characters left out; read it whole outside MCP: {whole} (`coord conv show huge --json` prints the first "
            f"page of turns whole). More turns follow: call conv_show with after={ids[0]} to read on.")
        assert text(result).splitlines()[-2].startswith('  "note": ')
        method, path = whole.split(" ")
        assert (await mcp_hub.rest(method, path, await mcp_hub.token(A)))["turns"][0]["body"] == big
        rest = ok(await a.call_tool("conv_show", {"conversation_id": "huge", "after": page["next_after"]}))
        assert [t["body"] for t in rest["turns"]] == ["small"] and rest["next_after"] is None


async def send_messages(mcp_hub: McpHub, count: int, chars: int) -> list[dict[str, Any]]:
    """B sends A ``count`` messages with bodies of about ``chars`` characters; the hub's answers, oldest first."""
    b = await mcp_hub.token(B)
    return [await mcp_hub.rest("POST", "/api/coord/messages", b, json={
        "to_session": A, "subject": f"m{n}", "body": f"{n} " + "m" * chars}) for n in range(count)]


async def unread(mcp_hub: McpHub) -> int:
    """A's unread count, as the hub answers it."""
    return int((await mcp_hub.rest("GET", "/api/coord/messages/unread-count", await mcp_hub.token(A)))["unread"])


async def read_all(client: Client, tool: str, args: dict[str, Any], cursor: str, read_on: str,
                   total: int) -> list[str]:
    """The ids of the messages ``tool`` answers, reading on as each note says until a result has none: each result
    holds about RESULT_CHARS and its last line is the note naming the ``cursor`` (the last seq answered)."""
    seen: list[str] = []
    for _ in range(total):
        result = await client.call_tool(tool, args)
        page = ok(result)
        assert len(text(result)) <= RESULT_CHARS + SLACK
        assert page["count"] == len(page["messages"]) >= 1
        assert all(m["body_truncated"] and len(m["body"]) == LISTED_BODY for m in page["messages"])
        seen += [m["id"] for m in page["messages"]]
        if "note" not in page:
            return seen
        last = page["messages"][-1]["seq"]
        assert page["note"] == (f"{total - len(seen)} more messages were left out (a call answers about "
                                f"{RESULT_CHARS:,} characters; none was marked read): call {read_on}{last} to "
                                f"read on.")
        assert text(result).splitlines()[-2].startswith('  "note": ')
        args = {**args, cursor: last}
    raise AssertionError(f"{tool} did not reach the end in {total} calls")


async def test_inbox_answers_about_result_chars_a_call_and_its_note_reads_on_to_every_message(
        mcp_hub: McpHub) -> None:
    """30 messages of 100,000 characters (each listed as 4,000): a call answers about RESULT_CHARS of them and
    names the after_seq (unread) or before_seq (all) to read on; reading on reaches every message in order, and
    none is marked read."""
    sent = [m["id"] for m in await send_messages(mcp_hub, 30, 100_000)]
    async with mcp_hub.client(A) as a:
        assert await read_all(a, "inbox", {"limit": 30}, "after_seq", "inbox with after_seq=", 30) == sent
        assert await read_all(a, "inbox", {"unread_only": False, "limit": 30}, "before_seq",
                              "inbox with unread_only=false and before_seq=", 30) == sent[::-1]
    assert await unread(mcp_hub) == 30


async def test_wait_for_messages_answers_about_result_chars_and_leaves_the_rest_unread_and_unshown(
        mcp_hub: McpHub) -> None:
    """wait_for_messages answers about RESULT_CHARS of 30 long messages, its note naming the after_seq to read
    on; reading on reaches every one, and none was marked read or shown: the hook's next ask still gets all 30."""
    sent = [m["id"] for m in await send_messages(mcp_hub, 30, 100_000)]
    async with mcp_hub.client(A) as a:
        assert await read_all(a, "wait_for_messages", {"timeout": 0}, "after_seq",
                              "wait_for_messages with timeout=0 and after_seq=", 30) == sent
    assert await unread(mcp_hub) == 30
    shown = await mcp_hub.rest("POST", "/api/coord/messages/unshown", await mcp_hub.token(A), json={"limit": 500})
    assert [m["id"] for m in shown["messages"]] == sent and shown["more"] == 0


async def test_a_hub_page_ended_at_4_mib_is_said_to_be_short_with_where_to_read_on(mcp_hub: McpHub) -> None:
    """Ten messages of 500,000 characters: the hub ends its page after 8 (about 4 MiB of text, told in its
    Coord-Next-After-Seq or Coord-Next-Before-Seq header), so inbox and wait_for_messages answer 8, well within
    RESULT_CHARS; each says more follow and names where to read on, and reading on gives the last 2 with no
    note."""
    sent = [m["id"] for m in await send_messages(mcp_hub, 10, 500_000)]
    short = "More messages follow (none was marked read)"
    async with mcp_hub.client(A) as a:
        for tool, args, cursor, read_on, order in (
                ("inbox", {}, "after_seq", "inbox with after_seq=", sent),
                ("inbox", {"unread_only": False}, "before_seq", "inbox with unread_only=false and before_seq=",
                 sent[::-1]),
                ("wait_for_messages", {"timeout": 0}, "after_seq", "wait_for_messages with timeout=0 and after_seq=",
                 sent)):
            result = await a.call_tool(tool, args)
            page = ok(result)
            assert [m["id"] for m in page["messages"]] == order[:8] and len(text(result)) <= RESULT_CHARS
            last = page["messages"][-1]["seq"]
            assert page["note"] == f"{short}: call {read_on}{last} to read on."
            rest = ok(await a.call_tool(tool, {**args, cursor: last}))
            assert [m["id"] for m in rest["messages"]] == order[8:] and "note" not in rest
    assert await unread(mcp_hub) == 10


async def test_a_whole_page_of_megabytes_says_nothing_more_follows(mcp_hub: McpHub) -> None:
    """Five messages of 500,000 characters fit one hub page, which then carries no next-page header: inbox,
    wait_for_messages and seed 002's coord_check_messages answer them with no note and nothing to read on (review:
    the tools guessed a page over 2 MiB, or 1 MiB for coord_check_messages, may have been cut, and sent the agent
    to read on for nothing)."""
    sent = [m["id"] for m in await send_messages(mcp_hub, 5, 500_000)]
    async with mcp_hub.client(A) as a:
        for tool, args, order in (("inbox", {}, sent), ("inbox", {"unread_only": False}, sent[::-1]),
                                  ("wait_for_messages", {"timeout": 0}, sent)):
            page = ok(await a.call_tool(tool, args))
            assert [m["id"] for m in page["messages"]] == order and "note" not in page, (tool, args)
    async with mcp_hub.client(A, tools="seed002") as a:
        page = ok(await a.call_tool("coord_check_messages", {}))
        assert [m["hub_id"] for m in page["messages"]] == sent[::-1]
        assert page["next_before_seq"] is None and "more" not in page


def test_a_list_cut_without_a_seq_to_name_says_to_read_these_and_call_again() -> None:
    from coordhub.mcp.tools import messages_listed

    found = [{"id": str(n), "body": "x" * 30_000} for n in range(20)]
    answer = messages_listed(found, False, "inbox with after_seq=")
    assert 1 < answer["count"] < 20 and answer["note"].endswith(": read or ack these and call again.")


def test_the_bound_of_read_message_is_the_hubs_bound_of_a_message_body() -> None:
    from coordhub.api.message_schemas import MessageSend
    from coordhub.mcp import bounds as mcp_bounds

    bounds = [m.max_length for m in MessageSend.model_fields["body"].metadata if hasattr(m, "max_length")]
    assert bounds == [mcp_bounds.MESSAGE_BODY] == [MESSAGE_BODY]


async def test_read_message_gives_a_body_whole_up_to_the_hubs_bound_and_cuts_a_larger_answer(
        mcp_hub: McpHub, tmp_path: Path) -> None:
    """A body at the hub's bound is answered whole, unmarked; a hub answering a larger one (its database
    written behind its back, as a hostile hub would answer) is cut to the bound with a note."""
    b = await mcp_hub.token(B)
    at_bound = await mcp_hub.rest("POST", "/api/coord/messages", b,
                                  json={"to_session": A, "subject": "at bound", "body": "a" * MESSAGE_BODY})
    past = await mcp_hub.rest("POST", "/api/coord/messages", b, json={"to_session": A, "subject": "past", "body": "b"})
    with sqlite3.connect(tmp_path / "coord.db") as db:
        db.execute("UPDATE messages SET body = ? WHERE id = ?", ("b" * 700_000, past["id"]))
    db.close()
    async with mcp_hub.client(A) as a:
        whole = ok(await a.call_tool("read_message", {"message_id": at_bound["id"]}))
        assert whole["body"] == "a" * MESSAGE_BODY and whole["read"] is True
        assert not {"body_truncated", "body_chars", "note"} & whole.keys()
        result = await a.call_tool("read_message", {"message_id": past["id"]})
        cut = ok(result)
        assert cut["body"] == "b" * MESSAGE_BODY and (cut["body_truncated"], cut["body_chars"]) == (True, 700_000)
        assert cut["note"] == (f"The hub answered a body of 700,000 characters, past its own bound of "
                               f"{MESSAGE_BODY:,} for a message: the first {MESSAGE_BODY:,} are shown.")
        assert len(text(result)) < MESSAGE_BODY + SLACK


def overwrite(db_path: Path, sql: str, *args: Any) -> None:
    """Write the hub's database behind its back, as a hostile or broken hub would answer."""
    db = sqlite3.connect(db_path)
    with db:
        assert db.execute(sql, args).rowcount == 1
    db.close()


async def test_ack_message_send_message_and_reply_cut_a_body_past_the_hubs_bound(
        mcp_hub: McpHub, tmp_path: Path) -> None:
    """ack_message, send_message and reply answer the message the hub sends back: one with a body past the hub's
    bound (a message's body written behind its back; a write's stored answer, which the hub replays to a retry with
    the same idempotency key) is cut to the bound with read_message's note."""
    note = (f"The hub answered a body of 700,000 characters, past its own bound of {MESSAGE_BODY:,} for a "
            f"message: the first {MESSAGE_BODY:,} are shown.")
    sent = await mcp_hub.rest("POST", "/api/coord/messages", await mcp_hub.token(B),
                              json={"to_session": A, "subject": "past", "body": "b"})
    overwrite(tmp_path / "coord.db", "UPDATE messages SET body = ? WHERE id = ?", "b" * 700_000, sent["id"])
    async with mcp_hub.client(A) as a:
        results = [await a.call_tool("ack_message", {"message_id": sent["id"]})]
        for tool, args in (("send_message", {"to": B, "subject": "s", "body": "short"}),
                           ("reply", {"message_id": sent["id"], "body": "short"})):
            args["idempotency_key"] = f"{tool}-1"
            first = ok(await a.call_tool(tool, args))
            assert first["body"] == "short" and "note" not in first
            overwrite(tmp_path / "coord.db", "UPDATE idempotency SET body = replace(body, '\"short\"', ?) "
                      "WHERE key LIKE ?", f'"{"r" * 700_000}"', f"%{tool}-1")
            results.append(await a.call_tool(tool, args))
    for result, letter in zip(results, "brr", strict=True):
        cut = ok(result)
        assert cut["body"] == letter * MESSAGE_BODY and (cut["body_truncated"], cut["body_chars"]) == (True, 700_000)
        assert cut["note"] == note and len(text(result)) < MESSAGE_BODY + SLACK
    assert ok(results[0])["acked_at"] is not None
