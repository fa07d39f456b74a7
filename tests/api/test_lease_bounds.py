"""Bounds on what leases hold and what their lists answer (review: one token's leases answered 315 MB a
``/status``), over HTTP on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.core import leasequeries, leases
from coordhub.store.postgres import PostgresExecutor
from coordhub.store.sqlite import SQLiteExecutor
from tests.conftest import Api

A = "A/claude-main"
B = "B/claude-main"
LOCKS = "/api/coord/locks"
STATUS = "/api/coord/status"


def test_description_is_bounded_at_4_kib(api: Api) -> None:
    me = api.token(A)
    seed = {"project_key": "gururmm", "resource": "server/src/api/credentials.rs",
            "description": "Adding credential endpoints", "ttl_hours": 2}  # seed 001's example
    assert api.post(LOCKS, json=seed, headers=me).status_code == 201
    ok = api.post(LOCKS, json={"project_key": "p", "resource": "a.py", "description": "x" * 4096}, headers=me)
    assert ok.status_code == 201, ok.text
    r = api.post(LOCKS, json={"project_key": "p", "resource": "b.py", "description": "x" * 4097}, headers=me)
    assert r.status_code == 422, r.text
    assert "4096" in r.text and "description" in r.text
    assert [x["resource"] for x in api.get(LOCKS, params={"project_key": "p"}, headers=me).json()] == ["a.py"]


def test_live_leases_per_session_are_bounded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "MAX_LIVE_PER_SESSION", 5, raising=False)
    a, b = api.token(A), api.token(B)
    for i in range(5):
        r = api.post(LOCKS, json={"project_key": "p", "resource": f"f{i}.py", "ttl_hours": 0}, headers=a)
        assert r.status_code == 201, r.text
    r = api.post(LOCKS, json={"project_key": "q", "resource": "g.py", "ttl_hours": 0}, headers=a)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "lease_limit" and err["limit"] == 5 and "5 live leases" in err["message"]
    # re-claiming one it holds is a renewal, not a new lease; another session is not held back
    assert api.post(LOCKS, json={"project_key": "p", "resource": "f0.py"}, headers=a).json()["renewed"] is True
    assert api.post(LOCKS, json={"project_key": "p", "resource": "h.py"}, headers=b).status_code == 201
    first = api.get(LOCKS, params={"session_id": A}, headers=a).json()[0]
    assert api.delete(f"{LOCKS}/{first['id']}", headers=a).status_code == 200
    assert api.post(LOCKS, json={"project_key": "q", "resource": "g.py"}, headers=a).status_code == 201


def test_lists_of_leases_are_paged(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leasequeries, "PAGE", 3)
    me = api.token(A)
    fences = [api.post(LOCKS, json={"project_key": "p", "resource": f"d/f{i}.py", "description": f"d{i}"},
                       headers=me).json()["fence"] for i in range(7)]
    got: list[int] = []
    params: dict[str, Any] = {"project_key": "p"}
    pages = 0
    while True:
        r = api.get(LOCKS, params=params, headers=me)
        assert r.status_code == 200 and len(r.json()) <= 3, r.text
        got += [x["fence"] for x in r.json()]
        pages += 1
        if "Coord-Next-After-Fence" not in r.headers:
            break
        params["after_fence"] = int(r.headers["Coord-Next-After-Fence"])
    assert got == fences and pages == 3
    # the conflict check pages too, descriptions included
    r = api.get(LOCKS, params={"project_key": "p", "resource": "d/"}, headers=me)
    assert [x["description"] for x in r.json()] == ["d0", "d1", "d2"]
    assert r.headers["Coord-Next-After-Fence"] == str(fences[2])
    status = api.get(STATUS, headers=me).json()
    assert [x["fence"] for x in status["active_locks"]] == fences[:3]
    assert status["active_locks_more"] is True and status["active_locks_next_after_fence"] == fences[2]


def test_lists_of_leases_are_bounded_in_bytes(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leasequeries, "PAGE_BYTES", 10_000)
    me = api.token(A)
    for i in range(6):
        r = api.post(LOCKS, json={"project_key": "p", "resource": f"f{i}.py", "description": "x" * 4000},
                     headers=me)
        assert r.status_code == 201, r.text
    r = api.get(LOCKS, headers=me)
    assert len(r.json()) == 3 and "Coord-Next-After-Fence" in r.headers
    status = api.get(STATUS, headers=me).json()
    assert len(status["active_locks"]) == 3 and status["active_locks_more"] is True
    small = api.get(STATUS, params={"project_key": "none"}, headers=me).json()
    assert small["active_locks"] == [] and small["active_locks_more"] is False


def test_overlap_reads_leave_descriptions_out(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    for cls in (SQLiteExecutor, PostgresExecutor):
        real = cls.parts

        def parts(self: Any, queries: list[tuple[str, tuple[Any, ...]]], order: str, _real: Any = real) -> Any:
            seen.extend(q for q, _ in queries)
            return _real(self, queries, order)

        monkeypatch.setattr(cls, "parts", parts)
    a, b = api.token(A), api.token(B)
    held = api.post(LOCKS, json={"project_key": "p", "resource": "junk/0", "description": "big job"}, headers=a)
    assert held.status_code == 201
    r = api.post(LOCKS, json={"project_key": "p", "resource": "junk/", "description": "mine"}, headers=b)
    assert r.status_code == 409
    err = r.json()["error"]
    assert (err["holder"], err["description"]) == (A, "big job") and "(big job)" in err["message"]
    assert api.post(LOCKS, json={"project_key": "p", "resource": "**/*.md"}, headers=b).status_code == 201
    c = api.get(f"{LOCKS}/conflicts", params={"project_key": "p", "resource": "junk/"}, headers=b).json()
    assert [(x["resource"], x["description"]) for x in c["leases"]] == [("junk/0", "big job")]
    again = api.post(LOCKS, json={"project_key": "p", "resource": "junk/0"}, headers=a).json()
    assert again["renewed"] is True and again["description"] == "big job"
    leases_reads = [q for q in seen if "FROM leases" in q]
    assert leases_reads  # the conflict check reads through parts on both backends
    assert not [q for q in leases_reads if "SELECT *" in q or "description" in q]


def test_conflicts_never_hide_others_leases_behind_own(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # One list cut at PAGE before it was split: the caller's own older leases filled it, and another
    # session's overlapping lease was left out, so ``leases`` said "free" (the edit hook allows on that).
    monkeypatch.setattr(leasequeries, "PAGE", 3)
    a, b = api.token(A), api.token(B)
    for i in range(4):
        assert api.post(LOCKS, json={"project_key": "p", "resource": f"d/f{i}.py"}, headers=a).status_code == 201
    theirs = api.post(LOCKS, json={"project_key": "p", "resource": "d/z.py", "description": "B's"}, headers=b)
    assert theirs.status_code == 201, theirs.text
    c = api.get(f"{LOCKS}/conflicts", params={"project_key": "p", "resource": "d/"}, headers=a).json()
    assert [x["resource"] for x in c["leases"]] == ["d/z.py"] and c["leases_more"] is False
    assert [x["resource"] for x in c["own"]] == ["d/f0.py", "d/f1.py", "d/f2.py"] and c["own_more"] is True
    c = api.get(f"{LOCKS}/conflicts", params={"project_key": "p", "resource": "d/"}, headers=b).json()
    assert len(c["leases"]) == 3 and c["leases_more"] is True
    assert [x["resource"] for x in c["own"]] == ["d/z.py"] and c["own_more"] is False


def test_a_many_resource_conflict_query_is_bounded_in_leases_compared(api: Api,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``POST /locks/conflicts`` takes 100 resources for one request of the rate limit; each directory or glob
    among them compared every lease beneath it, so 100 of ``lib/`` in a project of 20,000 leases held a reader
    thread 40 s (review). Past the first resource, what they bring to compare is bounded; files, the git guard's
    case, bring only the leases at and above them."""
    monkeypatch.setattr(leasequeries, "MAX_CONFLICT_CANDIDATES", 20)
    a, b = api.token(A), api.token(B)
    for i in range(12):
        r = api.post(LOCKS, json={"project_key": "p", "resource": f"lib/f{i}.py", "ttl_hours": 0}, headers=b)
        assert r.status_code == 201, r.text

    def ask(resources: list[str]) -> Any:
        return api.post(LOCKS + "/conflicts", json={"project_key": "p", "resources": resources}, headers=a)

    alone = ask(["lib/"])  # one broad resource: as much as one GET compares
    assert alone.status_code == 200 and len(alone.json()["overlaps"][0]) == 12, alone.text
    assert ask(["lib/", "lib/"]).status_code == 200  # 12 more: within the bound
    r = ask(["lib/", "lib/", "**"])
    assert r.status_code == 422 and r.json()["error"]["limit"] == 20, r.text
    assert "resources[2]" in r.text
    files = ask([f"lib/f{i}.py" for i in range(12)] + [f"lib/new{i}.py" for i in range(88)])
    assert files.status_code == 200, files.text
    assert files.json()["overlaps"][:12] == [[x["id"]] for x in files.json()["leases"]]
