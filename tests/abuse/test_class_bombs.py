"""A glob's character class costs what the set it admits costs, not what its spelling does (review, 2026-12-06).

A class such as ``[#####…]`` kept every one of up to a thousand members as a range, scanned for each
character tested, while the overlap budgets (issue 8) count one step per state and edge: one claim of
``**/*[#…]`` against 300 held leases held the single writer for 2–3 s (every write of the hub waited), one
``GET /locks/check`` of a 1,000-character text against ``*[b…]`` cost 0.3 s on the event loop, and a
conflict query of classes against classes 4–5 s on a reader thread. A class is now a 128-bit mask: each test
is one shift. The work is counted as the interpreter's function calls and generator resumptions (the same
count on any machine, however loaded), for the class spelled long and short.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from coordhub.core import automata, fences, paths
from tests.conftest import Api, on_event_loop

HELD = [f"src/module_{i}/some/deeper/path/file_{i}.py" for i in range(60)]


def _calls(work: Callable[[], object]) -> int:
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        count += event == "call"

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def _claim_checks(glob: str) -> Callable[[], object]:
    def run() -> object:
        budget = paths.Budget()
        return [paths.overlaps(glob, held, budget=budget) for held in HELD]
    return run


@pytest.mark.parametrize("member", ["#", "b", "Q"])
def test_a_class_spelled_a_thousand_times_costs_what_it_costs_spelled_once(member: str) -> None:
    long, short = _claim_checks(f"**/*[{member * 997}]"), _claim_checks(f"**/*[{member}]")
    assert long() == short()  # (each glob is compiled once per process: this also warms both)
    assert _calls(long) <= 1.2 * _calls(short) + 200


def test_a_fence_check_against_a_long_class_is_cheap_and_off_the_event_loop(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    lease = api.post("/api/coord/locks", json={"project_key": "zz", "resource": "*[" + "b" * 1018 + "]"},
                     headers=api.token("HOSTA/alice")).json()
    assert _calls(lambda: paths.contains("*[" + "b" * 1018 + "]", "a" * 1000)) <= 20_000
    seen: dict[str, bool] = {}
    real = fences.check_fence

    def spying(*args: Any, **kwargs: Any) -> Any:
        seen["check_fence"] = on_event_loop()
        return real(*args, **kwargs)

    monkeypatch.setattr(fences, "check_fence", spying)
    r = api.get("/api/coord/locks/check", params={"fence": lease["fence"], "resource": "a" * 1000},
                headers=api.token("HOSTB/bob"))
    assert r.status_code == 200, r.text
    assert seen == {"check_fence": False}


def test_two_classes_meet_in_a_few_calls_however_many_members_they_have() -> None:
    """A conflict query of classes against classes (``ab{[…25 letters…],…}`` × 32) tested each pair of classes at
    one witness character per range end, each test scanning every range: 4–5 s a request on a reader thread."""
    wide = automata._class_pred(False, tuple((c, c) for c in "acegikmoqsuwy" * 2))
    other = automata._class_pred(True, tuple((c, c) for c in "bdfhjlnprtvxz" * 2))
    assert automata._meet.__wrapped__(wide, other)  # "a": a member of the one, not of the other's list
    assert _calls(lambda: automata._meet.__wrapped__(wide, other)) <= 4
