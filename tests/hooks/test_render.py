"""The injected text: seed 000's banner, the caps, and the answer shapes (in-process, no hub)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.hooks import inbox, output

RULE = "=" * 60


def message(i: int, body: str = "body", **extra: Any) -> dict[str, Any]:
    return {"id": f"m-{i}", "seq": i, "from_session": "HOWARD-HOME/claude-main", "subject": f"subject {i}",
            "body": body, "importance": "normal", "broadcast": False, "message_type": None, "requires_ack": False,
            "created_at": "2026-11-20T10:00:00Z", "acked_at": None, "project_key": None, "deliveries": 1, **extra}


def test_banner_is_seed_000_style() -> None:
    text = inbox.banner(message(1, "Hold merges.", importance="urgent", requires_ack=True, broadcast=True,
                                message_type="NOTIFICATION", project_key="gururmm", deliveries=2))
    assert text.split("\n") == [
        RULE, "MESSAGE FROM HOWARD-HOME/claude-main — subject 1",
        "id m-1 · 2026-11-20T10:00:00Z · URGENT · BROADCAST · NOTIFICATION · ACK REQUIRED · DELIVERY 2 · "
        "project gururmm",
        RULE, "Hold merges.", RULE]


def test_block_lists_every_message_with_instructions() -> None:
    block = inbox.render([message(1), message(2, requires_ack=True)], 0, 4000)
    assert block is not None and block.shown == 2
    assert block.text.startswith("UNREAD COORD MESSAGES (2): reproduce each message below verbatim")
    assert "`coord msg read <id>`" in block.text and "`coord msg ack <id>`" in block.text
    assert "more unread" not in block.text


def test_block_counts_what_it_leaves_out() -> None:
    block = inbox.render([message(1)], 4, 4000)
    assert block is not None
    assert "UNREAD COORD MESSAGES (1 of 5)" in block.text and "4 more unread: run `coord msg inbox`." in block.text


def test_nothing_to_show_is_none() -> None:
    assert inbox.render([], 0, 4000) is None


def test_long_bodies_share_the_budget_and_short_ones_stay_whole() -> None:
    msgs = [message(1, "short"), message(2, "L" * 5000), message(3, "M" * 5000)]
    block = inbox.render(msgs, 0, 2000)
    assert block is not None and block.shown == 3 and len(block.text) <= 2000
    assert "\nshort\n" in block.text
    assert block.text.count("more characters: `coord msg inbox`]") == 2
    kept_l, kept_m = (max(len(run) for run in re.findall(f"{c}+", block.text)) for c in "LM")
    assert kept_l > 300 and abs(kept_l - kept_m) <= 2  # split evenly


def test_a_tiny_budget_still_points_to_the_inbox() -> None:
    block = inbox.render([message(1, "x" * 100)] * 3, 2, 50)
    assert block is not None and block.shown == 0
    assert block.text == "UNREAD COORD MESSAGES: 5 unread; run `coord msg inbox` to read them."


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(st.text(max_size=3000), min_size=1, max_size=8), more=st.integers(0, 1000),
       max_chars=st.integers(600, 6000))
def test_the_character_cap_always_holds(bodies: list[str], more: int, max_chars: int) -> None:
    msgs = [message(i, b) for i, b in enumerate(bodies)]
    block = inbox.render(msgs, more, max_chars)
    assert block is not None
    assert len(block.text) <= max_chars
    total = len(msgs) + more
    hidden = total - block.shown
    for i in range(block.shown):
        assert f"MESSAGE FROM HOWARD-HOME/claude-main — subject {i}\n" in block.text
    for i in range(block.shown, len(msgs)):
        assert f"— subject {i}\n" not in block.text
    if hidden:
        assert f"{hidden} {'more unread' if block.shown else 'unread'}" in block.text
    for b in bodies[:block.shown]:
        if len(b) <= inbox.MIN_BODY:  # a shown message keeps a short body whole
            assert f"\n{RULE}\n{b}\n{RULE}" in block.text


def test_answer_shapes_follow_claude_code() -> None:
    assert output.deny("no") == {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                                        "permissionDecisionReason": "no"}}
    assert output.context("PostToolUse", "x") == {"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                                                         "additionalContext": "x"}}
    assert output.block("why") == {"decision": "block", "reason": "why"}
