"""Conversation turns over HTTP on both backends: addressing, every decision of seed 004's receiver, sequences,
pending and release, signatures with a real GnuPG key, visibility."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key, org

URL = "/api/coord/conversations"


def agent(api: Api, session: str, machine: str, project: str, tools: list[str] | None = None) -> dict[str, str]:
    headers = api.token(session)
    body: dict[str, Any] = {"machine": machine, "project": project}
    if tools is not None:
        body["tools"] = tools
    r = api.put(f"{URL}/profile", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return headers


@pytest.fixture
def pair(api: Api) -> tuple[dict[str, str], dict[str, str]]:
    """``career`` on machine ratio and ``homelab`` on machine velox."""
    return agent(api, "ratio/career", "ratio", "career"), agent(api, "velox/homelab", "velox", "homelab")


def send(api: Api, headers: dict[str, str], to: str, content: str, **extra: Any) -> Any:
    return api.post(f"{URL}/turns", json={"to": to, "content": content, **extra}, headers=headers)


def test_turn_is_processed_numbered_pending_and_released(api: Api, pair: Any) -> None:
    career, homelab = pair
    r = send(api, career, "velox.homelab", org(sequence=7))
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["decision"], t["sequence"], t["stated_sequence"], t["pending"]) == ("process", 1, 7, True)
    assert (t["from"], t["to"], t["author"]) == ("ratio.career", "velox.homelab", "ratio/career")
    assert "#+SEQUENCE: 1\n" in t["content"] and "#+TIMESTAMP: 2026-04-27T09:11:42Z\n" in t["content"]
    assert t["file_name"].endswith("-from-career-prep-fixup-1.org")
    inbox = api.get(f"{URL}/inbox", headers=homelab).json()
    assert [x["id"] for x in inbox] == [t["id"]]
    assert api.get(f"{URL}/inbox", headers=career).json() == []
    reply = send(api, homelab, "ratio.career", org(kind="progress", body="on it\n", timestamp="2026-04-27T10:00:00Z"))
    assert reply.json()["sequence"] == 2
    rel = api.post(f"{URL}/prep-fixup/release", json={}, headers=career)
    assert rel.status_code == 201, rel.text
    assert (rel.json()["type"], rel.json()["sequence"], rel.json()["to"]) == ("release", 3, "velox.homelab")
    assert api.get(f"{URL}/inbox", headers=homelab).json() == []
    conv = api.get(f"{URL}/prep-fixup", headers=homelab).json()
    assert conv["state"] == "released" and [x["sequence"] for x in conv["turns"]] == [1, 2, 3]
    assert conv["participants"] == ["ratio.career", "velox.homelab"]


def test_unknown_destination_lists_known_ones(api: Api, pair: Any) -> None:
    career, _ = pair
    r = send(api, career, "velox.nowhere", org())
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_destination"
    assert r.json()["error"]["known"] == ["ratio.career", "velox.homelab"]


def test_local_means_the_senders_machine(api: Api) -> None:
    a = agent(api, "ratio/career", "ratio", "career")
    agent(api, "ratio/homelab", "ratio", "homelab")
    assert send(api, a, "local.homelab", org()).json()["to"] == "ratio.homelab"


@pytest.mark.parametrize(("content", "field"), [
    (org().replace("#+MESSAGE_TYPE: request\n", ""), "content"),
    (org(kind="chat"), "MESSAGE_TYPE"),
    (org().replace("#+SEQUENCE: 1", "#+SEQUENCE: one"), "SEQUENCE"),
    (org(timestamp="2026-04-27 04:11"), "TIMESTAMP"),
    (org(timestamp="yesterday"), "TIMESTAMP"),
    (org(timestamp="0001-01-01T00:00:00+01:00"), "TIMESTAMP"),  # review: OverflowError in the send, a 500
    (org(timestamp="9999-12-31T23:59:59-01:00"), "TIMESTAMP"),
    (org(conversation="../etc"), "CONVERSATION_ID"),
    # review: stored under hub sequence 2 (the first SEQUENCE renumbered) but read as 1 (the last wins)
    (org(sequence=2).replace("#+PROTOCOL_VERSION: 5", "#+PROTOCOL_VERSION: 5\n#+SEQUENCE: 1"), "SEQUENCE"),
    (org().replace("#+TITLE: Prep fix-up", "#+TITLE: Prep fix-up\n#+TITLE: Other"), "TITLE"),
    # review: one line here, three to a reader splitting lines as Python does (the seed's receiver)
    (org().replace("#+TITLE: Prep fix-up", "#+TITLE: fyi\u2028#+MESSAGE_TYPE: release\u2028#+SEQUENCE: 99"),
     "TITLE"),
    (org().replace("#+TITLE: Prep fix-up", "#+TITLE: fyi\x0b#+SEQUENCE: 99"), "TITLE"),
    (org().replace("#+TITLE: Prep fix-up", "#+TITLE: fyi\u2028"), "TITLE"),  # trailing: the rest is body there
])
def test_malformed_files_are_refused_and_change_nothing(api: Api, pair: Any, content: str, field: str) -> None:
    career, homelab = pair
    r = send(api, career, "velox.homelab", content)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert api.get(f"{URL}/inbox", headers=homelab).json() == []
    assert api.get(URL, headers=api.admin).json() == []


def test_protocol_version_mismatch_is_a_query_seen_only_by_its_author(api: Api, pair: Any) -> None:
    career, homelab = pair
    t = send(api, career, "velox.homelab", org(version="4")).json()
    assert (t["decision"], t["sequence"]) == ("query", None)
    assert t["reason"] == "PROTOCOL_VERSION mismatch: expected 5, got 4"
    assert api.get(f"{URL}/inbox", headers=homelab).json() == []
    assert api.get(f"{URL}/turns/{t['id']}", headers=homelab).status_code == 404
    assert api.get(f"{URL}/turns/{t['id']}", headers=career).json()["decision"] == "query"
    # the refused turn took no sequence: the next accepted one is 1
    assert send(api, career, "velox.homelab", org()).json()["sequence"] == 1


def test_required_tools_must_be_declared_by_the_destination(api: Api) -> None:
    career = agent(api, "ratio/career", "ratio", "career")
    agent(api, "velox/homelab", "velox", "homelab", tools=["rg"])
    t = send(api, career, "velox.homelab", org(tools="rg, jq, kubectl")).json()
    assert (t["decision"], t["reason"]) == ("query", "required tools unavailable: jq, kubectl")
    ok = send(api, career, "velox.homelab", org(conversation="other", tools="rg")).json()
    assert ok["decision"] == "process" and ok["requires_tools"] == ["rg"]


def test_required_tools_of_a_destination_that_declared_none_are_left_to_its_receiver(api: Api) -> None:
    """Review (seed-004 user run): the hub cannot know what an undeclared machine has installed; seed 004
    delivered the file and its receiver decided, so the turn is accepted. An empty declaration is one."""
    career = agent(api, "ratio/career", "ratio", "career")
    homelab = agent(api, "velox/homelab", "velox", "homelab")
    t = send(api, career, "velox.homelab", org(tools="git")).json()
    assert (t["decision"], t["sequence"], t["requires_tools"]) == ("process", 1, ["git"])
    assert api.put(f"{URL}/profile", json={"tools": []}, headers=homelab).status_code == 200
    t = send(api, career, "velox.homelab", org(conversation="other", tools="git")).json()
    assert (t["decision"], t["reason"]) == ("query", "required tools unavailable: git")


def test_identical_retry_is_deduplicated_even_renumbered(api: Api, pair: Any) -> None:
    career, homelab = pair
    first = send(api, career, "velox.homelab", org(sequence=1))
    again = send(api, career, "velox.homelab", org(sequence=2))  # the sender renumbered its retry
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["decision"] == "dedup" and again.json()["id"] == first.json()["id"]
    assert len(api.get(f"{URL}/inbox", headers=homelab).json()) == 1
    other_body = send(api, career, "velox.homelab", org(body="something else\n"))
    assert other_body.json()["decision"] == "process" and other_body.json()["sequence"] == 2


def test_the_same_file_to_another_address_is_a_new_turn_not_a_retry(api: Api, pair: Any) -> None:
    """Review: dedup was keyed on conversation, author and content only, so the second address never got it."""
    career, homelab = pair
    web = agent(api, "velox/web", "velox", "web")
    first = send(api, career, "velox.homelab", org(sequence=1))
    second = send(api, career, "velox.web", org(sequence=2))
    assert first.status_code == second.status_code == 201, second.text
    assert (second.json()["decision"], second.json()["to"], second.json()["sequence"]) == ("process", "velox.web", 2)
    assert [t["id"] for t in api.get(f"{URL}/inbox", headers=web).json()] == [second.json()["id"]]
    again = send(api, career, "velox.web", org(sequence=3))  # a retry to the same address is still one
    assert again.status_code == 200 and again.json()["id"] == second.json()["id"]


def test_idempotency_key_replays_the_first_answer(api: Api, pair: Any) -> None:
    career, _ = pair
    h = {**career, "Idempotency-Key": "k-1"}
    a = send(api, h, "velox.homelab", org())
    b = send(api, h, "velox.homelab", org())
    assert a.status_code == b.status_code == 201 and b.headers.get("Idempotent-Replayed") == "true"
    assert a.json() == b.json()


def test_expect_sequence_refuses_a_stale_number(api: Api, pair: Any) -> None:
    career, _ = pair
    assert send(api, career, "velox.homelab", org(), expect_sequence=1).status_code == 201
    r = send(api, career, "velox.homelab", org(body="next\n"), expect_sequence=1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "sequence_taken"
    assert r.json()["error"]["next_sequence"] == 2
    assert api.get(f"{URL}/prep-fixup/next-sequence", headers=career).json()["next_sequence"] == 2


def test_signed_turn_verified_and_carried_byte_for_byte(api: Api, pair: Any, gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    author, stranger = gpg_keys
    career, homelab = pair
    r = add_key(api, career, author)
    assert r.status_code == 201 and r.json()["fingerprint"] == author.fingerprint
    content = org(sequence=1).replace("\n", "\r\n")  # bytes are kept exactly, line ends and all
    t = send(api, career, "velox.homelab", content, signature=author.sign(content.encode())).json()
    assert (t["decision"], t["verified"], t["signer"]) == ("process", True, author.fingerprint)
    assert t["content"] == content
    seen = api.get(f"{URL}/inbox", headers=homelab).json()[0]
    assert seen["content"] == content and seen["signature"].startswith("-----BEGIN PGP SIGNATURE-----")
    forged = org(conversation="forged")
    bad = send(api, career, "velox.homelab", forged, signature=stranger.sign(forged.encode())).json()
    assert (bad["decision"], bad["verified"], bad["sequence"]) == ("reject", False, None)
    assert "registered keys" in bad["reason"]
    tampered = org(conversation="tampered")
    sig = author.sign(tampered.encode())
    t2 = send(api, career, "velox.homelab", tampered.replace("Please", "Kindly"), signature=sig).json()
    assert t2["decision"] == "reject"
    assert [x["conversation_id"] for x in api.get(f"{URL}/inbox", headers=homelab).json()] == ["prep-fixup"]


def test_bad_key_and_bad_signature_text_are_refused(api: Api, pair: Any) -> None:
    career, _ = pair
    r = api.post(f"{URL}/keys", json={"armored": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n"}, headers=career)
    assert r.status_code == 422 and r.json()["error"]["field"] == "armored"
    r = send(api, career, "velox.homelab", org(), signature="not a signature")
    assert r.status_code == 422 and r.json()["error"]["field"] == "signature"


def test_field_form_and_status(api: Api, pair: Any) -> None:
    career, homelab = pair
    r = api.post(f"{URL}/turns", json={"to": "velox.homelab", "conversation_id": "q1", "type": "query",
                                        "title": "A question", "body": "Why?"}, headers=career)
    assert r.status_code == 201, r.text
    assert r.json()["content"].startswith("#+TITLE: A question\n#+CONVERSATION_ID: q1\n#+MESSAGE_TYPE: query\n"
                                          "#+SEQUENCE: 1\n")
    st = api.get(f"{URL}/status", headers=homelab).json()
    assert st["machine"] == "velox" and st["halt_active"] is False
    assert st["projects"][0]["name"] == "homelab" and st["projects"][0]["pending_count"] == 1
    assert st["projects"][0]["most_recent"]["filename"] == r.json()["file_name"]


def test_a_token_cannot_declare_another_machine(api: Api) -> None:
    h = api.token("ratio/career")
    r = api.put(f"{URL}/profile", json={"machine": "velox", "project": "homelab"}, headers=h)
    assert r.status_code == 403
    bare = api.token("backend")  # seed 002 style: nothing binds it to a machine
    r = api.put(f"{URL}/profile", json={"machine": "velox", "project": "homelab"}, headers=bare)
    assert r.status_code == 403 and "coord token create velox/backend" in r.json()["error"]["message"]
    assert api.put(f"{URL}/profile", json={"machine": "velox", "project": "x"}, headers=api.admin).status_code == 200


def test_field_form_turn_over_the_size_limit_is_refused(api: Api, pair: Any) -> None:
    career, _ = pair
    r = api.post(f"{URL}/turns", json={"to": "velox.homelab", "conversation_id": "big", "type": "request",
                                        "body": "x" * 300_000}, headers=career)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


def test_turns_are_private_to_participants(api: Api, pair: Any) -> None:
    career, homelab = pair
    outsider = agent(api, "zed/spy", "zed", "spy")
    t = send(api, career, "velox.homelab", org()).json()
    assert api.get(f"{URL}/turns/{t['id']}", headers=outsider).status_code == 404
    assert api.get(f"{URL}/prep-fixup", headers=outsider).status_code == 404
    assert api.get(f"{URL}/turns", params={"to_machine": "velox"}, headers=outsider).status_code == 403
    assert [x["id"] for x in api.get(f"{URL}/turns", headers=homelab).json()] == [t["id"]]


def test_unshown_marks_turns_shown_once(api: Api, pair: Any) -> None:
    career, homelab = pair
    for i in range(3):
        send(api, career, "velox.homelab", org(conversation=f"c{i}"))
    api.post("/api/coord/messages", json={"to_session": "velox/homelab", "subject": "hi"}, headers=career)
    first = api.post("/api/coord/messages/unshown", json={"limit": 3}, headers=homelab).json()
    assert [m["subject"] for m in first["messages"]] == ["hi"]  # messages first, turns share the rest of limit
    assert [t["conversation_id"] for t in first["turns"]] == ["c0", "c1"] and first["turns_more"] == 1
    second = api.post("/api/coord/messages/unshown", json={"limit": 3}, headers=homelab).json()
    assert second["messages"] == [] and [t["conversation_id"] for t in second["turns"]] == ["c2"]
    assert second["turns_more"] == 0
    assert api.post("/api/coord/messages/unshown", json={"limit": 3}, headers=homelab).json()["turns"] == []


def test_a_new_address_shows_its_pending_turns_older_than_the_last_shown_elsewhere(api: Api, pair: Any) -> None:
    """Review: the shown-turns cursor was one per session, so a session that moved to another address (seed 004's
    sender re-declares its project on every send) never saw the pending turns there older than its last shown."""
    career, _ = pair
    other = agent(api, "velox/other", "velox", "other")
    send(api, career, "velox.homelab", org(conversation="to-homelab"))
    send(api, career, "velox.other", org(conversation="to-other"))
    shown = api.post("/api/coord/messages/unshown", json={"limit": 5}, headers=other).json()
    assert [t["conversation_id"] for t in shown["turns"]] == ["to-other"]
    assert api.put(f"{URL}/profile", json={"project": "homelab"}, headers=other).status_code == 200
    moved = api.post("/api/coord/messages/unshown", json={"limit": 5}, headers=other).json()
    assert [t["conversation_id"] for t in moved["turns"]] == ["to-homelab"]
    assert api.put(f"{URL}/profile", json={"tools": ["git"]}, headers=other).status_code == 200  # same address
    assert api.post("/api/coord/messages/unshown", json={"limit": 5}, headers=other).json()["turns"] == []


MOST = 4.5 * 2**20  # bytes one unshown answer may take: about 4 MiB of text and one more row's short fields
WIDE = "漢" * (80 * 1024) + "\n"  # a body of 240 KiB of UTF-8; a turn answers it twice (body and file): ~480 KiB


def _unshown_all(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every answer of ``/messages/unshown`` until one brings nothing; each checked for its size in bytes."""
    answers = []
    while True:
        r = api.post("/api/coord/messages/unshown", json={"limit": 100}, headers=headers)
        assert r.status_code == 200 and len(r.content) <= MOST, (r.status_code, len(r.content))
        if not r.json()["messages"] and not r.json()["turns"]:
            assert r.json()["more"] == 0 and r.json()["turns_more"] == 0
            return answers
        answers.append(r.json())


def test_unshown_turns_are_bounded_in_bytes_and_lose_nothing(api: Api, pair: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One session's large turns: an answer holds about 4 MiB of them, the read about as many, and the shown
    cursor and ``turns_more`` carry every turn once (they came all in one answer of 6 MB, read with 1,000 more)."""
    from coordhub.store.tables.conversations import Conversations

    career, homelab = pair
    ids = []
    for i in range(12):
        r = send(api, career, "velox.homelab", org(conversation=f"big{i}", body=WIDE))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    read: list[int] = []
    real = Conversations.pending_to

    def counting(self: Conversations, address: str, limit: int, after_id: int = 0) -> list[Any]:
        rows = real(self, address, limit, after_id)
        read.append(len(rows))
        return rows
    monkeypatch.setattr(Conversations, "pending_to", counting)
    answers = _unshown_all(api, homelab)
    assert [t["id"] for a in answers for t in a["turns"]] == ids
    assert all(t["body"] == WIDE for a in answers for t in a["turns"])
    assert [(len(a["turns"]), a["turns_more"]) for a in answers] == [(8, 4), (4, 0)]
    assert sum(read) <= 12 + 2, read  # each turn read once, and the one that says more follow


def _messages(api: Api, sender: dict[str, str], prefix: str, count: int) -> None:
    """``count`` messages of 500 KiB to velox/homelab."""
    for i in range(count):
        r = api.post("/api/coord/messages", json={"to_session": "velox/homelab", "subject": f"{prefix}{i}",
                                                  "body": "x" * (500 * 1024)}, headers=sender)
        assert r.status_code == 201, r.text


def test_unshown_turns_share_the_answer_with_messages(api: Api, pair: Any) -> None:
    """Turns get what the messages of the same answer left of its bound; none when they left less than one."""
    career, homelab = pair
    for i in range(3):
        assert send(api, career, "velox.homelab", org(conversation=f"big{i}", body=WIDE)).status_code == 201
    _messages(api, career, "m", 8)  # about 4 MiB: no room for a turn of ~480 KiB beside them
    answers = _unshown_all(api, homelab)
    assert [(len(a["messages"]), a["more"], len(a["turns"]), a["turns_more"]) for a in answers] == [
        (8, 0, 0, 3), (0, 0, 3, 0)]
    for i in range(3, 6):
        assert send(api, career, "velox.homelab", org(conversation=f"big{i}", body=WIDE)).status_code == 201
    _messages(api, career, "n", 6)  # about 3 MiB: room for two turns
    answers = _unshown_all(api, homelab)
    assert [(len(a["messages"]), a["more"], len(a["turns"]), a["turns_more"]) for a in answers] == [
        (6, 0, 2, 1), (0, 0, 1, 0)]
    assert [t["conversation_id"] for a in answers for t in a["turns"]] == ["big3", "big4", "big5"]


def test_halt_refuses_turns(api: Api, pair: Any) -> None:
    career, _ = pair
    assert api.post("/api/coord/halt", json={"reason": "drill"}, headers=api.admin).status_code == 201
    r = send(api, career, "velox.homelab", org())
    assert r.status_code == 423
    assert api.get(f"{URL}/status", headers=career).json()["halt_active"] is True


def test_a_machine_halt_shows_in_that_machines_status_only(api: Api, pair: Any) -> None:
    career, homelab = pair
    r = api.post("/api/coord/halt", json={"reason": "drill", "scope": "machine:velox"}, headers=api.admin)
    assert r.status_code == 201, r.text
    assert api.get(f"{URL}/status", headers=homelab).json()["halt_active"] is True
    assert api.get(f"{URL}/status", headers=career).json()["halt_active"] is False
    assert send(api, homelab, "ratio.career", org()).status_code == 423
    assert send(api, career, "velox.homelab", org()).status_code == 201  # the sender's machine is not halted


def test_field_form_values_are_read_as_a_files_are(api: Api, pair: Any) -> None:
    """Review: field values were used unstripped, so "5 " was judged a version mismatch (a query) while the file
    stored for it read "5"."""
    career, homelab = pair
    r = api.post(f"{URL}/turns", headers=career, json={"to": "velox.homelab", "conversation_id": "pv-field",
                                                        "type": "request", "body": "b", "protocol_version": "5 ",
                                                        "title": "  Spaced  "})
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["decision"], t["sequence"]) == ("process", 1), t
    assert "#+TITLE: Spaced\n" in t["content"] and "#+PROTOCOL_VERSION: 5\n" in t["content"]
