"""Lease rules around the claim (issue 7 points 14-16) on both backends: re-claim by the holder,
ending a session's leases, what a halt lets through, fences that must cover what they guard, and
seed 001's stale-lock rule made safe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordhub.clock import ManualClock
from coordhub.core import components, fences, leasequeries, leases, presence, todos, tokens, workflows
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import Forbidden, LeaseConflict, StaleFence
from coordhub.store import Store

A = Actor("A/claude-main")
B = Actor("B/claude-main")
ADMIN = Actor("admin", is_admin=True)


def claim(hub: Hub, actor: Actor, resource: str, ttl: float = 2.0, project: str = "p",
          description: str | None = None) -> dict[str, Any]:
    return hub.mutate_sync(actor, lambda tx, now: leases.claim(
        tx, actor, project_key=project, resource=resource, description=description or f"{actor.session_id} works",
        ttl_hours=ttl, now=now)).body


def live(hub: Hub, **kw: Any) -> list[dict[str, Any]]:
    return hub.query_sync(lambda tx, now: leasequeries.live(tx, now, **kw))


def events(hub: Hub, kind: str) -> list[dict[str, Any]]:
    return [e for e in hub.query_sync(lambda tx, now: tx.events.after(0, 1000)) if e["kind"] == kind]


# ---- 14: a second claim of the same resource by its holder -------------------------------------

def test_reclaim_by_the_holder_renews_the_same_lease(hub: Hub, clock: ManualClock) -> None:
    first = claim(hub, A, "src/a.py", ttl=1.0, description="first")
    assert first["renewed"] is False
    clock.advance(1800)
    again = claim(hub, A, "SRC/A.py", ttl=2.0, description="second")  # the same file, spelled otherwise
    assert again["renewed"] is True
    assert (again["id"], again["fence"], again["resource"]) == (first["id"], first["fence"], "src/a.py")
    assert again["ttl_hours"] == 2.0 and again["expires_in_seconds"] == pytest.approx(7200)
    assert again["description"] == "first"  # the grant is the same one; its purpose stays
    assert [x["id"] for x in live(hub)] == [first["id"]]  # one grant to release, not two
    renewed = events(hub, "lease.renewed")
    assert len(renewed) == 1 and json.loads(renewed[0]["payload"])["reclaimed"] is True
    assert len(events(hub, "lease.granted")) == 1
    # idempotent: once more changes nothing but the expiry
    third = claim(hub, A, "src/a.py", ttl=2.0)
    assert (third["id"], third["fence"], third["renewed"]) == (first["id"], first["fence"], True)
    # and the next grant still takes the next fence: the renewals took none
    assert claim(hub, B, "other")["fence"] == first["fence"] + 1


def test_reclaim_renews_to_the_new_ttl_including_no_expiry(hub: Hub, clock: ManualClock) -> None:
    first = claim(hub, A, "deploy:staging", ttl=0)
    again = claim(hub, A, "deploy:staging", ttl=0.5)
    assert again["fence"] == first["fence"] and again["expires_in_seconds"] == pytest.approx(1800)
    clock.advance(1801)  # it ran out at the new TTL
    fresh = claim(hub, A, "deploy:staging", ttl=0)
    assert fresh["renewed"] is False and fresh["fence"] > first["fence"] and fresh["expires_at"] is None


def test_reclaim_is_per_project_and_per_holder(hub: Hub) -> None:
    first = claim(hub, A, "src/", project="p1")
    other_project = claim(hub, A, "src/", project="p2")
    assert other_project["renewed"] is False and other_project["fence"] > first["fence"]
    with pytest.raises(LeaseConflict):  # someone else's claim of it is still a conflict
        claim(hub, B, "src/", project="p1")


def test_overlapping_but_different_resource_is_a_second_grant(hub: Hub) -> None:
    """Documented choice: holding ``src/a.py`` and claiming ``src/`` grants ``src/`` separately."""
    inner = claim(hub, A, "src/a.py")
    outer = claim(hub, A, "src/")
    assert outer["renewed"] is False and outer["id"] != inner["id"] and outer["fence"] > inner["fence"]
    assert {x["id"] for x in live(hub, session_id=A.session_id)} == {inner["id"], outer["id"]}


def test_reclaim_after_release_is_a_new_grant(hub: Hub) -> None:
    first = claim(hub, A, "x")
    hub.mutate_sync(A, lambda tx, now: leases.release(tx, A, first["id"], now))
    again = claim(hub, A, "x")
    assert again["renewed"] is False and again["fence"] > first["fence"]


# ---- 16: seed 001's stale-lock rule, made safe --------------------------------------------------

HOUR = 3600.0


def release(hub: Hub, actor: Actor, lease_id: str, reason: str | None = None) -> dict[str, Any]:
    return hub.mutate_sync(actor, lambda tx, now: leases.release(
        tx, actor, lease_id, now, stale_after_hours=hub.stale_after_hours, reason=reason)).body


def heartbeat(hub: Hub, actor: Actor) -> None:
    hub.mutate_sync(actor, lambda tx, now: presence.heartbeat(tx, actor, None, now))


def test_stale_no_expiry_lease_is_taken_over_with_who_and_why(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "deploy:staging", ttl=0)
    clock.advance(2 * HOUR + 1)
    got = release(hub, B, lease["id"], reason="deploy of v2 waits")
    assert got["state"] == "stale_takeover" and got["released_by"] == B.session_id
    assert "A/claude-main" in got["release_reason"] and "2.0 h" in got["release_reason"]
    assert got["release_reason"].endswith(": deploy of v2 waits")
    [event] = events(hub, "lease.stale_takeover")
    payload = json.loads(event["payload"])
    assert (event["session_id"], event["target"], payload["holder"], payload["by"]) == (
        B.session_id, A.session_id, A.session_id, B.session_id)
    assert payload["reason"] == got["release_reason"] and payload["inactive_seconds"] == pytest.approx(2 * HOUR + 1)
    # its fence is stale everywhere it is checked
    check = hub.query_sync(lambda tx, now: fences.check_fence(tx, lease["fence"], now, "deploy:staging"))
    assert check["current"] is False and "stale_takeover" in check["reason"]
    with pytest.raises(StaleFence):
        hub.mutate_sync(A, lambda tx, now: leases.renew(tx, A, lease["id"], None, now))
    with pytest.raises(StaleFence):
        hub.mutate_sync(A, lambda tx, now: components.set_state(
            tx, A, project_key="p", component="deploy:staging", state="deployed", fence=lease["fence"], now=now))
    # the taker may now proceed, with a newer fence
    mine = claim(hub, B, "deploy:staging")
    assert mine["fence"] > lease["fence"]
    # a retried takeover is harmless, and so is a third session's release of the ended lease: no one's to refuse
    again = release(hub, B, lease["id"])
    assert (again["release_reason"], again["already"]) == (got["release_reason"], True)
    third = release(hub, Actor("C/claude-main"), lease["id"])
    assert (third["state"], third["released_by"], third["already"]) == ("stale_takeover", B.session_id, True)


def test_live_holder_is_never_taken_over(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "src/", ttl=0)
    clock.advance(1.5 * HOUR)
    with pytest.raises(Forbidden) as err:
        release(hub, B, lease["id"])
    assert err.value.details["stale_in_seconds"] == pytest.approx(0.5 * HOUR)
    assert "in 30 min" in err.value.message
    # any activity of the holder counts: a heartbeat ...
    heartbeat(hub, A)
    clock.advance(1.5 * HOUR)
    with pytest.raises(Forbidden) as err:
        release(hub, B, lease["id"])
    assert err.value.details["stale_in_seconds"] == pytest.approx(0.5 * HOUR)
    # ... or any write, on any lease or none (here: a todo)
    hub.mutate_sync(A, lambda tx, now: todos.add(tx, A, text="still here", now=now))
    clock.advance(2 * HOUR - 1)
    with pytest.raises(Forbidden):
        release(hub, B, lease["id"])
    assert hub.query_sync(lambda tx, now: leasequeries.get(tx, lease["id"], now))["state"] == "active"
    clock.advance(1)
    assert release(hub, B, lease["id"])["state"] == "stale_takeover"


def test_a_refused_takeover_changes_nothing(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=0)
    before = hub.query_sync(lambda tx, now: (leasequeries.get(tx, lease["id"], now), tx.events.last_id()))
    clock.advance(HOUR)
    with pytest.raises(Forbidden):
        release(hub, B, lease["id"])
    after = hub.query_sync(lambda tx, now: (leasequeries.get(tx, lease["id"], now), tx.events.last_id()))
    assert after[1] == before[1] and after[0]["state"] == "active" and after[0]["released_by"] is None


def test_a_lease_with_a_ttl_is_never_taken_over(hub: Hub, clock: ManualClock) -> None:
    lease = claim(hub, A, "x", ttl=24)
    clock.advance(23 * HOUR)  # long idle, but it ends by itself
    with pytest.raises(Forbidden) as err:
        release(hub, B, lease["id"])
    assert err.value.details["stale_in_seconds"] is None and "expires in 60 min" in err.value.message


def test_the_threshold_is_a_hub_parameter_and_zero_turns_it_off(store: Store, clock: ManualClock) -> None:
    quick = Hub(store, clock, stale_after_hours=0.5)
    lease = claim(quick, A, "x", ttl=0)
    clock.advance(0.5 * HOUR)
    assert release(quick, B, lease["id"])["state"] == "stale_takeover"
    never = Hub(store, clock, stale_after_hours=0)
    other = claim(never, A, "y", ttl=0)
    clock.advance(1000 * HOUR)
    with pytest.raises(Forbidden) as err:
        release(never, B, other["id"])
    assert "turned off" in err.value.message
    with pytest.raises(ValueError):
        Hub(store, clock, stale_after_hours=-1)


# ---- 15: ending a session ends its leases; fences must cover what they guard ---------------------

def mint(hub: Hub, name: str) -> None:
    hub.mutate_sync(ADMIN, lambda tx, now: tokens.create(tx, ADMIN, name, False, now))


def revoke_token(hub: Hub, name: str, keep_leases: bool = False) -> dict[str, Any]:
    return hub.mutate_sync(ADMIN, lambda tx, now: tokens.revoke(tx, ADMIN, name, now, keep_leases=keep_leases)).body


def test_revoking_a_token_revokes_the_leases_of_its_session(hub: Hub) -> None:
    mint(hub, A.session_id)
    mine = [claim(hub, A, "src/"), claim(hub, A, "deploy:staging", ttl=0, project="q")]
    theirs = claim(hub, B, "docs/")
    out = revoke_token(hub, A.session_id)
    assert (out["revoked"], out["released_leases"], set(out["lease_ids"])) == (1, 2, {x["id"] for x in mine})
    for lease in mine:
        got = hub.query_sync(lambda tx, now, i=lease["id"]: leasequeries.get(tx, i, now))
        assert (got["state"], got["released_by"]) == ("revoked", ADMIN.session_id)
        check = hub.query_sync(lambda tx, now, f=lease["fence"]: fences.check_fence(tx, f, now))
        assert check["current"] is False
    assert [x["id"] for x in live(hub)] == [theirs["id"]]
    assert claim(hub, B, "src/a.py")["session_id"] == B.session_id  # free for others at once
    [event] = events(hub, "token.revoked")
    assert json.loads(event["payload"])["released_leases"] == 2


def test_revoking_a_token_with_keep_leases_keeps_them(hub: Hub) -> None:
    mint(hub, A.session_id)
    lease = claim(hub, A, "src/")
    out = revoke_token(hub, A.session_id, keep_leases=True)
    assert (out["released_leases"], out["lease_ids"], out["kept_leases"]) == (0, [], True)
    assert [x["id"] for x in live(hub)] == [lease["id"]]


def set_component(hub: Hub, actor: Actor, component: str, fence: int, project: str = "p") -> dict[str, Any]:
    return hub.mutate_sync(actor, lambda tx, now: components.set_state(
        tx, actor, project_key=project, component=component, state="deployed", fence=fence, now=now)).body


def test_a_component_write_needs_a_fence_that_names_the_component(hub: Hub) -> None:
    unrelated = claim(hub, A, "src/")
    with pytest.raises(StaleFence) as err:  # live and in the project, but it guards src/, not the component
        set_component(hub, A, "api", unrelated["fence"])
    assert "does not cover component 'api'" in err.value.message and "'component:api'" in err.value.message
    other = claim(hub, A, "component:web")
    with pytest.raises(StaleFence):
        set_component(hub, A, "api", other["fence"])
    assert hub.query_sync(lambda tx, now: components.find(tx)) == []
    named = claim(hub, A, "component:api")
    assert set_component(hub, A, "api", named["fence"])["state"] == "deployed"
    itself = claim(hub, A, "deploy:staging")  # a component named like a resource is covered by the lease on it
    assert set_component(hub, A, "deploy:staging", itself["fence"])["updated_by"] == A.session_id


def test_a_work_item_write_needs_a_fence_on_the_item_or_its_workflow(hub: Hub) -> None:
    def op(fn: Any) -> Any:
        return hub.mutate_sync(A, fn).body

    wf = op(lambda tx, now: workflows.create(tx, A, project_key="p", name="w", now=now))
    item, sibling = (op(lambda tx, now, t=t: workflows.add_item(tx, A, workflow_id=wf["id"], title=t, now=now))
                     for t in ("one", "two"))

    def update(fence: int, target: dict[str, Any] = item) -> dict[str, Any]:
        return op(lambda tx, now: workflows.update_item(tx, A, target["id"], {"status": "in_progress"},
                                                        fence=fence, now=now))

    for resource in ("src/", f"work-item:{sibling['id']}", "workflow:someone-else"):
        with pytest.raises(StaleFence):
            update(claim(hub, A, resource)["fence"])
    assert hub.query_sync(lambda tx, now: workflows.get_item(tx, item["id"]))["status"] == "pending"
    assert update(claim(hub, A, f"work-item:{item['id']}")["fence"])["status"] == "in_progress"
    whole = claim(hub, A, f"workflow:{wf['id']}")
    assert update(whole["fence"], sibling)["status"] == "in_progress"
