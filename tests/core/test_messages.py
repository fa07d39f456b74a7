"""Messages (contract §2.6) on both backends: per-recipient read state, broadcasts, threads, acks."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.core import messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import Forbidden, Invalid, NotFound

A, B, C = Actor("A/claude-main"), Actor("B/claude-main"), Actor("C/claude-main")


def send(hub: Hub, actor: Actor, to: str | None, subject: str, **kw: Any) -> dict[str, Any]:
    return hub.mutate_sync(actor, lambda tx, now: messages.send(
        tx, actor, to_session=to, subject=subject, body=f"body of {subject}", now=now, **kw)).body


def unread(hub: Hub, who: Actor) -> list[str]:
    return [m["subject"] for m in hub.query_sync(lambda tx, now: messages.inbox(tx, who.session_id,
                                                                                 unread_only=True))]


def read(hub: Hub, who: Actor, message_id: str) -> dict[str, Any]:
    return hub.mutate_sync(who, lambda tx, now: messages.mark_read(tx, who, message_id, now)).body


@pytest.mark.parametrize("to", [None, "ALL_SESSIONS", "ALL", ""])
def test_every_broadcast_spelling_reaches_everyone(hub: Hub, to: str | None) -> None:
    m = send(hub, A, to, "hello fleet")
    assert m["broadcast"] and m["to_session"] == "ALL_SESSIONS"
    assert unread(hub, B) == ["hello fleet"] and unread(hub, C) == ["hello fleet"]
    assert unread(hub, A) == []  # a sender does not get its own broadcast as news


def test_a_senders_own_broadcast_is_read_and_acked_for_it_and_for_no_one_else(hub: Hub) -> None:
    m = send(hub, A, None, "freeze", requires_ack=True)
    plain = send(hub, A, None, "fyi")
    seen = {r["id"]: r for r in hub.query_sync(lambda tx, now: messages.inbox(tx, A.session_id, unread_only=False))}
    assert (seen[m["id"]]["read_at"], seen[m["id"]]["acked_at"]) == (m["created_at"], m["created_at"])
    assert seen[plain["id"]]["acked_at"] is None  # no ack asked: none shown
    theirs = {r["id"]: r for r in hub.query_sync(lambda tx, now: messages.inbox(tx, B.session_id, unread_only=False))}
    assert (theirs[m["id"]]["read"], theirs[m["id"]]["acked_at"]) == (False, None)
    acked = hub.mutate_sync(B, lambda tx, now: messages.ack(tx, B, m["id"], now)).body
    assert acked["acked_at"] is not None
    theirs = {r["id"]: r for r in hub.query_sync(lambda tx, now: messages.inbox(tx, C.session_id, unread_only=False))}
    assert theirs[m["id"]]["acked_at"] is None  # B's ack is B's alone


def test_broadcast_read_by_one_stays_unread_for_others(hub: Hub) -> None:
    m = send(hub, A, None, "b1")
    read(hub, B, m["id"])
    assert unread(hub, B) == [] and unread(hub, C) == ["b1"]
    assert hub.query_sync(lambda tx, now: messages.unread_count(tx, C.session_id)) == 1
    assert hub.query_sync(lambda tx, now: messages.unread_count(tx, B.session_id)) == 0


def test_direct_message_only_to_recipient(hub: Hub) -> None:
    m = send(hub, A, B.session_id, "for B")
    assert unread(hub, B) == ["for B"] and unread(hub, C) == []
    with pytest.raises(NotFound):  # C cannot even see it
        read(hub, C, m["id"])
    with pytest.raises(Forbidden):  # the sender may see it but not mark it read for B
        read(hub, A, m["id"])
    assert read(hub, B, m["id"])["read"] is True
    assert unread(hub, B) == []


def test_inbox_mixes_direct_and_broadcast_in_order_and_peek_never_consumes(hub: Hub) -> None:
    send(hub, A, None, "1")
    send(hub, A, B.session_id, "2")
    send(hub, C, None, "3")
    send(hub, C, B.session_id, "4")
    assert unread(hub, B) == ["1", "2", "3", "4"]
    assert unread(hub, B) == ["1", "2", "3", "4"]  # reading the inbox is a peek


def test_out_of_order_reads_keep_the_rest_unread(hub: Hub) -> None:
    ids = [send(hub, A, None, f"b{i}")["id"] for i in range(6)]
    for i in (4, 1, 5):
        read(hub, B, ids[i])
    assert unread(hub, B) == ["b0", "b2", "b3"]
    for i in (0, 2, 3):
        read(hub, B, ids[i])
    assert unread(hub, B) == []
    send(hub, A, None, "later")
    assert unread(hub, B) == ["later"]
    cursor = hub.query_sync(lambda tx, now: tx.sessions.broadcast_cursor(B.session_id))
    assert cursor >= 6  # the cursor moved past everything B read


def test_history_lists_read_and_unread_newest_first(hub: Hub) -> None:
    a = send(hub, A, B.session_id, "x")
    send(hub, C, None, "y")
    read(hub, B, a["id"])
    history = hub.query_sync(lambda tx, now: messages.inbox(tx, B.session_id, unread_only=False))
    assert [(m["subject"], m["read"]) for m in history] == [("y", False), ("x", True)]
    page = hub.query_sync(lambda tx, now: messages.inbox(tx, B.session_id, unread_only=False, limit=1,
                                                         before_seq=history[0]["seq"]))
    assert [m["subject"] for m in page] == ["x"]


def test_threads_and_replies(hub: Hub) -> None:
    root = send(hub, A, B.session_id, "q")
    reply = send(hub, B, A.session_id, "a", reply_to=root["id"])
    assert reply["thread_id"] == root["id"] and reply["reply_to"] == root["id"]
    again = send(hub, A, B.session_id, "a2", reply_to=reply["id"])
    assert again["thread_id"] == root["id"]
    with pytest.raises(NotFound):  # C cannot reply into a conversation it cannot see
        send(hub, C, A.session_id, "x", reply_to=root["id"])


def test_ack_is_per_recipient_and_idempotent(hub: Hub) -> None:
    m = send(hub, A, None, "ack me", requires_ack=True, importance="urgent", message_type="READY_FOR_REVIEW")
    assert m["requires_ack"] and m["importance"] == "urgent" and m["message_type"] == "READY_FOR_REVIEW"
    first = hub.mutate_sync(B, lambda tx, now: messages.ack(tx, B, m["id"], now)).body
    second = hub.mutate_sync(B, lambda tx, now: messages.ack(tx, B, m["id"], now)).body
    assert first["acked_at"] == second["acked_at"] is not None and first["read"]
    assert (first["already"], second["already"]) == (False, True)  # the CLI says "already acked" from it
    assert unread(hub, C) == ["ack me"]
    assert hub.mutate_sync(C, lambda tx, now: messages.ack(tx, C, m["id"], now)).body["already"] is False


def test_read_and_ack_say_whether_they_changed_anything_and_only_news_is_an_event(hub: Hub) -> None:
    m = send(hub, A, B.session_id, "read me", requires_ack=True)
    events = hub.query_sync(lambda tx, now: tx.events.last_id())

    def by_b(call: Any) -> dict[str, Any]:
        answer: dict[str, Any] = hub.mutate_sync(B, lambda tx, now: call(tx, B, m["id"], now)).body
        return answer

    answers = [by_b(call) for call in (messages.mark_read, messages.mark_read, messages.ack, messages.ack)]
    assert [a["already"] for a in answers] == [False, True, False, True]  # read is not acked: the first ack is news
    assert hub.query_sync(lambda tx, now: tx.events.last_id()) == events + 2  # one message.read, one message.acked


@pytest.mark.parametrize(("field", "value"), [("importance", "critical"), ("to_session", "bad id with spaces")])
def test_bad_message_is_refused_and_nothing_stored(hub: Hub, field: str, value: str) -> None:
    kw: dict[str, Any] = {"importance": "normal"}
    to: str | None = B.session_id
    if field == "importance":
        kw["importance"] = value
    else:
        to = value
    with pytest.raises(Invalid):
        send(hub, A, to, "s", **kw)
    assert hub.query_sync(lambda tx, now: tx.events.last_id()) == 0


def test_inbox_cost_follows_unread_not_history(hub: Hub) -> None:
    """After reading 300 messages, the unread scan touches only the cursor's tail."""
    ids = [send(hub, A, None, f"m{i}")["id"] for i in range(300)]
    for mid in ids:
        read(hub, B, mid)
    cursor = hub.query_sync(lambda tx, now: tx.sessions.broadcast_cursor(B.session_id))
    tail = hub.query_sync(lambda tx, now: tx.messages.unread_broadcasts(B.session_id, cursor, 1000))
    assert tail == [] and cursor >= 300


def test_reply_without_recipient_goes_to_the_parents_sender(hub: Hub) -> None:
    root = send(hub, A, None, "question for all")
    reply = send(hub, B, None, "answer", reply_to=root["id"])
    assert reply["to_session"] == A.session_id and not reply["broadcast"]
    everyone = send(hub, B, "ALL_SESSIONS", "answer for all", reply_to=root["id"])
    assert everyone["broadcast"]
