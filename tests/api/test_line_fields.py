"""The one-line rule of request fields (``schemas.Line``, ``LongLine``, ``Subject``): no C0 control character and
no DEL, whatever else the text holds (issue 15 made its common case one C scan; the rule is unchanged)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coordhub.api.schemas import LockClaim, _line

_RULE = re.compile(r"[\x00-\x1f\x7f]")  # the rule as the regular expression it was written as
# Characters at the rule's edges: controls in and out of it (C1 \x85, \x9f), unprintable ones it allows
# (no-break space, line separator, a lone surrogate, a private-use and an unassigned code point) and plain text.
_EDGES = ["\x00", "\t", "\n", "\r", "\x1b", "\x1f", " ", "\x7f", "\x80", "\x85", "\x9f", "\xa0", "\u2028", "\u200b",
          "\ud800", "\ue000", "\U000e0001", "\U0010ffff", "a", "Z", "é", "文", "😀", "/", "-"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_EDGES), min_size=1, max_size=12))
def test_a_line_is_refused_exactly_when_it_holds_a_c0_control_or_del(chars: list[str]) -> None:
    value = "".join(chars)
    if _RULE.search(value):
        with pytest.raises(ValueError, match="one line without control characters"):
            _line(value)
    else:
        assert _line(value) is value


@pytest.mark.parametrize("resource", ["src/a\x1fb.py", "src/a\x7f.py", "src/a\nb.py"])
def test_a_claim_with_a_control_character_in_a_line_field_is_refused(resource: str) -> None:
    with pytest.raises(ValidationError, match="one line without control characters"):
        LockClaim.model_validate({"project_key": "p", "resource": resource})


@pytest.mark.parametrize("resource", ["src/a\x85b.py", "src/a\xa0b.py", "src/a\u2028b.py"])
def test_a_claim_with_an_unprintable_character_outside_the_rule_is_taken(resource: str) -> None:
    assert LockClaim.model_validate({"project_key": "p", "resource": resource}).resource == resource
