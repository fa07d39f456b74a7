"""Tests for ``coordhub.core.automata``: character predicates and the witnesses that decide them."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.core import automata
from coordhub.core.paths import overlaps

# --- character predicates ----------------------------------------------------------------------

ITEM_CHARS = string.ascii_letters + string.digits + "`{@_.~"  # no class syntax, no re syntax clash
SAFE_CHARS = string.ascii_letters + string.digits + "_-@~`^!"  # plain path characters
class_item_st = st.one_of(
    st.sampled_from(ITEM_CHARS).map(lambda c: (c, c)),
    st.tuples(st.sampled_from(ITEM_CHARS), st.sampled_from(ITEM_CHARS)).map(lambda r: tuple(sorted(r))),
)


@given(st.lists(class_item_st, min_size=1, max_size=3), st.booleans())
@settings(max_examples=150, deadline=None)
def test_classes_match_like_re_ignorecase(items: list[tuple[str, str]], negated: bool) -> None:
    glob = "x[" + "!" * negated + "".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in items) + "]"
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in items)
    rx = re.compile("x[" + "^" * negated + body + "]", re.IGNORECASE)
    for c in SAFE_CHARS:
        assert overlaps(glob, "x" + c) == bool(rx.fullmatch("x" + c)), (glob, c)


RANGE_CHARS = "aAbBxXyYzZ@[`{~09.:_"  # around the letters, "/" and the ASCII edges
ranges_st = st.lists(
    st.tuples(st.sampled_from(RANGE_CHARS), st.sampled_from(RANGE_CHARS)).map(lambda r: tuple(sorted(r))),
    min_size=1, max_size=3,
).map(tuple)
pred_st = st.one_of(
    st.just(automata._ANY),
    st.sampled_from(string.ascii_lowercase + "[`{0é").map(lambda c: automata._Pred(automata._LIT, c)),
    st.builds(lambda neg, rs: automata._Pred(automata._CLASS, negated=neg, ranges=rs), st.booleans(), ranges_st),
)
FOLDED = {automata.fold_char(chr(i)) for i in range(0x20, 0x7F)} | set("éıßſ\u212a\u0130")


def meet_by_brute_force(p: automata._Pred, q: automata._Pred) -> bool:
    return any(automata._matches(p, c) and automata._matches(q, c) for c in FOLDED)


ClassSpec = tuple[bool, tuple[tuple[str, str], ...]]  # (negated, ranges)


@pytest.mark.parametrize(
    ("p", "q"),
    [  # each needs one of the fixed witnesses: "{", "[", "0", "a"
        ((True, (("A", "Z"),)), (False, (("x", "~"),))),
        ((False, (("X", "_"),)), (True, (("x", "z"),))),
        ((False, ((".", "9"),)), (True, ((".", "."),))),
        ((False, (("5", "C"),)), (False, (("`", "z"),))),
    ],
)
def test_witness_edge_cases(p: ClassSpec, q: ClassSpec) -> None:
    first, second = (automata._Pred(automata._CLASS, negated=neg, ranges=rs) for neg, rs in (p, q))
    assert meet_by_brute_force(first, second)
    assert automata._meet(first, second)


@given(pred_st, pred_st)
@settings(max_examples=1000, deadline=None)
def test_witnesses_are_complete(p: automata._Pred, q: automata._Pred) -> None:
    assert automata._meet(p, q) == meet_by_brute_force(p, q)
