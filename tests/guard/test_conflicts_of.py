"""``POST /api/coord/locks/conflicts``, the bounded many-path conflict query the git guard asks (one request per
100 changed paths): which of others' live leases overlap each path, the caller's own apart, and 422 past its
bounds. Here rather than under ``tests/api`` because the guard is its one client."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from coordhub.core.leasequeries import MAX_CONFLICT_RESOURCES
from coordhub.guard import check
from tests.guard.conftest import PROJECT, A, B, Fleet


def ask(fleet: Fleet, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(fleet.hub.url + "/api/coord/locks/conflicts", headers=fleet.a, json=body, timeout=30)


def test_each_resource_gets_the_ids_of_the_others_leases_overlapping_it(fleet: Fleet) -> None:
    src = fleet.claim(fleet.b, "src/", "all of src")
    one = fleet.claim(fleet.b, "src/a.py", "a")
    mine = fleet.claim(fleet.a, "lib/", "mine")
    fleet.claim(fleet.b, "docs/", "elsewhere")
    r = ask(fleet, {"project_key": PROJECT, "resources": ["src/a.py", "./src/b.py", "lib/x.py", "free/y.py"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["id"] for x in body["leases"]] == [src["id"], one["id"]]  # once each, oldest first
    assert {x["session_id"] for x in body["leases"]} == {B}
    assert [x["id"] for x in body["own"]] == [mine["id"]] and body["own"][0]["session_id"] == A
    assert body["overlaps"] == [[src["id"], one["id"]], [src["id"]], [], []]
    assert body["leases_more"] is False and body["own_more"] is False and body["halt"] is None


@pytest.mark.parametrize(("resources", "says"), [
    ([], "resources"),
    ([f"f{i}.py" for i in range(MAX_CONFLICT_RESOURCES + 1)], "resources"),
    (["ok.py", "x" * 1025], "resources"),
    (["ok.py", "a\nb.py"], "resources"),
    (["ok.py", "../outside.py"], "resources[1]"),
])
def test_bounds_and_bad_resources_answer_422(fleet: Fleet, resources: list[str], says: str) -> None:
    r = ask(fleet, {"project_key": PROJECT, "resources": resources})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] and says in r.text, r.text


def test_the_hundred_resources_allowed_are_answered_and_the_route_is_in_the_openapi(fleet: Fleet) -> None:
    resources = [f"gen/f{i}.py" for i in range(MAX_CONFLICT_RESOURCES)]
    held = fleet.claim(fleet.b, resources[-1], "the last one")
    r = ask(fleet, {"project_key": PROJECT, "resources": resources})
    assert r.status_code == 200, r.text
    assert r.json()["overlaps"] == [[]] * (MAX_CONFLICT_RESOURCES - 1) + [[held["id"]]]
    assert check.BATCH == MAX_CONFLICT_RESOURCES  # the guard asks as many as the hub allows
    spec = httpx2.get(fleet.hub.url + "/openapi.json", timeout=10).json()
    assert "post" in spec["paths"]["/api/coord/locks/conflicts"], spec["paths"]["/api/coord/locks/conflicts"]
