"""The storage quota: what one session may write per UTC day into records retention never prunes (review: one
token could fill the disk at ~46 MB/s within its rate limit); over HTTP on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.core import quota
from tests.conftest import Api

A, B = "A/claude-main", "B/claude-main"


def _writes(api: Api, me: dict[str, str], wf: str) -> list[tuple[str, str, dict[str, Any]]]:
    """One write of each kind the quota counts: (method, path, body)."""
    return [("POST", "/api/coord/todos", {"text": "t"}),
            ("POST", "/api/coord/workflows", {"project_key": "p", "name": "w"}),
            ("POST", "/api/coord/work-items", {"workflow_id": wf, "title": "i"}),
            ("PUT", "/api/coord/components", {"project_key": "p", "component": "api", "state": "built"})]


def test_writes_per_day_are_bounded_per_session(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = api.token(A), api.token(B)
    wf = api.post("/api/coord/workflows", json={"project_key": "p", "name": "w"}, headers=b).json()["id"]
    monkeypatch.setattr(quota, "MAX_WRITES_PER_DAY", 4)
    for method, path, body in _writes(api, a, wf):  # four writes of four kinds: the day's bound
        r = api.request(method, path, json=body, headers=a)
        assert r.status_code in (200, 201), r.text
    for method, path, body in _writes(api, a, wf):
        r = api.request(method, path, json=body, headers=a)
        assert r.status_code == 429, (path, r.text)
        err = r.json()["error"]
        assert (err["code"], err["bound"], err["limit"]) == ("write_quota", "writes_per_day", 4)
        assert 0 < int(r.headers["Retry-After"]) <= 86_400
    assert len(api.get("/api/coord/todos", headers=a).json()) == 1  # the refused todo left nothing behind
    assert api.post("/api/coord/todos", json={"text": "t"}, headers=b).status_code == 201  # another session
    assert api.post("/api/coord/todos", json={"text": "t"}, headers=api.admin).status_code == 201  # an admin
    api.hub.clock.advance(86_400)  # a new UTC day
    assert api.post("/api/coord/todos", json={"text": "t"}, headers=a).status_code == 201


def test_bytes_per_day_are_bounded_per_session(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "MAX_BYTES_PER_DAY", 100_000)
    a = api.token(A)
    r = api.post("/api/coord/workflows", json={"project_key": "p", "name": "w", "description": "é" * 40_000},
                 headers=a)  # 80,000 bytes of UTF-8, not 40,000 characters
    assert r.status_code == 201, r.text
    r = api.put("/api/coord/components", json={"project_key": "p", "component": "api", "state": "built",
                                               "notes": "n" * 20_000}, headers=a)
    assert r.status_code == 429 and r.json()["error"]["bound"] == "bytes_per_day", r.text
    assert api.get("/api/coord/components", headers=a).json() == []
    r = api.put("/api/coord/components", json={"project_key": "p", "component": "api", "state": "built",
                                               "notes": "n" * 10_000}, headers=a)
    assert r.status_code == 200, r.text
