"""Leases (contract §2.3, §2.4) on both backends: conflicts, expiry on the hub clock, fences."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.clock import ManualClock
from coordhub.core import components, fences, leasequeries, leases, workflows
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import Forbidden, Invalid, LeaseConflict, NotFound, StaleFence

A = Actor("A/claude-main")
B = Actor("B/claude-main")
ADMIN = Actor("admin", is_admin=True)


def claim(hub: Hub, actor: Actor, resource: str, ttl: float = 2.0, project: str = "p") -> dict[str, Any]:
    return hub.mutate_sync(actor, lambda tx, now: leases.claim(
        tx, actor, project_key=project, resource=resource, description=f"{actor.session_id} works",
        ttl_hours=ttl, now=now)).body


def op(hub: Hub, actor: Actor, fn: Any) -> Any:
    return hub.mutate_sync(actor, fn).body


@pytest.mark.parametrize(("held", "wanted", "conflict"), [
    ("server/src/", "server/src/api/x.rs", True),
    ("server/src/api/x.rs", "server/src", True),
    ("server/src", "server/srcx/a.rs", False),
    ("src/**/*.py", "src/a/b.py", True),
    ("src/*.py", "src/*.rs", False),
    ("src/*.py", "src/", True),
    ("deploy:staging", "deploy:staging", True),
    ("deploy:staging", "deploy:prod", False),
    ("Src/A.py", "src/a.py", True),
])
def test_overlap_decides_conflict(hub: Hub, held: str, wanted: str, conflict: bool) -> None:
    claim(hub, A, held)
    if conflict:
        with pytest.raises(LeaseConflict) as err:
            claim(hub, B, wanted)
        assert err.value.details["holder"] == A.session_id
        assert err.value.details["description"] == "A/claude-main works"
        assert err.value.details["expires_in_seconds"] == pytest.approx(7200.0)
    else:
        assert claim(hub, B, wanted)["session_id"] == B.session_id


def test_projects_are_separate_namespaces(hub: Hub) -> None:
    claim(hub, A, "src/", project="p1")
    assert claim(hub, B, "src/", project="p2")["project_key"] == "p2"


def test_own_leases_never_conflict(hub: Hub) -> None:
    claim(hub, A, "src/")
    assert claim(hub, A, "src/a.py")["session_id"] == A.session_id


def test_fences_strictly_increase_across_grants_and_holders(hub: Hub) -> None:
    fences = []
    for i in range(10):
        lease = claim(hub, A if i % 2 else B, f"r{i}")
        fences.append(lease["fence"])
    assert fences == sorted(fences) and len(set(fences)) == 10


def test_expiry_on_hub_clock_frees_at_once_and_is_recorded(hub: Hub, clock: ManualClock) -> None:
    old = claim(hub, A, "src/", ttl=1.0)
    clock.advance(3599)
    with pytest.raises(LeaseConflict):
        claim(hub, B, "src/x.py")
    clock.advance(2)  # now past expires_at; no sweep has run
    new = claim(hub, B, "src/x.py")
    assert new["fence"] > old["fence"]
    got = hub.query_sync(lambda tx, now: leasequeries.get(tx, old["id"], now))
    assert got["state"] == "expired"


def test_sweep_records_expired(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=0.5)
    clock.advance(1801)
    assert hub.query_sync(lambda tx, now: leasequeries.live(tx, now)) == []
    assert hub.sweep_sync()["expired_leases"] == 1
    assert hub.query_sync(lambda tx, now: leasequeries.get(tx, lease["id"], now))["state"] == "expired"


def test_ttl_zero_never_expires(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=0)
    assert lease["expires_at"] is None
    clock.advance(10 * 365 * 86400)
    with pytest.raises(LeaseConflict):
        claim(hub, B, "x")


@pytest.mark.parametrize("ttl", [-1.0, float("nan"), float("inf"), 24 * 366])
def test_bad_ttl_is_refused_and_writes_nothing(hub: Hub, ttl: float) -> None:
    with pytest.raises(Invalid):
        claim(hub, A, "x", ttl=ttl)
    assert hub.query_sync(lambda tx, now: leasequeries.live(tx, now)) == []
    assert hub.query_sync(lambda tx, now: tx.events.last_id()) == 0


def test_only_holder_releases_and_renews(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=1)
    with pytest.raises(Forbidden):
        op(hub, B, lambda tx, now: leases.release(tx, B, lease["id"], now))
    with pytest.raises(Forbidden):
        op(hub, B, lambda tx, now: leases.renew(tx, B, lease["id"], None, now))
    clock.advance(1800)
    renewed = op(hub, A, lambda tx, now: leases.renew(tx, A, lease["id"], 2.0, now))
    assert renewed["fence"] == lease["fence"] and renewed["expires_in_seconds"] == pytest.approx(7200)
    released = op(hub, A, lambda tx, now: leases.release(tx, A, lease["id"], now))
    assert released["state"] == "released"
    again = op(hub, A, lambda tx, now: leases.release(tx, A, lease["id"], now))
    assert again["state"] == "released"  # a retried release is harmless
    assert claim(hub, B, "x")["session_id"] == B.session_id


def test_renew_after_expiry_is_stale(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=1)
    clock.advance(3601)
    with pytest.raises(StaleFence):
        op(hub, A, lambda tx, now: leases.renew(tx, A, lease["id"], None, now))


def test_admin_force_release_fences_out_old_holder(hub: Hub) -> None:
    lease = claim(hub, A, "deploy:staging")
    with pytest.raises(Forbidden):
        op(hub, B, lambda tx, now: leases.revoke(tx, B, lease["id"], now))
    revoked = op(hub, ADMIN, lambda tx, now: leases.revoke(tx, ADMIN, lease["id"], now))
    assert revoked["state"] == "revoked"
    check = hub.query_sync(lambda tx, now: fences.check_fence(tx, lease["fence"], now, "deploy:staging"))
    assert check["current"] is False and "revoked" in check["reason"]
    with pytest.raises(StaleFence):
        op(hub, A, lambda tx, now: components.set_state(tx, A, project_key="p", component="api", state="deployed",
                                                        fence=lease["fence"], now=now))


def test_release_all(hub: Hub) -> None:
    for r in ("a", "b", "c"):
        claim(hub, A, r)
    claim(hub, B, "d")
    with pytest.raises(Forbidden):
        op(hub, B, lambda tx, now: leases.release_all(tx, B, A.session_id, now))
    out = op(hub, A, lambda tx, now: leases.release_all(tx, A, A.session_id, now))
    assert out["released"] == 3
    assert [x["resource"] for x in hub.query_sync(lambda tx, now: leasequeries.live(tx, now))] == ["d"]


def test_check_fence_current_and_coverage(hub: Hub) -> None:
    lease = claim(hub, A, "src/")
    q = hub.query_sync
    assert q(lambda tx, now: fences.check_fence(tx, lease["fence"], now, "src/a/b.py", "p"))["current"]
    assert not q(lambda tx, now: fences.check_fence(tx, lease["fence"], now, "docs/x.md"))["current"]
    assert not q(lambda tx, now: fences.check_fence(tx, lease["fence"], now, None, "other"))["current"]
    assert not q(lambda tx, now: fences.check_fence(tx, 999, now))["current"]
    newer = claim(hub, A, "other")
    assert newer["fence"] > lease["fence"]


def test_fenced_work_item_update(hub: Hub, clock: ManualClock) -> None:
    wf = op(hub, A, lambda tx, now: workflows.create(tx, A, project_key="p", name="w", now=now))
    item = op(hub, A, lambda tx, now: workflows.add_item(tx, A, workflow_id=wf["id"], title="t", now=now))
    lease = claim(hub, A, f"workflow:{wf['id']}", ttl=1)
    done = op(hub, A, lambda tx, now: workflows.update_item(tx, A, item["id"], {"status": "in_progress"},
                                                            fence=lease["fence"], now=now))
    assert done["status"] == "in_progress"
    with pytest.raises(StaleFence):  # B cannot use A's fence
        op(hub, B, lambda tx, now: workflows.update_item(tx, B, item["id"], {"status": "completed"},
                                                         fence=lease["fence"], now=now))
    clock.advance(3601)
    with pytest.raises(StaleFence):  # expired: A's fence is stale now
        op(hub, A, lambda tx, now: workflows.update_item(tx, A, item["id"], {"status": "completed"},
                                                         fence=lease["fence"], now=now))
    assert hub.query_sync(lambda tx, now: workflows.get_item(tx, item["id"]))["status"] == "in_progress"


def test_unknown_lease_is_not_found(hub: Hub) -> None:
    with pytest.raises(NotFound):
        op(hub, A, lambda tx, now: leases.release(tx, A, "00000000-0000-0000-0000-000000000000", now))


def test_query_by_resource_overlap(hub: Hub) -> None:
    claim(hub, A, "server/src/")
    claim(hub, B, "docs/")
    found = hub.query_sync(lambda tx, now: leasequeries.live(tx, now, "p", "server/src/api/x.rs"))
    assert [x["resource"] for x in found] == ["server/src/"]


def test_fence_of_another_project_is_refused(hub: Hub) -> None:
    lease = claim(hub, A, "component:api", project="web")
    with pytest.raises(StaleFence) as err:
        op(hub, A, lambda tx, now: components.set_state(tx, A, project_key="billing", component="api",
                                                        state="deployed", fence=lease["fence"], now=now))
    assert "project 'web'" in err.value.message
    ok = op(hub, A, lambda tx, now: components.set_state(tx, A, project_key="web", component="api",
                                                         state="deployed", fence=lease["fence"], now=now))
    assert ok["state"] == "deployed"


def test_force_release_of_an_already_expired_lease_records_expiry(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=1)
    clock.advance(3601)
    assert op(hub, ADMIN, lambda tx, now: leases.revoke(tx, ADMIN, lease["id"], now))["state"] == "expired"


@pytest.mark.parametrize("ttl", [None, 3, 0.5, 0])
def test_a_renewal_answers_the_lease_as_it_is_stored(hub: Hub, clock: ManualClock, ttl: float | None) -> None:
    """Renewing (its own TTL, an integer, a fraction, no expiry) answers from the row as its UPDATE leaves it,
    without reading it again: the answer is what a read of the lease gives at that moment, and so is a holder's
    reclaim (a renewal too)."""
    lease = claim(hub, A, "src/renewed.py")
    clock.advance(60)
    renewed = op(hub, A, lambda tx, now: leases.renew(tx, A, lease["id"], ttl, now))
    stored = hub.store.read_sync(lambda tx: leases.render(tx.leases.get(lease["id"]), clock.now()))
    assert renewed == stored and renewed["renewed_at"] is not None
    clock.advance(60)
    reclaimed = op(hub, A, lambda tx, now: leases.claim(tx, A, project_key="p", resource="src/renewed.py",
                                                       description=None, ttl_hours=4, now=now))
    stored = hub.store.read_sync(lambda tx: leases.render(tx.leases.get(lease["id"]), clock.now()))
    assert {**reclaimed, "renewed": None} == {**stored, "renewed": None} and reclaimed["renewed"] is True
