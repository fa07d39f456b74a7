"""Lease rules over HTTP (issue 7 points 14-16), through the real app on both backends."""

from __future__ import annotations

from coordhub.clock import ManualClock
from tests.conftest import Api

A = "A/claude-main"
B = "B/claude-main"
LOCKS = "/api/coord/locks"
HOUR = 3600.0


def test_second_claim_by_the_holder_returns_the_live_lease_renewed(api: Api, clock: ManualClock) -> None:
    me = api.token(A)
    first = api.post(LOCKS, json={"project_key": "p", "resource": "src/api/", "ttl_hours": 1}, headers=me)
    assert first.status_code == 201 and first.json()["renewed"] is False
    clock.advance(600)
    again = api.post(LOCKS, json={"project_key": "p", "resource": "Src/Api/", "ttl_hours": 3}, headers=me)
    assert again.status_code == 201, again.text
    body = again.json()
    assert body["renewed"] is True and (body["id"], body["fence"]) == (first.json()["id"], first.json()["fence"])
    assert body["expires_in_seconds"] == 3 * HOUR
    assert [x["id"] for x in api.get(LOCKS, headers=me).json()] == [body["id"]]


def test_stale_no_expiry_lease_may_be_released_by_anyone_through_the_seed_call(api: Api, clock: ManualClock) -> None:
    a, b = api.token(A), api.token(B)
    lease = api.post(LOCKS, json={"project_key": "p", "resource": "deploy:staging", "ttl_hours": 0}, headers=a).json()
    clock.advance(HOUR)
    r = api.delete(f"{LOCKS}/{lease['id']}", headers=b)
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "forbidden" and err["holder"] == A and err["stale_in_seconds"] == HOUR
    clock.advance(HOUR)
    r = api.delete(f"{LOCKS}/{lease['id']}", params={"reason": "A's machine is gone"}, headers=b)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["state"], got["released_by"]) == ("stale_takeover", B)
    assert got["release_reason"].endswith(": A's machine is gone")
    check = api.get(f"{LOCKS}/check", params={"fence": lease["fence"]}, headers=b).json()
    assert check["current"] is False
    assert api.post(LOCKS, json={"project_key": "p", "resource": "deploy:staging"}, headers=b).status_code == 201
    # the old holder's notifications say who took it and why
    notes = api.get("/api/coord/notifications", headers=a).json()["events"]
    assert [(e["kind"], e["payload"]["by"]) for e in notes if e["kind"].startswith("lease.")] == [
        ("lease.stale_takeover", B)]


def test_takeover_reason_is_bounded(api: Api, clock: ManualClock) -> None:
    a, b = api.token(A), api.token(B)
    lease = api.post(LOCKS, json={"project_key": "p", "resource": "x", "ttl_hours": 0}, headers=a).json()
    clock.advance(3 * HOUR)
    for bad in ("x" * 501, "two\nlines"):
        r = api.delete(f"{LOCKS}/{lease['id']}", params={"reason": bad}, headers=b)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid", r.text
    assert api.get(f"{LOCKS}/{lease['id']}", headers=b).json()["state"] == "active"
