"""The seed-004 message-file format: parsing as the seed's receiver does, checks, canonical form, renumbering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordhub.core import orgturn
from coordhub.errors import Invalid
from tests.conversations.conftest import org


def test_parses_the_seed_layout() -> None:
    t = orgturn.parse(org(tools="rg, jq,, rg") + "\n#+NOT_FRONTMATTER: body line\n")
    assert (t.conversation_id, t.type, t.sequence, t.protocol_version) == ("prep-fixup", "request", 1, "5")
    assert t.requires_tools == ("rg", "jq")  # empty entries dropped, duplicates once
    assert t.timestamp == "2026-04-27T04:11:42-05:00" and t.timestamp_utc == "2026-04-27T09:11:42Z"
    assert t.body.startswith("Please fix") and "#+NOT_FRONTMATTER" in t.body  # after the blank line: body


def test_leading_blank_lines_are_skipped_and_a_non_keyword_line_ends_the_frontmatter() -> None:
    keys, body = orgturn.split("\n\n#+TITLE: t\n#+CONVERSATION_ID: c\nplain text\n#+MESSAGE_TYPE: x\n")
    assert keys == {"TITLE": "t", "CONVERSATION_ID": "c"} and body.startswith("plain text")


def test_lines_before_the_frontmatter_are_skipped_as_seed_004_does() -> None:
    """Seed 004's parse_frontmatter ends the frontmatter at a non-keyword line only once a key was read, so a mode
    line or a comment before it is skipped (review: the hub refused such files, missing every field)."""
    text = "# -*- mode: org -*-\n# note\n\n" + org(sequence=3)
    t = orgturn.parse(text)
    assert (t.conversation_id, t.sequence, t.title) == ("prep-fixup", 3, "Prep fix-up")
    assert t.body.startswith("Please fix") and t.canonical() == orgturn.parse(org(sequence=9)).canonical()
    renumbered = orgturn.with_key(text, "SEQUENCE", "7")
    assert renumbered == text.replace("#+SEQUENCE: 3", "#+SEQUENCE: 7") and orgturn.parse(renumbered).sequence == 7
    with pytest.raises(Invalid, match="before the frontmatter holds a line separator"):
        orgturn.split("# x\u2028#+TITLE: hidden\n" + org())


@pytest.mark.parametrize(("text", "field"), [
    (org().replace("#+TITLE: Prep fix-up\n", ""), "content"),
    (org(kind="REQUEST"), "MESSAGE_TYPE"),
    (org().replace("#+SEQUENCE: 1", "#+SEQUENCE: --1"), "SEQUENCE"),
    (org().replace("#+SEQUENCE: 1", "#+SEQUENCE: 2147483648"), "SEQUENCE"),  # over the stored column's bound
    (org().replace("#+SEQUENCE: 1", "#+SEQUENCE: 1.5"), "SEQUENCE"),
    (org(timestamp="2026-04-27T04:11:42"), "TIMESTAMP"),  # no offset: ambiguous
    (org(timestamp="0001-01-01T00:00:00+01:00"), "TIMESTAMP"),  # before year 1 in UTC (review: a 500)
    (org(timestamp="9999-12-31T23:59:59-01:00"), "TIMESTAMP"),  # after year 9999 in UTC
    (org(tools="rg; rm -rf /"), "REQUIRES_TOOLS"),
    (org(conversation="a" * 129), "CONVERSATION_ID"),
    (org().replace("#+PROTOCOL_VERSION: 5", "#+PROTOCOL_VERSION: " + "5" * 17), "PROTOCOL_VERSION"),
    (org(kind="request") .replace("#+PROTOCOL_VERSION: 5", "#+PROTOCOL_VERSION: 5\n#+RELEASE_STATUS: complete"),
     "RELEASE_STATUS"),
])
def test_malformed_values_name_their_field(text: str, field: str) -> None:
    with pytest.raises(Invalid) as e:
        orgturn.parse(text)
    assert e.value.details["field"] == field


def test_a_timestamp_outside_the_utc_years_is_refused_saying_so() -> None:
    with pytest.raises(Invalid, match="outside the years 1 to 9999 in UTC"):
        orgturn.parse(org(timestamp="0001-01-01T00:00:00+01:00"))


def test_a_key_written_twice_is_refused_naming_it() -> None:
    text = org(sequence=2).replace("#+PROTOCOL_VERSION: 5", "#+PROTOCOL_VERSION: 5\n#+SEQUENCE: 1")
    with pytest.raises(Invalid) as e:
        orgturn.parse(text)
    assert e.value.details["field"] == "SEQUENCE" and "SEQUENCE" in str(e.value)
    assert orgturn.split(text)[0]["SEQUENCE"] == "1"  # reading a stored file stays the seed's: the last wins


def test_decode_refuses_non_utf8_nul_and_oversize() -> None:
    with pytest.raises(Invalid, match="not UTF-8"):
        orgturn.decode(b"#+TITLE: \xff\n")
    with pytest.raises(Invalid, match="NUL"):
        orgturn.decode(b"#+TITLE: a\x00b\n")
    with pytest.raises(Invalid, match="limit"):
        orgturn.decode(b"x" * (orgturn.MAX_CONTENT_BYTES + 1))


def test_canonical_form_ignores_sequence_offsets_and_line_ends() -> None:
    a = orgturn.parse(org(sequence=1))
    b = orgturn.parse(org(sequence=9, timestamp="2026-04-27T09:11:42Z").replace("\n", "\r\n") + "\n\n")
    assert a.sha256() == b.sha256()
    assert a.sha256() != orgturn.parse(org(body="Please fix the prep script!\n")).sha256()
    assert "SEQUENCE" not in a.canonical()


def test_with_key_replaces_only_that_line() -> None:
    text = org(sequence=3).replace("\n", "\r\n")
    out = orgturn.with_key(text, "SEQUENCE", "7")
    assert out == text.replace("#+SEQUENCE: 3\r\n", "#+SEQUENCE: 7\r\n")
    added = orgturn.with_key(org(), "WORKFLOW_VERSION", "2")
    assert orgturn.split(added)[0]["WORKFLOW_VERSION"] == "2" and orgturn.parse(added).body == orgturn.parse(org()).body


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_any_body_round_trips_through_render_and_parse(body: str) -> None:
    keys = orgturn.split(org())[0]
    text = orgturn.render(keys, body)
    parsed = orgturn.parse(text)
    assert orgturn.normalize_body(parsed.body) == orgturn.normalize_body(body)


def test_signature_shape_is_checked() -> None:
    sig = "-----BEGIN PGP SIGNATURE-----\n\niHUEABYK\n-----END PGP SIGNATURE-----\n"
    assert orgturn.check_signature(sig) == sig
    with pytest.raises(Invalid):
        orgturn.check_signature("-----BEGIN PGP MESSAGE-----\nx\n-----END PGP MESSAGE-----")


@pytest.mark.parametrize("name", sorted(orgturn.RESERVED_IDS))
def test_a_conversation_may_not_take_the_name_of_a_hub_route(name: str) -> None:
    """GET /api/coord/conversations/<name> answers another route: such a conversation could never be read."""
    with pytest.raises(Invalid) as err:
        orgturn.parse(org(conversation=name))
    assert err.value.details.get("field") == "CONVERSATION_ID" and "hub route" in str(err.value)
    assert orgturn.parse(org(conversation=name + "-1")).conversation_id == name + "-1"


def test_a_leading_byte_order_mark_is_skipped_and_kept() -> None:
    """Review (seed-004 user run): ``\\ufeff#+TITLE: …`` was no keyword line, so TITLE was missing."""
    text = "\ufeff" + org(sequence=7)
    t = orgturn.parse(text)
    assert (t.title, t.sequence) == ("Prep fix-up", 7) and t.sha256() == orgturn.parse(org(sequence=7)).sha256()
    renumbered = orgturn.with_key(text, "TITLE", "New")
    assert renumbered.startswith("\ufeff#+TITLE: New\n") and orgturn.parse(renumbered).title == "New"
    assert "\ufeff" not in orgturn.parse("\ufeff" + org(sequence=1)).body


def test_a_signed_sequence_is_read_as_the_seed_read_it() -> None:
    """Review (seed-004 user run): ``#+SEQUENCE: -3`` was refused as "must be an integer", which it is; the seed
    read it with int(). The refusal of what is not says what is allowed."""
    assert [orgturn.parse(org(sequence=s)).sequence for s in ("-3", "+3", "0", "2147483647")] == [-3, 3, 0, 2**31 - 1]
    with pytest.raises(Invalid) as e:
        orgturn.parse(org(sequence="seven"))
    assert e.value.message == ("SEQUENCE must be an integer from -2147483647 to 2147483647 (digits, an optional "
                               "sign; the hub numbers turns 1, 2, 3… itself); got 'seven'")
