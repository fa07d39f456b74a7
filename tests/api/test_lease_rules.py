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


# ---- 15: ending a session ends its leases; what a halt lets through ----------------------------

def test_revoking_a_token_over_http_ends_its_leases_and_says_how_many(api: Api) -> None:
    a, b = api.token(A), api.token(B)
    lease = api.post(LOCKS, json={"project_key": "p", "resource": "src/"}, headers=a).json()
    r = api.delete(f"/api/coord/tokens/{A}", headers=api.admin)
    assert r.status_code == 200, r.text
    assert (r.json()["released_leases"], r.json()["lease_ids"]) == (1, [lease["id"]])
    assert api.get(f"{LOCKS}/{lease['id']}", headers=b).json()["state"] == "revoked"
    assert api.post(LOCKS, json={"project_key": "p", "resource": "src/a.py"}, headers=b).status_code == 201
    kept = api.token("C/claude-main")
    held = api.post(LOCKS, json={"project_key": "p", "resource": "docs/"}, headers=kept).json()
    r = api.delete("/api/coord/tokens/C/claude-main", params={"keep_leases": "true"}, headers=api.admin)
    assert r.status_code == 200 and r.json()["released_leases"] == 0
    assert api.get(f"{LOCKS}/{held['id']}", headers=b).json()["state"] == "active"


def test_while_halted_every_way_of_ending_a_lease_goes_through_and_nothing_else(
        api: Api, clock: ManualClock) -> None:
    a, b = api.token(A), api.token(B)
    ids = [api.post(LOCKS, json={"project_key": "p", "resource": r, "ttl_hours": 0}, headers=a).json()["id"]
           for r in ("one", "two", "three", "four")]
    b_lease = api.post(LOCKS, json={"project_key": "p", "resource": "b1"}, headers=b).json()
    api.token("C/claude-main")
    c_lease = api.post(LOCKS, json={"project_key": "p", "resource": "c1", "ttl_hours": 0},
                       headers=api.token("C/claude-main")).json()  # a second token of C
    assert api.post("/api/coord/halt", json={"reason": "incident"}, headers=api.admin).status_code == 201

    refused = [api.post(LOCKS, json={"project_key": "p", "resource": "new"}, headers=a),
               api.post(f"{LOCKS}/{ids[0]}/renew", json={}, headers=a),
               api.post("/api/coord/tokens", json={"name": "D/claude-main"}, headers=api.admin)]
    assert [r.status_code for r in refused] == [423, 423, 423]

    assert api.delete(f"{LOCKS}/{ids[0]}", headers=a).json()["state"] == "released"  # the holder's release
    assert api.delete(f"{LOCKS}/{ids[1]}", params={"force": "true"}, headers=api.admin).json()["state"] == "revoked"
    r = api.delete(LOCKS, params={"release_all": "true"}, headers=b)  # release-all of one's own
    assert r.status_code == 200 and r.json()["lease_ids"] == [b_lease["id"]]
    clock.advance(3 * HOUR)  # A idles: a stale takeover only ends a lease, so it goes through too
    assert api.delete(f"{LOCKS}/{ids[2]}", headers=b).json()["state"] == "stale_takeover"
    r = api.delete("/api/coord/tokens/C/claude-main", headers=api.admin)  # revoking a token, in an incident
    assert r.status_code == 200 and (r.json()["revoked"], r.json()["lease_ids"]) == (2, [c_lease["id"]])
    r = api.post("/api/coord/presence/deregister", json={"release_leases": True}, headers=a)
    assert r.status_code == 200 and r.json()["released_leases"] == 1
    assert api.get(LOCKS, headers=api.admin).json() == []


def test_the_halt_exemptions_are_documented_as_declared() -> None:
    from pathlib import Path

    from coordhub.core import halt

    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert halt.exemptions_table() in docs


def test_a_lease_claimed_under_one_spelling_of_a_project_is_seen_under_another(api: Api) -> None:
    """Project keys compare case-insensitively (coordhub.core.projects): the edit hook's and the git guard's
    questions under ``gururmm`` see a lease claimed under ``GuruRMM``, and a claim under ``GURURMM`` conflicts."""
    a, b = api.token(A), api.token(B)
    lease = api.post(LOCKS, json={"project_key": "GuruRMM", "resource": "server/src/"}, headers=a).json()
    assert lease["project_key"] == "gururmm"
    hook = api.get(f"{LOCKS}/conflicts", params={"project_key": "gururmm", "resource": "server/src/a.rs"}, headers=b)
    assert [x["id"] for x in hook.json()["leases"]] == [lease["id"]]
    guard = api.post(f"{LOCKS}/conflicts", json={"project_key": "gururmm", "resources": ["server/src/a.rs"]},
                     headers=b)
    assert [x["id"] for x in guard.json()["leases"]] == [lease["id"]]
    r = api.post(LOCKS, json={"project_key": "GURURMM", "resource": "server/src/a.rs"}, headers=b)
    assert r.status_code == 409 and r.json()["error"]["code"] == "lease_conflict"
