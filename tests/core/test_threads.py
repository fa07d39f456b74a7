"""Reading a thread (core.messages.thread_page) on both backends: membership, order, visibility, paging."""

from __future__ import annotations

from typing import Any

from coordhub.core import messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.store.tx import Tx
from tests.core.test_messages import send

A, B, C = Actor("A/claude-main"), Actor("B/claude-main"), Actor("C/claude-main")
HIDDEN = 60_000  # messages of a thread its reader may not see


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


def test_a_thread_named_by_a_message_id_in_any_spelling_is_that_messages_thread(hub: Hub) -> None:
    # The hub takes a message id in any UUID spelling (read, ack, reply); a thread named by one answered [] unless
    # it was spelt as the hub stores it.
    root = send(hub, A, B.session_id, "q")
    send(hub, B, A.session_id, "a", reply_to=root["id"].upper())  # a reply to an upper-case id joins the thread
    send(hub, B, A.session_id, "named", thread_id="{" + root["id"].upper() + "}")
    shouted = send(hub, A, B.session_id, "elsewhere", thread_id="BD-12")  # a free name keeps its spelling
    assert shouted["thread_id"] == "BD-12" and thread(hub, A, "bd-12") == ([], None)
    for spelling in (root["id"], root["id"].upper(), root["id"].replace("-", ""), f"urn:uuid:{root['id']}"):
        assert thread(hub, A, spelling) == (["q", "a", "named"], None), spelling
    assert thread(hub, B, root["id"].upper(), after_seq=root["seq"]) == (["a", "named"], None)


def test_a_free_thread_name_that_only_python_reads_as_a_uuid_keeps_its_spelling(hub: Hub) -> None:
    # uuid.UUID reads "0x", "_" and "+" in its hex digits (int(..., 16)) and hyphens anywhere, spellings no route
    # takes as an id: through it "0x" + 30 hex digits named the thread "00" + those digits, dashed, and was stored
    # so, merging two free names and answering the sender another name than it gave.
    digits = "0123456789abcdef0123456789abcd"
    odd = ("0x" + digits, digits + "_f", "+" + digits + "e", "0123-4567-89ab-cdef-0123-4567-89ab-cdef")
    for name in odd:
        assert send(hub, A, B.session_id, name, thread_id=name)["thread_id"] == name
    dashed = "00012345-6789-abcd-ef01-23456789abcd"
    send(hub, A, B.session_id, "dashed", thread_id=dashed)
    for name in odd:
        assert thread(hub, B, name) == ([name], None)
    assert thread(hub, B, dashed.replace("-", "").upper()) == (["dashed"], None)


def test_a_free_thread_name_of_32_hex_digits_is_stored_and_listed_as_given(hub: Hub) -> None:
    # A free name that spells a UUID in another spelling than the hub's (an MD5 digest: 32 hex digits) was read as
    # an id and stored dashed, so the thread a sender named came back and was listed under another name.
    md5 = "5f4dcc3b5aa765d61d8327deb882cf99"
    assert send(hub, A, B.session_id, "named", thread_id=md5)["thread_id"] == md5  # before: 5f4dcc3b-5aa7-…
    assert send(hub, B, A.session_id, "shouted", thread_id=md5.upper())["thread_id"] == md5.upper()
    rows, _ = hub.query_sync(lambda tx, now: messages.thread_page(tx, B.session_id, md5))
    assert [(m["subject"], m["thread_id"]) for m in rows] == [("named", md5)]
    inbox = hub.query_sync(lambda tx, now: messages.inbox(tx, B.session_id, unread_only=True))
    assert [m["thread_id"] for m in inbox] == [md5]
    # a free name is matched as spelt (as "BD-12" is not "bd-12"); its dashed spelling names no thread of its own
    assert thread(hub, A, md5.upper()) == (["shouted"], None)
    assert thread(hub, A, "5f4dcc3b-5aa7-65d6-1d83-27deb882cf99") == ([], None)
    # a message's id in 32 hex digits still names that message's thread, stored as the hub spells the id
    root = send(hub, A, B.session_id, "root")
    joined = send(hub, B, A.session_id, "joined", thread_id=root["id"].replace("-", ""))
    assert joined["thread_id"] == root["id"]
    assert thread(hub, A, root["id"]) == (["root", "joined"], None)


def test_a_thread_stored_dashed_by_an_earlier_hub_is_still_read_by_its_given_name(hub: Hub) -> None:
    md5 = "0cc175b9c0f1b6a831c399e269772661"
    dashed = "0cc175b9-c0f1-b6a8-31c3-99e269772661"

    def legacy(tx: Tx, now: float) -> None:  # as the hub stored such a name before it kept names as given
        tx.messages.add({"id": "legacy-1", "from_session": A.session_id, "to_session": None, "subject": "old",
                         "body": "b", "thread_id": dashed, "importance": "normal", "requires_ack": 0,
                         "created_at": now})

    hub.mutate_sync(A, legacy)
    send(hub, A, None, "new", thread_id=md5)
    assert thread(hub, B, md5) == (["old", "new"], None)
    assert thread(hub, B, md5, limit=1)[0] == ["old"]
    _, after = thread(hub, B, md5, limit=1)
    assert after is not None and thread(hub, B, md5, after_seq=after) == (["new"], None)


def test_a_thread_read_does_not_pass_over_the_messages_the_session_may_not_see(hub: Hub) -> None:
    # Review: read along messages_by_thread alone, a page passed over every message of the thread its reader may not
    # see, so one token's day of messages to others in a thread (100,000) made each page of it scan them all.
    send(hub, A, None, "to all", thread_id="crowded")
    send(hub, A, None, "to all", thread_id="quiet")

    def flood(tx: Tx, now: float) -> None:
        for n in range(HIDDEN):
            tx.messages.add({"id": f"hidden-{n}", "from_session": B.session_id, "to_session": "X/nobody",
                             "subject": "s", "body": "b", "thread_id": "crowded", "importance": "normal",
                             "requires_ack": 0, "created_at": now})

    hub.mutate_sync(B, flood)

    assert thread(hub, C, "crowded") == (["to all"], None)
    # before, on SQLite: the 60,000 hidden ones (PostgreSQL's planner took the sender and recipient indexes already)
    assert _rows_passed_over(hub, C, "crowded") < 100


def _rows_passed_over(hub: Hub, who: Actor, thread_id: str) -> int:
    """Rows of ``messages`` the thread read's statement visits: counted, not timed (a benchmark times).

    On PostgreSQL, from ``EXPLAIN ANALYZE``: the rows each scan of the table returned and dropped by its filter.
    On SQLite, which shows no counts, from its plan: any step on ``messages`` that does not search an index by the
    thread and the session (``messages_thread_to``, ``messages_thread_from``) or the message's id counts as the
    thread's every row (:data:`HIDDEN`)."""
    statements: list[tuple[str, tuple[Any, ...]]] = []

    class Recorder:
        def all(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
            statements.append((sql, params))
            return []

    def count(tx: Tx, now: float) -> int:
        ex = tx.messages.ex
        tx.messages.ex = Recorder()
        try:
            tx.messages.thread(who.session_id, thread_id, 0, 100)
        finally:
            tx.messages.ex = ex
        [(sql, params)] = statements
        if ex.local:
            steps = [row["detail"] for row in ex.all("EXPLAIN QUERY PLAN " + sql, params)]
            passed = [d for d in steps if d.split()[0] in ("SCAN", "SEARCH") and " m " in f" {d} "
                      and not any(i in d for i in ("messages_thread_to", "messages_thread_from", "(id=?"))]
            return HIDDEN if passed else 0
        [[plan]] = ex.all("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)[0].values()
        return _scanned(plan["Plan"])

    return int(hub.query_sync(count))


def _scanned(node: dict[str, Any]) -> int:
    """Rows the scans of ``messages`` under a PostgreSQL plan node returned or dropped by their filter."""
    own = 0
    if node.get("Relation Name") == "messages":
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
    return own + sum(_scanned(child) for child in node.get("Plans", []))


def test_a_thread_named_by_a_message_the_sender_may_not_see_is_kept_as_a_free_name(hub: Hub) -> None:
    # A thread named by another spelling of a message's id was stored as that message's thread whether or not the
    # sender could see it, so the answer's thread_id told a third session whether someone's direct message existed.
    private = send(hub, A, B.session_id, "A to B")
    missing = "{" + "0" * 8 + private["id"][8:].upper() + "}"  # the same spelling of an id no message has
    for given in ("{" + private["id"].upper() + "}", missing):
        assert send(hub, C, B.session_id, "probe", thread_id=given)["thread_id"] == given  # unseen reads as missing
    assert thread(hub, C, private["id"]) == ([], None)
    assert thread(hub, B, private["id"]) == (["A to B"], None)  # C's probe did not join A's thread
    # whoever may see it still names its thread by any spelling
    assert send(hub, B, A.session_id, "joins", thread_id=private["id"].upper())["thread_id"] == private["id"]
