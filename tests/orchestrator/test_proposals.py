"""Proposals of the planning brain in the hub (issue 12 point 7), on every backend: stored all or nothing,
approved exactly once through the path of ``coord assign`` (with its depends_on refusal), splits recorded
idempotently, and only people's sessions or admins direct them."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.core import quota
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get

P = f"{ORCH}/proposals"


def _assign(issue: int, **kw: Any) -> dict[str, Any]:
    return {"kind": "assign", "repo": "api", "issue": issue, "machine": "laptop", "model": "haiku",
            "briefing": f"do #{issue}", "files_likely": ["src/x.py"], "rationale": "small", **kw}


def _split(issue: int) -> dict[str, Any]:
    return {"kind": "split", "repo": "api", "issue": issue, "title": "Big one", "rationale": "too big",
            "children": [{"title": "part one", "body": "first"}, {"title": "part two", "body": "second",
                                                                   "labels": ["sub-task"]}]}


def _store(api: Api, headers: dict[str, str], proposals: list[dict[str, Any]], expect: int = 201,
           **body: Any) -> dict[str, Any]:
    r = api.post(P, headers=headers, json={"proposals": proposals, **body})
    assert r.status_code == expect, r.text
    return dict(r.json())


def _approve(api: Api, headers: dict[str, str], ids: list[int], expect: int = 200, **body: Any) -> dict[str, Any]:
    r = api.post(f"{P}/approve", headers=headers, json={"ids": ids, **body})
    assert r.status_code == expect, r.text
    return dict(r.json())


def test_a_proposed_model_is_one_the_config_names_and_a_label_rule_wins(orch: Api, user: dict[str, str]) -> None:
    """The planner reads issue bodies anyone may write: a proposal may not pick a model coordinator.yml does not
    name (the ladder, the default, the label rules), and a label rule that applies wins over the proposed model,
    as the planner's prompt says."""
    bad = _store(orch, user, [_assign(1, model="claude-opus-4-1[1m]")], expect=422)
    assert "proposals[0].model" in bad["error"]["message"], bad
    plan = _store(orch, user, [_assign(2, model="opus", labels=["documentation"]), _assign(3, model="opus")])
    first, second = plan["proposals"]
    done = _approve(orch, user, [first["id"], second["id"]])["results"]
    a, b = done[0]["assignment"], done[1]["assignment"]
    assert (a["model"], a["model_source"]) == ("haiku", "label:documentation")
    assert (b["model"], b["model_source"]) == ("opus", "proposal")


def test_a_plan_is_stored_all_or_nothing(orch: Api, user: dict[str, str]) -> None:
    bad = _store(orch, user, [_assign(1), _assign(2, machine="nowhere")], expect=422)
    assert "proposals[1]" in bad["error"]["message"] and "nowhere" in bad["error"]["message"]
    assert orch.get(P, headers=user).json() == []
    dry = _store(orch, user, [_assign(1)], expect=200, dry_run=True)
    assert dry["dry_run"] and dry["proposals"][0]["id"] is None and orch.get(P, headers=user).json() == []
    plan = _store(orch, user, [_assign(1), _split(2)])
    ids = [p["id"] for p in plan["proposals"]]
    assert [p["state"] for p in plan["proposals"]] == ["pending", "pending"] and ids[1] == ids[0] + 1
    again = _store(orch, user, [_assign(1, model="opus")])  # the same issue proposed again: the old one goes
    assert again["superseded"] == [ids[0]]
    states = {p["id"]: p["state"] for p in orch.get(P, headers=user).json()}
    assert states == {ids[0]: "superseded", ids[1]: "pending", again["proposals"][0]["id"]: "pending"}
    assert _approve(orch, user, [ids[0]], expect=409)["error"]["code"] == "proposal_closed"
    too_few = _store(orch, user, [{**_split(3), "children": [{"title": "only", "body": ""}]}], expect=422)
    assert "children" in too_few["error"]["message"]
    # files a worker's system prompt could not name in one argument are refused here, not at approval
    files = [f"src/{i:03d}/" + "x" * 990 for i in range(200)]
    too_many = _store(orch, user, [_assign(4, files_likely=files)], expect=422)["error"]
    assert too_many["field"] == "proposals[0].files_likely" and "the limit is 16384" in too_many["message"]


def test_approve_queues_through_assign_exactly_once(orch: Api, user: dict[str, str], laptop: Host) -> None:
    plan = _store(orch, user, [_assign(5), _assign(6, machine=None, model=None, labels=["documentation"])])
    first, second = (p["id"] for p in plan["proposals"])
    dry = _approve(orch, user, [first, second], dry_run=True)
    assert dry["dry_run"] and [r["assignment"]["dry_run"] for r in dry["results"]] == [True, True]
    assert orch.get(f"{ORCH}/assignments", headers=user).json() == []
    assert orch.get(f"{P}/{first}", headers=user).json()["state"] == "pending"
    out = _approve(orch, user, [first, second], auto_pull=True)
    a, b = (r["assignment"] for r in out["results"])
    assert [r["already"] for r in out["results"]] == [False, False]
    assert (a["state"], a["machine"], a["model"], a["model_source"]) == ("queued", "laptop", "haiku", "proposal")
    assert a["briefing"] == "do #5" and a["files_likely"] == ["src/x.py"] and a["freshness"]["mode"] == "pull"
    assert (b["machine"], b["model"], b["model_source"]) == (None, "haiku", "label:documentation")
    again = _approve(orch, user, [first])
    assert again["results"][0]["already"] and again["results"][0]["assignment"]["id"] == a["id"]
    assert len(orch.get(f"{ORCH}/assignments", headers=user, params={"repo": "api"}).json()) == 2
    p = orch.get(f"{P}/{first}", headers=user).json()
    assert (p["state"], p["assignment_id"], p["decided_by"]) == ("approved", a["id"], "desk/claude-main")
    job = laptop.next()  # the host gets the approved proposal as any assignment, with the freshness mode
    assert job is not None and job["id"] == a["id"] and job["freshness"]["auto_pull"] is True
    assert job["freshness"]["skip"] is False


def test_approve_is_refused_while_upstream_has_work(api: Api) -> None:
    cfg = config()
    cfg["repos"][0]["depends_on"] = ["lib"]  # api depends on lib
    apply_config(api, cfg)
    user = api.token("desk/claude-main")
    upstream = assign(api, user, repo="lib", issue=9)
    host = Host(api, "laptop", api.token("laptop/agent"))
    host.register()
    assert host.next()["id"] == upstream["id"]  # lib has work in flight
    pid = _store(api, user, [_assign(7)])["proposals"][0]["id"]
    refused = _approve(api, user, [pid], expect=409)
    assert refused["error"]["code"] == "upstream_in_flight"
    assert api.get(f"{P}/{pid}", headers=user).json()["state"] == "pending"
    assert [x["issue"] for x in api.get(f"{ORCH}/assignments", headers=user).json()] == [9]
    host.report(host.jobs[upstream["id"]], "running")
    host.report(host.jobs[upstream["id"]], "failed", reason="boom")
    ok = _approve(api, user, [pid], skip_freshness=True)  # upstream idle again: it goes through
    queued = ok["results"][0]["assignment"]
    assert queued["freshness"]["mode"] == "skip" and ok["results"][0]["depends_on"] == []
    assert get(api, queued["id"])["state"] == "queued"


def test_split_children_are_recorded_once(orch: Api, user: dict[str, str]) -> None:
    plan = _store(orch, user, [_split(2), _assign(3)])
    sid, aid = (p["id"] for p in plan["proposals"])
    assert _approve(orch, user, [sid], expect=422)["error"]["message"].startswith(f"proposal {sid} is a split")
    r = orch.post(f"{P}/{aid}/split", headers=user, json={"created": []})
    assert r.status_code == 422
    r = orch.post(f"{P}/{sid}/split", headers=user, json={"created": [{"index": 0, "number": 11}], "done": True})
    assert r.status_code == 422 and "[1]" in r.json()["error"]["message"]  # child 1 has no issue yet
    for _ in range(2):  # a retry records nothing new
        r = orch.post(f"{P}/{sid}/split", headers=user, json={"created": [{"index": 0, "number": 11}]})
        assert r.status_code == 200 and r.json()["created"] == {"0": {"number": 11, "url": None}}
    r = orch.post(f"{P}/{sid}/split", headers=user, json={"created": [{"index": 0, "number": 12}]})
    assert r.status_code == 409  # a second issue for one child is refused
    r = orch.post(f"{P}/{sid}/split", headers=user, json={"created": [{"index": 1, "number": 13}], "done": True})
    assert r.status_code == 200 and r.json()["state"] == "split"
    r = orch.post(f"{P}/{sid}/split", headers=user, json={"done": True})
    assert r.status_code == 200 and r.json()["state"] == "split"


def test_workers_and_hosts_may_not_plan_or_approve(orch: Api, user: dict[str, str], laptop: Host) -> None:
    pid = _store(orch, user, [_assign(4)])["proposals"][0]["id"]
    for who in (laptop.headers, orch.token("laptop/worker-0123abcd")):
        assert _store(orch, who, [_assign(8)], expect=403)["error"]["code"] == "forbidden"
        assert _approve(orch, who, [pid], expect=403)["error"]["code"] == "forbidden"
    assert orch.get(f"{P}/{pid}", headers=user).json()["state"] == "pending"


def test_a_list_of_large_proposals_is_paged_by_size_and_its_cursor_reads_each_once(
        orch: Api, user: dict[str, str]) -> None:
    """A split proposal holds up to 20 sub-issue bodies of 64 KiB: ``?limit=1000`` of them answered about a gigabyte
    in one answer, built on the event loop (review DoS: 300 such answered 270 MB in 4.3 s, /health stalled
    3.5 s). An answer holds about 4 MiB of their text (at least one) and names the cursor of the rest."""
    body = "x" * 60_000
    big = {**_split(0), "children": [{"title": f"part {i}", "body": body} for i in range(15)]}  # ~0.9 MB a row
    stored = [_store(orch, user, [{**big, "issue": 100 + i}])["proposals"][0]["id"] for i in range(8)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        r = orch.get(P, headers=user, params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        assert len(r.content) < 6 * 2**20, len(r.content)  # about 4 MiB and one row at most
        page = r.json()
        assert page, "a page is never empty"
        seen += [p["id"] for p in page]
        pages += 1
        cursor = r.headers.get("Coord-Next-Cursor")
        if cursor is None:
            break
    assert seen == sorted(stored, reverse=True) and pages > 1
    assert orch.get(P, headers=user, params={"cursor": "nonsense"}).status_code == 422


def test_stored_proposals_count_against_the_daily_write_quota(orch: Api, user: dict[str, str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Proposals are never pruned and one request may store ~1 MiB of them: without a bound one session could store
    that much a request within its rate limit until the disk filled (review DoS). They count as todos do; a refused
    plan stores none of its proposals, a dry run counts nothing, an admin is not counted."""
    monkeypatch.setattr(quota, "MAX_BYTES_PER_DAY", 300_000)
    body = "x" * 60_000
    big = {**_split(0), "children": [{"title": f"part {i}", "body": body} for i in range(2)]}  # ~120 KB
    _store(orch, user, [{**big, "issue": 1}, {**big, "issue": 2}], expect=200, dry_run=True)
    _store(orch, user, [{**big, "issue": 1}, {**big, "issue": 2}])
    err = _store(orch, user, [{**_split(3)}, {**big, "issue": 4}], expect=429)["error"]
    assert (err["code"], err["bound"]) == ("write_quota", "bytes_per_day"), err
    assert sorted(p["issue"] for p in orch.get(P, headers=user).json()) == [1, 2]  # the refused plan left nothing
    _store(orch, orch.admin, [{**big, "issue": 4}])
    monkeypatch.setattr(quota, "MAX_WRITES_PER_DAY", 3)
    _store(orch, user, [_split(5)])
    assert _store(orch, user, [_split(6)], expect=429)["error"]["bound"] == "writes_per_day"
