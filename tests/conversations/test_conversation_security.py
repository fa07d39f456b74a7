"""A security review of conversations, over HTTP on both backends: only a conversation's parties write, read and
release it (an outsider gets the 404 of an id nobody used); turn events reach the parties only; a conversation's
turns come in bounded pages; what a conversation and a session store is bounded; a key belongs to one session
and a signed file's SEQUENCE is the one it gets (no replay); a second release answers the first."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.core import conversations, paging, signingkeys, turnbounds
from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key, org
from tests.conversations.test_turns_api import agent, send

URL = "/api/coord/conversations"


@pytest.fixture
def trio(api: Api) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """alice (velox.career) and bob (ratio.web) talk; mallory (ostra.evil) is no party to it."""
    return (agent(api, "velox/alice", "velox", "career"), agent(api, "ratio/bob", "ratio", "web"),
            agent(api, "ostra/mallory", "ostra", "evil"))


def field_turn(api: Api, headers: dict[str, str], to: str, kind: str = "request", body: str = "x",
               conversation: str = "prep-fixup", **extra: Any) -> Any:
    return api.post(f"{URL}/turns", json={"to": to, "conversation_id": conversation, "type": kind, "body": body,
                                          **extra}, headers=headers)


def opened(api: Api, alice: dict[str, str], bob: dict[str, str]) -> None:
    assert field_turn(api, alice, "ratio.web", body="SECRET: the new password is hunter2",
                      title="Rotate the DB password").status_code == 201
    assert field_turn(api, bob, "velox.career", "progress", "on it").status_code == 201


def same_404(api: Api, r: Any, ghost: Any) -> None:
    """``r`` is the answer ``ghost`` (the same request for an id nobody used) was, the id aside."""
    assert r.status_code == ghost.status_code == 404, (r.text, ghost.text)
    assert r.json() == {k: v.replace("ghost", "prep-fixup") if isinstance(v, str) else
                        {kk: vv.replace("ghost", "prep-fixup") for kk, vv in v.items()}
                        for k, v in ghost.json().items()}


def test_an_outsider_cannot_join_read_answer_or_release(api: Api, trio: Any) -> None:
    alice, bob, mallory = trio
    opened(api, alice, bob)
    same_404(api, api.get(f"{URL}/prep-fixup", headers=mallory), api.get(f"{URL}/ghost", headers=mallory))
    # review: next-sequence answered 404 here and 1 for an unused id, telling an outsider which ids exist
    taken = api.get(f"{URL}/prep-fixup/next-sequence", headers=mallory)
    ghost = api.get(f"{URL}/ghost/next-sequence", headers=mallory)
    assert taken.status_code == ghost.status_code == 200, taken.text
    assert taken.json() == {**ghost.json(), "conversation_id": "prep-fixup"} and ghost.json()["next_sequence"] == 1
    same_404(api, api.post(f"{URL}/prep-fixup/release", json={"to": "ratio.web"}, headers=mallory),
             api.post(f"{URL}/ghost/release", json={"to": "ratio.web"}, headers=mallory))
    injected = field_turn(api, mallory, "ostra.evil", "progress")  # joining by writing to itself
    assert injected.status_code == 404 and injected.json()["error"]["code"] == "not_found", injected.text
    assert field_turn(api, mallory, "velox.career", "complete", "done (not really)").status_code == 404
    refused = api.post(f"{URL}/turns", json={"to": "velox.career", "content": org(version="4")}, headers=mallory)
    assert refused.status_code == 404  # not even a refused turn is recorded in someone else's conversation
    conv = api.get(f"{URL}/prep-fixup", headers=api.admin).json()
    assert (conv["last_sequence"], conv["state"], conv["participants"]) == (2, "open", ["ratio.web", "velox.career"])
    assert [t["author"] for t in conv["turns"]] == ["velox/alice", "ratio/bob"]
    assert [c["conversation_id"] for c in api.get(URL, headers=mallory).json()] == []
    assert len(api.get(f"{URL}/inbox", headers=alice).json()) == 1


def test_a_party_brings_a_new_address_in_by_writing_to_it(api: Api, trio: Any) -> None:
    alice, bob, mallory = trio
    opened(api, alice, bob)
    assert field_turn(api, bob, "ostra.evil", "query", "can you help?").status_code == 201
    conv = api.get(f"{URL}/prep-fixup", headers=mallory)
    assert conv.status_code == 200 and conv.json()["participants"] == ["ostra.evil", "ratio.web", "velox.career"]
    assert field_turn(api, mallory, "ratio.web", "progress", "yes").json()["sequence"] == 4
    assert api.get(f"{URL}/prep-fixup/next-sequence", headers=mallory).json()["next_sequence"] == 5


def test_turn_events_reach_the_parties_only(api: Api, trio: Any) -> None:
    alice, bob, mallory = trio
    ratio_sync = api.token("ratio/sync")  # another session of the destination's machine (sync, watch)
    opened(api, alice, bob)
    rel = api.post(f"{URL}/prep-fixup/release", json={}, headers=alice)
    assert rel.status_code == 201

    def seen(headers: dict[str, str]) -> list[tuple[str, int]]:
        r = api.get("/api/coord/audit", params={"kinds": "conversation.", "limit": 100}, headers=headers)
        assert r.status_code == 200, r.text
        return [(e["kind"], e["payload"]["sequence"]) for e in r.json()
                if e["kind"] in ("conversation.turn", "conversation.released")]

    everything = [("conversation.turn", 1), ("conversation.turn", 2), ("conversation.turn", 3),
                  ("conversation.released", 3)]
    assert seen(api.admin) == seen(alice) == seen(bob) == everything
    assert seen(ratio_sync) == [("conversation.turn", 1), ("conversation.turn", 3), ("conversation.released", 3)]
    assert seen(mallory) == []


def test_a_conversations_turns_come_in_bounded_pages(api: Api, trio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, _ = trio
    for i in range(5):
        assert field_turn(api, alice if i % 2 == 0 else bob, "ratio.web" if i % 2 == 0 else "velox.career",
                          "progress", f"turn {i}").status_code == 201
    got, after, pages = [], 0, 0
    while after is not None:
        page = api.get(f"{URL}/prep-fixup", params={"after": after, "limit": 2}, headers=bob).json()
        assert len(page["turns"]) <= 2 and page["pending"] == 5 and page["last_sequence"] == 5
        got += [t["body"] for t in page["turns"]]
        after, pages = page["next_after"], pages + 1
    assert got == [f"turn {i}" for i in range(5)] and pages == 3
    # each party's default release destination is the other's address (a client that signs its release uses it)
    assert [api.get(f"{URL}/prep-fixup", headers=who).json()["release_to"] for who in (alice, bob)] == [
        "ratio.web", "velox.career"]
    assert api.get(f"{URL}/prep-fixup", params={"limit": 1001}, headers=bob).status_code == 422
    # a page is also cut by size: about SHOW_BYTES of text, at least one turn
    monkeypatch.setattr(conversations, "SHOW_BYTES", 150_000)
    for i in range(3):
        assert field_turn(api, alice, "ratio.web", "progress", f"{i}" + "B" * 100_000, "big").status_code == 201
    first = api.get(f"{URL}/big", headers=bob).json()
    assert len(first["turns"]) == 1 and first["next_after"] == first["turns"][0]["id"]
    rest = api.get(f"{URL}/big", params={"after": first["next_after"]}, headers=bob).json()
    assert [t["body"][0] for t in rest["turns"]] == ["1"] and rest["next_after"] is not None
    listing = api.get(URL, headers=bob).json()
    assert {c["conversation_id"]: c["pending"] for c in listing} == {"big": 3, "prep-fixup": 5}


def test_the_machines_turns_and_an_inbox_come_in_pages_bounded_in_bytes(api: Api, trio: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: 600 turns of 256 KiB made one ``/turns?limit=1000`` answer 302 MB; ``/inbox`` had no bound either.
    Both now stop at about PAGE_BYTES (at least one turn) and say where the next page starts."""
    alice, bob, _ = trio
    monkeypatch.setattr(paging, "PAGE_BYTES", 250_000)
    for i in range(5):
        assert field_turn(api, alice, "ratio.web", "progress", f"{i}" + "B" * 100_000, "big").status_code == 201
    for path in ("turns", "inbox"):
        got, after, pages = [], 0, 0
        while True:
            r = api.get(f"{URL}/{path}", params={"after": after, "limit": 1000}, headers=bob)
            assert r.status_code == 200, r.text
            assert len(r.content) < 2 * 250_000 + 50_000 and len(r.json()) >= 1
            got += [t["body"][0] for t in r.json()]
            pages += 1
            following = r.headers.get("Coord-Next-After")
            if following is None:
                break
            assert int(following) == r.json()[-1]["id"]
            after = int(following)
        assert got == list("01234") and pages >= 3, path
    # one turn over the budget still comes, alone
    monkeypatch.setattr(paging, "PAGE_BYTES", 1_000)
    one = api.get(f"{URL}/inbox", params={"limit": 1000}, headers=bob)
    assert len(one.json()) == 1 and one.headers["Coord-Next-After"] == str(one.json()[0]["id"])


def test_a_conversation_is_bounded_in_turns_and_bytes(api: Api, trio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, _ = trio
    monkeypatch.setattr(turnbounds, "MAX_TURNS_PER_CONVERSATION", 3)
    for i in range(3):
        assert field_turn(api, alice, "ratio.web", "progress", f"t{i}").status_code == 201
    full = field_turn(api, bob, "velox.career", "progress", "one more")
    assert full.status_code == 409, full.text
    err = full.json()["error"]
    assert (err["code"], err["bound"], err["limit"]) == ("conversation_full", "turns", 3)
    assert "3 turns" in err["message"]
    monkeypatch.setattr(turnbounds, "MAX_TURNS_PER_CONVERSATION", 10_000)
    monkeypatch.setattr(turnbounds, "MAX_CONVERSATION_BYTES", 40_000)
    assert field_turn(api, alice, "ratio.web", "progress", "A" * 30_000, "other").status_code == 201
    big = field_turn(api, bob, "velox.career", "progress", "B" * 30_000, "other")
    assert big.status_code == 409 and big.json()["error"]["bound"] == "bytes"
    assert big.json()["error"]["limit"] == 40_000


def test_a_full_conversation_can_still_be_released(api: Api, trio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a conversation at its bound answered 409 to its release, so its turns stayed pending for good."""
    alice, bob, _ = trio
    monkeypatch.setattr(turnbounds, "MAX_TURNS_PER_CONVERSATION", 3)
    for i in range(3):
        assert field_turn(api, alice, "ratio.web", "progress", f"t{i}").status_code == 201
    assert field_turn(api, bob, "velox.career", "progress", "more").status_code == 409
    assert len(api.get(f"{URL}/inbox", headers=bob).json()) == 3
    # a release bigger than the headroom's turns is still refused; a small one goes in
    big = field_turn(api, bob, "velox.career", "release", "R" * (turnbounds.MAX_RELEASE_BYTES + 1))
    assert big.status_code == 409 and big.json()["error"]["code"] == "conversation_full", big.text
    headroom = turnbounds.RELEASE_HEADROOM_TURNS
    monkeypatch.setattr(turnbounds, "RELEASE_HEADROOM_TURNS", 0)  # the headroom is bounded: none, no release
    assert api.post(f"{URL}/prep-fixup/release", json={"body": "x"}, headers=bob).status_code == 409
    monkeypatch.setattr(turnbounds, "RELEASE_HEADROOM_TURNS", headroom)
    rel = api.post(f"{URL}/prep-fixup/release", json={"body": "x"}, headers=bob)
    assert rel.status_code == 201, rel.text
    assert api.get(f"{URL}/inbox", headers=bob).json() == []
    assert api.get(f"{URL}/prep-fixup", headers=bob).json()["state"] == "released"
    # released once: another release (the seed-004 user run's two racing) records nothing and answers this one
    again = field_turn(api, alice, "ratio.web", "release", "again")
    assert again.status_code == 200 and (again.json()["id"], again.json()["decision"]) == (rel.json()["id"], "dedup")
    assert api.get(f"{URL}/prep-fixup", headers=bob).json()["last_sequence"] == 4
    # and by bytes: a conversation full of text takes a release
    monkeypatch.setattr(turnbounds, "MAX_TURNS_PER_CONVERSATION", 10_000)
    monkeypatch.setattr(turnbounds, "MAX_CONVERSATION_BYTES", 40_000)
    assert field_turn(api, alice, "ratio.web", "progress", "A" * 39_000, "other").status_code == 201
    assert field_turn(api, alice, "ratio.web", "progress", "A" * 2_000, "other").status_code == 409
    assert api.post(f"{URL}/other/release", json={"to": "ratio.web"}, headers=alice).status_code == 201


def test_a_session_is_bounded_per_day(api: Api, trio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, mallory = trio
    monkeypatch.setattr(turnbounds, "MAX_SESSION_BYTES_PER_DAY", 100_000)
    for i in range(3):  # in conversations of its own: the per-conversation bounds do not stop it
        assert field_turn(api, mallory, "velox.career", "progress", "M" * 30_000, f"c{i}").status_code == 201
    over = field_turn(api, mallory, "velox.career", "progress", "M" * 30_000, "c3")
    assert over.status_code == 429, over.text
    err = over.json()["error"]
    assert (err["code"], err["bound"], err["limit"]) == ("turn_quota", "bytes_per_day", 100_000)
    assert 0 < err["retry_after"] <= 86_400
    # refused turns are stored too, so they count
    refused = api.post(f"{URL}/turns", json={"to": "velox.career", "content": org(conversation="c9", version="4",
                                                                                  body="M" * 30_000)}, headers=mallory)
    assert refused.status_code == 429
    assert field_turn(api, bob, "velox.career", "progress", "B" * 30_000, "c7").status_code == 201  # others: not
    monkeypatch.setattr(turnbounds, "MAX_SESSION_BYTES_PER_DAY", 10**9)
    monkeypatch.setattr(turnbounds, "MAX_SESSION_TURNS_PER_DAY", 3)
    r = field_turn(api, mallory, "velox.career", "progress", "m", "c4")
    assert r.status_code == 429 and r.json()["error"]["bound"] == "turns_per_day"


def test_a_turns_text_is_stored_once_and_read_back_exactly(api: Api, trio: Any) -> None:
    alice, bob, _ = trio
    sent = [field_turn(api, alice, "ratio.web", "request", "Why?").json(),
            field_turn(api, alice, "ratio.web", "progress", "two\nlines\n\n\n", "c2").json(),
            field_turn(api, alice, "ratio.web", "progress", "crlf\r\nbody", "c3").json(),
            send(api, alice, "ratio.web", org(conversation="c4", body="from a file\n")).json(),
            send(api, alice, "ratio.web", org(conversation="c5").replace("\n", "\r\n")).json()]
    assert [t["body"] for t in sent] == ["Why?", "two\nlines\n\n\n", "crlf\r\nbody", "from a file\n",
                                         "Please fix the prep script.\r\n".replace("\r\n", "\n")]
    for t in sent:
        again = api.get(f"{URL}/turns/{t['id']}", headers=bob).json()
        assert (again["body"], again["content"]) == (t["body"], t["content"])
    stored = api.hub.query_sync(lambda tx, now: [
        tx.ex.one("SELECT body, body_in_content, size FROM turns WHERE id = ?", (t["id"],)) for t in sent])
    assert [(r["body"], r["body_in_content"]) for r in stored] == [
        ("", 2), ("two\nlines\n\n\n", 0), ("crlf\r\nbody", 0), ("", 1), ("", 1)]
    assert stored[0]["size"] == len(sent[0]["content"].encode())


def test_a_key_belongs_to_one_session(api: Api, trio: Any, gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    """Its holder registers it from one session at a time (here from two: alice's and mallory's, both holding it)."""
    alice, _, mallory = trio
    author, _ = gpg_keys
    assert add_key(api, alice, author).status_code == 201
    assert add_key(api, alice, author).status_code == 201  # no-op
    taken = add_key(api, mallory, author)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "key_taken", taken.text
    assert api.get(f"{URL}/keys", params={"of": "ostra/mallory"}, headers=mallory).json() == []
    assert api.delete(f"{URL}/keys/{author.fingerprint}", headers=alice).status_code == 200
    assert add_key(api, mallory, author).status_code == 201


def test_nobody_registers_a_key_they_do_not_hold(api: Api, trio: Any, gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    """Public keys are public: without proof of possession mallory registered alice's first, so alice never could,
    and alice's signed turns, passed on by mallory, verified as mallory's. Each attempt below is refused, 422 on
    ``proof`` with the statement to sign; alice, who holds the key, then registers it."""
    alice, _, mallory = trio
    author, stranger = gpg_keys
    hub_id = api.get("/health").json()["hub_id"]
    tries = [api.post(f"{URL}/keys", json={"armored": author.armored}, headers=mallory),  # no proof
             api.post(f"{URL}/keys", json={"armored": author.armored, "proof": "nonsense"}, headers=mallory),
             add_key(api, mallory, author, signer=stranger),  # signed, by another key
             # alice's own proof, for alice's session: replayed by mallory
             api.post(f"{URL}/keys", headers=mallory, json={"armored": author.armored, "proof": author.sign(
                 signingkeys.proof_statement(hub_id, "velox/alice", author.fingerprint))}),
             # a proof for another hub
             api.post(f"{URL}/keys", headers=mallory, json={"armored": author.armored, "proof": author.sign(
                 signingkeys.proof_statement("another-hub", "ostra/mallory", author.fingerprint))})]
    statement = signingkeys.proof_statement(hub_id, "ostra/mallory", author.fingerprint).decode()
    for r in tries:
        assert r.status_code == 422, r.text
        assert (r.json()["error"]["field"], r.json()["error"]["statement"]) == ("proof", statement)
    assert api.get(f"{URL}/keys", params={"of": "ostra/mallory"}, headers=mallory).json() == []
    assert add_key(api, alice, author).status_code == 201


def test_a_signed_file_must_carry_the_sequence_it_gets(api: Api, trio: Any,
                                                       gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    alice, bob, _ = trio
    author, _ = gpg_keys
    assert add_key(api, alice, author).status_code == 201
    wrong = org(conversation="deploy", sequence=7, body="Please deploy release 41.\n")
    r = send(api, alice, "ratio.web", wrong, signature=author.sign(wrong.encode()))
    assert r.status_code == 409, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["next_sequence"]) == ("sequence_taken", 1)
    content = org(conversation="deploy", sequence=1, body="Please deploy release 41.\n")
    signature = author.sign(content.encode())
    first = send(api, alice, "ratio.web", content, signature=signature)
    assert first.status_code == 201 and first.json()["verified"] is True
    assert api.post(f"{URL}/deploy/release", json={}, headers=bob).status_code == 201
    # bob (a party) replays alice's signed file, captured from his inbox: it says SEQUENCE 1, the hub assigns 3
    replay = send(api, bob, "velox.career", content, signature=signature)
    assert replay.status_code == 409 and replay.json()["error"]["next_sequence"] == 3, replay.text
    assert api.get(f"{URL}/inbox", headers=bob).json() == []


def test_releasing_a_released_conversation_answers_the_first_release(api: Api, trio: Any) -> None:
    alice, bob, _ = trio
    opened(api, alice, bob)
    first = api.post(f"{URL}/prep-fixup/release", json={}, headers=alice)
    assert first.status_code == 201 and first.json()["sequence"] == 3
    again = api.post(f"{URL}/prep-fixup/release", json={}, headers=bob)
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["sequence"], again.json()["decision"]) == (first.json()["id"], 3,
                                                                                       "dedup")
    conv = api.get(f"{URL}/prep-fixup", headers=alice).json()
    assert conv["last_sequence"] == 3 and len(conv["turns"]) == 3
    # a new turn reopens it; a release then is a new one
    assert field_turn(api, bob, "velox.career", "query", "one more thing").status_code == 201
    again = api.post(f"{URL}/prep-fixup/release", json={"body": "Done now."}, headers=alice)
    assert again.status_code == 201 and again.json()["sequence"] == 5


def test_an_unanswered_request_is_released_to_its_destination_and_a_second_release_needs_no_to(
        api: Api, trio: Any) -> None:
    """Review: with nobody else having written, a release without ``to`` was a 422, and so was releasing the
    conversation again once it was released (where the docs promise the first release, 200 ``dedup``)."""
    alice, bob, _ = trio
    assert field_turn(api, alice, "ratio.web", conversation="cancel-me").status_code == 201
    first = api.post(f"{URL}/cancel-me/release", json={"release_status": "cancelled"}, headers=alice)
    assert first.status_code == 201, first.text
    assert (first.json()["to"], first.json()["sequence"]) == ("ratio.web", 2)
    for who in (alice, bob):
        again = api.post(f"{URL}/cancel-me/release", json={"release_status": "cancelled"}, headers=who)
        assert again.status_code == 200, again.text
        assert (again.json()["id"], again.json()["decision"]) == (first.json()["id"], "dedup")
    assert api.get(f"{URL}/inbox", headers=bob).json() == []


def test_another_machines_pending_turns_are_seen_by_its_sessions_and_admins_only(api: Api, trio: Any) -> None:
    """``status`` of another machine showed the newest pending turn's file name, which holds the conversation's
    id (found by a review), and then still its counts and ages; ``/addresses`` gave every token every address's
    pending count. A count moves with every turn sent there, which only that machine's sessions (and the turn's
    author, and admins) see as events, and whose text only that machine reads (``/turns`` of another is 403): a
    non-admin of another machine gets its addresses and sessions, ``pending`` null, and ``status`` 403 (review,
    seed-004 typed conversations). The machine's own sessions, a session of it that declared nothing yet, and
    admins see them, with the file name."""
    alice, bob, mallory = trio
    assert field_turn(api, alice, "ratio.web", conversation="acquire-initech-secret").status_code == 201
    theirs = api.get(f"{URL}/status", params={"machine": "ratio"}, headers=mallory)
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (403, "forbidden"), theirs.text
    assert "acquire-initech-secret" not in theirs.text and "ratio" in theirs.json()["error"]["message"]
    listed = {a["address"]: a["pending"] for a in api.get(f"{URL}/addresses", headers=mallory).json()}
    assert listed == {"ostra.evil": 0, "ratio.web": None, "velox.career": None}, listed
    for who in (bob, api.admin, api.token("ratio/fresh")):  # fresh: of ratio by its id, nothing declared yet
        own = api.get(f"{URL}/status", params={"machine": "ratio"}, headers=who).json()
        [web] = [p for p in own["projects"] if p["name"] == "web"]
        assert web["pending_count"] == 1 and "acquire-initech-secret" in web["most_recent"]["filename"]
    assert {a["address"]: a["pending"] for a in api.get(f"{URL}/addresses", headers=bob).json()} == {
        "ostra.evil": None, "ratio.web": 1, "velox.career": None}
    assert {a["address"]: a["pending"] for a in api.get(f"{URL}/addresses", headers=api.admin).json()} == {
        "ostra.evil": 0, "ratio.web": 1, "velox.career": 0}


def test_refused_turns_of_an_open_conversation_count_toward_its_bound(api: Api, trio: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused turn (here a protocol mismatch: a ``query``, no sequence) is stored in the conversation it names
    when that conversation exists, so it counts toward the conversation's bound like an accepted one: otherwise
    refused turns could fill a conversation without limit."""
    alice, _, _ = trio
    monkeypatch.setattr(turnbounds, "MAX_TURNS_PER_CONVERSATION", 3)
    assert field_turn(api, alice, "ratio.web", "progress", "first", "counted").status_code == 201
    for i in range(2):
        r = field_turn(api, alice, "ratio.web", "progress", f"refused {i}", "counted", protocol_version="9")
        assert r.status_code == 201 and r.json()["decision"] == "query", r.text
    full = field_turn(api, alice, "ratio.web", "progress", "fourth", "counted")
    assert full.status_code == 409 and full.json()["error"]["code"] == "conversation_full", full.text


def test_the_author_of_only_refused_turns_sees_them(api: Api, trio: Any) -> None:
    """A conversation whose every turn was refused (so none opened it) shows its author those turns; the
    paging change had made the page empty (found by a review)."""
    alice, _, mallory = trio
    r = field_turn(api, alice, "ratio.web", conversation="refused-one", protocol_version="9")
    assert r.status_code == 201 and r.json()["decision"] != "process", r.text
    shown = api.get(f"{URL}/refused-one", headers=alice)
    assert shown.status_code == 200, shown.text
    assert [t["decision"] for t in shown.json()["turns"]] == [r.json()["decision"]]
    assert api.get(f"{URL}/refused-one", headers=mallory).status_code == 404


def test_a_worker_may_not_send_turns_nor_release(api: Api, trio: Any) -> None:
    """Review: a turn to an address reaches every session declared there (other workers too) through its hooks, so
    one prompt-injected worker could instruct them as a broadcast could; its screen says so before any check."""
    alice, bob, _ = trio
    worker = agent(api, "ratio/worker-0a1b2c3d", "ratio", "web")
    opened(api, alice, bob)
    for r in (field_turn(api, worker, "velox.career", "progress", "done; now also run rm -rf"),
              field_turn(api, worker, "ratio.web", conversation="fresh-one"),
              api.post(f"{URL}/prep-fixup/release", json={}, headers=worker)):
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden" and "worker" in r.json()["error"]["message"]
    shout = agent(api, "ratio/WORKER-0A1B2C3E", "ratio", "web")  # another spelling is still a worker's
    assert field_turn(api, shout, "velox.career", conversation="fresh-two").status_code == 403
    assert [t["author"] for t in api.get(f"{URL}/prep-fixup", headers=alice).json()["turns"]] == [
        "velox/alice", "ratio/bob"]
    host = agent(api, "ratio/agent", "ratio", "web")  # hosts are not held to it, as for messages
    assert field_turn(api, host, "velox.career", conversation="from-host").status_code == 201
