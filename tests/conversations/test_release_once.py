"""A conversation is released once: a release to a conversation whose newest turn is a release is answered with
that release (200, ``decision: dedup``) and records nothing, whatever form it came in, signed or not, and whoever
sent it (review, seed-004 user run: two signed releases racing left two release turns)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key, org
from tests.conversations.test_turns_api import URL, agent, send


def released(api: Api) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, Any]]:
    """``career`` asked ``homelab``, which answered; a second session of ratio.career released: the release."""
    career = agent(api, "ratio/career", "ratio", "career")
    career2 = agent(api, "ratio/career2", "ratio", "career")
    homelab = agent(api, "velox/homelab", "velox", "homelab")
    assert send(api, career, "velox.homelab", org()).status_code == 201
    assert send(api, homelab, "ratio.career", org(kind="complete", body="done\n")).status_code == 201
    rel = api.post(f"{URL}/prep-fixup/release", json={}, headers=career2)
    assert rel.status_code == 201 and rel.json()["sequence"] == 3, rel.text
    return career, career2, homelab, rel.json()


def turns_of(api: Api, headers: dict[str, str]) -> list[tuple[int, str, str]]:
    conv = api.get(f"{URL}/prep-fixup", headers=headers).json()
    return [(t["sequence"], t["type"], t["author"]) for t in conv["turns"]]


def test_a_signed_release_signed_for_the_sequence_the_other_release_took_is_answered_with_that_release(
        api: Api, gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    # what the loser of two racing `coord conv release --sign` sends: it read the conversation open, asked the next
    # sequence (3), signed it and posted expecting 3; the hub answered 409 sequence_taken, and the client renumbered
    # to 4, signed again and recorded a second release
    career, _, _, first = released(api)
    key = gpg_keys[0]
    assert add_key(api, career, key).status_code == 201
    text = org(kind="release", sequence=3, body="Released.\n")
    r = send(api, career, "velox.homelab", text, signature=key.sign(text.encode()), expect_sequence=3)
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["decision"], r.json()["author"]) == (first["id"], "dedup", "ratio/career2")
    again = text.replace("#+SEQUENCE: 3", "#+SEQUENCE: 4")  # renumbered, as the client did on 409
    r = send(api, career, "velox.homelab", again, signature=key.sign(again.encode()), expect_sequence=4)
    assert r.status_code == 200 and r.json()["id"] == first["id"], r.text
    assert turns_of(api, career) == [(1, "request", "ratio/career"), (2, "complete", "velox/homelab"),
                                     (3, "release", "ratio/career2")]


def test_an_unsigned_release_file_or_fields_to_a_released_conversation_records_nothing(api: Api) -> None:
    career, _, homelab, first = released(api)
    by_file = send(api, homelab, "ratio.career", org(kind="release", body="closing too\n"))
    by_fields = api.post(f"{URL}/turns", headers=career, json={
        "to": "velox.homelab", "conversation_id": "prep-fixup", "type": "release", "body": "bye",
        "release_status": "cancelled"})
    for r in (by_file, by_fields):
        assert r.status_code == 200 and (r.json()["id"], r.json()["decision"]) == (first["id"], "dedup"), r.text
    assert [t[1] for t in turns_of(api, career)] == ["request", "complete", "release"]
    assert api.get(f"{URL}/prep-fixup", headers=career).json()["last_sequence"] == 3


def test_a_turn_after_the_release_reopens_it_and_the_next_release_is_recorded(api: Api) -> None:
    career, _, homelab, _ = released(api)
    assert send(api, homelab, "ratio.career", org(kind="query", body="one more thing\n")).json()["sequence"] == 4
    r = api.post(f"{URL}/prep-fixup/release", json={}, headers=career)
    assert r.status_code == 201 and r.json()["sequence"] == 5, r.text
    assert api.get(f"{URL}/inbox", headers=career).json() == []
