"""Reading a thread (core.messages.thread_page) on both backends: membership, order, visibility, paging."""

from __future__ import annotations

from typing import Any

from coordhub.core import messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from tests.core.test_messages import send

A, B, C = Actor("A/claude-main"), Actor("B/claude-main"), Actor("C/claude-main")


def thread(hub: Hub, who: Actor, thread_id: str, **kw: Any) -> tuple[list[str], int | None]:
    rows, after = hub.query_sync(lambda tx, now: messages.thread_page(tx, who.session_id, thread_id, **kw))
    return [m["subject"] for m in rows], after


def test_a_thread_holds_its_first_message_and_every_reply_oldest_first(hub: Hub) -> None:
    root = send(hub, A, B.session_id, "q")
    send(hub, A, B.session_id, "unrelated")
    reply = send(hub, B, None, "a", reply_to=root["id"])
    send(hub, A, B.session_id, "a2", reply_to=reply["id"])
    assert thread(hub, A, root["id"]) == (["q", "a", "a2"], None)
    assert thread(hub, B, root["id"]) == (["q", "a", "a2"], None)


def test_a_named_thread_shows_only_what_the_session_sent_was_sent_or_was_broadcast(hub: Hub) -> None:
    send(hub, A, B.session_id, "A to B", thread_id="bd-12")
    send(hub, B, A.session_id, "B to A", thread_id="bd-12")
    send(hub, C, None, "C to all", thread_id="bd-12")
    send(hub, B, C.session_id, "B to C", thread_id="bd-12")  # not A's to read
    send(hub, A, B.session_id, "elsewhere", thread_id="bd-13")
    assert thread(hub, A, "bd-12") == (["A to B", "B to A", "C to all"], None)
    assert thread(hub, C, "bd-12") == (["C to all", "B to C"], None)
    assert thread(hub, Actor("D/claude-main"), "bd-12") == (["C to all"], None)
    assert thread(hub, A, "no-such-thread") == ([], None)


def test_a_thread_pages_by_seq_and_each_session_has_its_own_read_state(hub: Hub) -> None:
    first = send(hub, A, None, "1", thread_id="t")
    for n in "234":
        send(hub, B, A.session_id, n, thread_id="t")
    page, after = thread(hub, A, "t", limit=2)
    assert page == ["1", "2"] and after is not None
    assert thread(hub, A, "t", limit=2, after_seq=after) == (["3", "4"], None)
    hub.mutate_sync(C, lambda tx, now: messages.mark_read(tx, C, first["id"], now))
    rows, _ = hub.query_sync(lambda tx, now: messages.thread_page(tx, C.session_id, "t"))
    assert [(m["subject"], m["read"]) for m in rows] == [("1", True)]
    rows, _ = hub.query_sync(lambda tx, now: messages.thread_page(tx, B.session_id, "t"))
    assert [(m["subject"], m["read"]) for m in rows][0] == ("1", False)  # C's read is C's alone


def test_a_message_named_as_a_thread_leads_it_and_paging_past_it_leaves_it_out(hub: Hub) -> None:
    other = send(hub, A, B.session_id, "in t1", thread_id="t1")
    send(hub, B, A.session_id, "names it", thread_id=other["id"])
    assert thread(hub, A, other["id"]) == (["in t1", "names it"], None)
    assert thread(hub, A, other["id"], after_seq=other["seq"]) == (["names it"], None)
    assert thread(hub, A, "t1") == (["in t1"], None)
