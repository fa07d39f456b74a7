"""The live-lease overlap index (issue 8, point 2) on both backends.

The index narrows what a claim reads; it must never change the answer. The
property test fills a project with random leases and compares what the index
finds with a brute-force scan of every live lease under the same rule (the
evidence for "this path is a directory" taken from all live leases).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordhub.core import leasequeries, leases, paths
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import LeaseConflict
from coordhub.store.tx import Tx

A, B, C = Actor("A/claude-main"), Actor("B/claude-main"), Actor("C/claude-main")

# Names chosen to sort around "/" and "0" in byte order, and to differ from the locale's order.
SEGMENTS = ["a", "a-b", "a.b", "a0", "A_b", "b", "ü", "u\u0308"]
GLOB_SEGMENTS = ["*", "**", "a*", "*.b", "{a,b}", "[ab]"]


def resource_st() -> st.SearchStrategy[str]:
    segment = st.sampled_from(SEGMENTS + GLOB_SEGMENTS)
    path = st.lists(segment, min_size=1, max_size=3).map("/".join)
    return st.one_of(path, path.map(lambda p: p + "/"), st.sampled_from(["deploy:x", "deploy:y", ".", "./a-b"]))


def claim(hub: Hub, actor: Actor, resource: str, project: str = "p") -> dict[str, Any]:
    return hub.mutate_sync(actor, lambda tx, now: leases.claim(
        tx, actor, project_key=project, resource=resource, description=None, ttl_hours=2.0, now=now)).body


def brute_force(tx: Tx, project: str, resource: str, now: float) -> set[str]:
    live = tx.leases.live(now, project_key=project)

    def is_dir(key: str) -> bool:
        for row in live:
            res = paths.parse(row["resource"])
            scope = "" if res.universal else res.scope
            if scope.startswith(key + "/") or (scope == key and leases._scope_is_dir(res)):
                return True
        return False

    wanted = paths.parse(resource)
    return {r["id"] for r in live if paths.parse(r["resource"]).overlaps(wanted, is_dir)}


@given(held=st.lists(st.tuples(st.sampled_from([A, B, C]), resource_st()), max_size=14), wanted=resource_st())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_index_finds_exactly_what_a_full_scan_finds(hub: Hub, held: list[tuple[Actor, str]], wanted: str) -> None:
    project = f"p{abs(hash((tuple(held), wanted)))}"  # a fresh project per example: the store is shared
    for actor, resource in held:
        try:
            claim(hub, actor, resource, project)
        except LeaseConflict:
            pass
    found = hub.query_sync(lambda tx, now: {r["id"] for r in leasequeries.overlapping(
        tx, project, paths.parse(wanted), now)})
    assert found == hub.query_sync(lambda tx, now: brute_force(tx, project, wanted, now))


def test_a_live_lease_beneath_a_path_makes_it_a_directory(hub: Hub) -> None:
    claim(hub, A, "src/main")  # no "/": a file, as far as anyone knows
    claim(hub, B, "src/**/*.py")  # no file of src/main can be a .py file
    claim(hub, C, "lib/main")
    claim(hub, C, "lib/main/x.rs")  # C's own lease beneath shows lib/main is a directory
    with pytest.raises(LeaseConflict) as err:
        claim(hub, B, "lib/**/*.py")
    assert err.value.details["holder"] == C.session_id


def test_leases_from_before_the_index_are_candidates_and_get_filed(hub: Hub) -> None:
    claim(hub, A, "src/a.py")
    hub.store.write_sync(lambda tx: tx.leases.ex.execute("UPDATE leases SET scope = NULL, scope_is_dir = NULL"))
    found = hub.query_sync(lambda tx, now: list(leasequeries.overlapping(tx, "p", paths.parse("src/a.py"), now)))
    assert [r["resource"] for r in found] == ["src/a.py"]
    with pytest.raises(LeaseConflict):
        claim(hub, B, "src/a.py")
    claim(hub, B, "lib/x.py")  # any claim in the project files the old rows
    rows = hub.query_sync(lambda tx, now: tx.leases.live(now, project_key="p"))
    assert {(r["resource"], r["scope"], r["scope_is_dir"]) for r in rows} == {("src/a.py", "src/a.py", 0),
                                                                              ("lib/x.py", "lib/x.py", 0)}


def test_a_claim_over_the_budget_is_a_conflict_that_says_so(hub: Hub) -> None:
    groups = "".join(f"{{x{c}*{c}*y,z{d}*?{d}y}}" for c, d in zip("aceg", "bdfh", strict=True))
    claim(hub, A, groups + "*q*q*q*q*q*.py")
    with pytest.raises(LeaseConflict) as err:
        claim(hub, B, groups.replace("*y", "?*y") + "*q*?q*q*q*q*q*.rs")
    assert "work bound" in err.value.message


def test_too_complex_globs_are_refused_with_the_limit(hub: Hub) -> None:
    from coordhub.errors import Invalid

    bomb = "".join(f"{{x{c}*{c}*y,z{c}*?{c}y}}" for c in "abcdef") + "*.py"
    with pytest.raises(Invalid, match=f"limit {paths.MAX_EXPANDED}"):
        claim(hub, A, bomb)
    with pytest.raises(Invalid, match="too complex"):
        hub.query_sync(lambda tx, now: leasequeries.live(tx, now, "p", bomb))
