"""Tests for ``coordhub.core.automata``: character predicates and when two of them meet."""

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


def spellings(c: str) -> set[str]:
    """Every character that folds to what ``c`` folds to: the names a path spelled with ``c`` stands for."""
    folded = automata.fold_char(c)
    return {v for v in (c, c.upper(), c.lower(), "\u212a", "\u017f") if len(v) == 1 and automata.fold_char(v) == folded}


@given(st.lists(class_item_st, min_size=1, max_size=3), st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_class_overlaps_a_path_when_it_matches_one_of_its_spellings(items: list[tuple[str, str]],
                                                                     negated: bool) -> None:
    """A path stands for every spelling that folds to it; a glob overlaps it when the glob, read as written (case
    sensitive, as a shell reads it), matches one of them. Review: ``[!t]`` missed ``T``, which it matches."""
    glob = "x[" + "!" * negated + "".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in items) + "]"
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in items)
    rx = re.compile("[xX][" + "^" * negated + body + "]")
    for c in SAFE_CHARS:
        expected = any(rx.fullmatch("x" + v) for v in spellings(c))
        assert overlaps(glob, "x" + c) == expected, (glob, c)


RANGE_CHARS = "aAbBxXyYzZ@[`{~09.:_"  # around the letters, "/" and the ASCII edges
ranges_st = st.lists(
    st.tuples(st.sampled_from(RANGE_CHARS), st.sampled_from(RANGE_CHARS)).map(lambda r: tuple(sorted(r))),
    min_size=1, max_size=3,
).map(tuple)
pred_st = st.one_of(
    st.just(automata._ANY),
    st.sampled_from(string.ascii_lowercase + "[`{0é").map(lambda c: automata._Pred(automata._LIT, c)),
    st.builds(automata._class_pred, st.booleans(), ranges_st),
)
FOLDED = {automata.fold_char(chr(i)) for i in range(0x20, 0x7F)} | set("éıßſ\u212a\u0130")


def meet_by_brute_force(p: automata._Pred, q: automata._Pred) -> bool:
    return any(automata._matches(p, c) and automata._matches(q, c) for c in FOLDED)


ClassSpec = tuple[bool, tuple[tuple[str, str], ...]]  # (negated, ranges)


@pytest.mark.parametrize(
    ("p", "q"),
    [  # each meets only around an edge: "{", "[", "0", "a"
        ((True, (("A", "Z"),)), (False, (("x", "~"),))),
        ((False, (("X", "_"),)), (True, (("x", "z"),))),
        ((False, ((".", "9"),)), (True, ((".", "."),))),
        ((False, (("5", "C"),)), (False, (("`", "z"),))),
    ],
)
def test_classes_meeting_at_an_edge(p: ClassSpec, q: ClassSpec) -> None:
    first, second = (automata._class_pred(neg, rs) for neg, rs in (p, q))
    assert meet_by_brute_force(first, second)
    assert automata._meet(first, second)


@given(pred_st, pred_st)
@settings(max_examples=1000, deadline=None)
def test_meet_agrees_with_every_folded_character(p: automata._Pred, q: automata._Pred) -> None:
    assert automata._meet(p, q) == meet_by_brute_force(p, q)


def member_by_ranges(negated: bool, ranges: tuple[tuple[str, str], ...], c: str) -> bool:
    """A class's admission of folded ``c`` read off its ranges: of ``c`` and the characters that fold to it, one
    in a range (positive) or one in none (negated)."""
    variants = [v for v in (c, c.upper(), c.lower(), "\u212a", "\u017f")
                if v == c or (len(v) == 1 and automata.fold_char(v) == c)]
    inside = [any(lo <= v <= hi for lo, hi in ranges) for v in variants]
    return not all(inside) if negated else any(inside)


@given(st.booleans(), ranges_st)
@settings(max_examples=500, deadline=None)
def test_a_class_mask_admits_what_its_ranges_do(negated: bool, ranges: tuple[tuple[str, str], ...]) -> None:
    pred = automata._class_pred(negated, ranges)
    for c in FOLDED | set(string.ascii_uppercase):
        if c != "/":
            assert automata._matches(pred, c) == member_by_ranges(negated, ranges, c), (ranges, c)


def test_a_class_costs_the_same_however_it_is_spelled() -> None:
    """Review (2026-12-06): ``[#####…]`` kept each of a thousand members as a range, scanned on every test of a
    character, while the budgets counted one step per edge: one claim held the writer for seconds. A class is now
    the set it admits, so a thousand repeats, a shuffled spelling and the plain one are one predicate."""
    plain = automata._class_pred(False, (("#", "#"),))
    assert automata._class_pred(False, (("#", "#"),) * 1000) == plain
    spelled = tuple((c, c) for c in "zyxwvutsrqponmlkjihgfedcba" * 40)
    assert automata._class_pred(False, spelled) == automata._class_pred(False, (("a", "z"),))
    assert automata._meet(plain, automata._class_pred(True, spelled))
    assert not automata._meet(plain, automata._class_pred(False, spelled))
