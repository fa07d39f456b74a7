"""The rate limit charges a request by its overlap work, not one request each (security review, 2026-12-06).

A claim or conflict query of a glob against many held leases may spend the whole overlap budget of a request
(``REQUEST_BUDGET``, 100,000 steps: 0.15–0.25 s of CPU), and the limit counted it as one request like a literal
claim: one token at its full request rate could keep the hub's CPUs busy. Each whole 10,000 steps past the first
10,000 now cost one request more, after the fact (:meth:`coordhub.api.auth.Caller.charge_work`): a request that
spends the whole budget costs 10, a literal claim spends none and costs 1. Over both backends, in-process HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.core import automata, leases, paths, tokens
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.server import SYSTEM

BURST = 40
RATE = 0.01  # requests/s refilled: none to speak of while a test runs
PROJECT = "bombs"
HOLDERS = 3
HELD_EACH = 100
# A long literal path costs a glob's NFA one step per state and edge per character: 300 of them take a claim of
# ``**/*[#]`` past the budget.
DEEP = "/".join(["deeper"] * 25)
BOMB = "**/*[" + "#" * 997 + "]"  # as tests/abuse/test_class_bombs.py


@pytest.fixture
def limited(hub: Hub) -> Iterator[tuple[TestClient, Callable[[str], dict[str, str]]]]:
    """An app limited to bursts of :data:`BURST` requests per token (hardly refilled), with 300 long literal
    leases held in :data:`PROJECT`; and a function minting a token's headers (straight from the core: free)."""
    for h in range(HOLDERS):
        holder = Actor(f"HOLD/h{h}")
        for i in range(HELD_EACH):
            hub.mutate_sync(holder, lambda tx, now, h=h, i=i, a=holder: leases.claim(
                tx, a, project_key=PROJECT, resource=f"src/m{h}_{i}/{DEEP}/file_{h}_{i}.py", description=None,
                ttl_hours=1.0, now=now))

    def mint(session: str) -> dict[str, str]:
        made = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.create(tx, SYSTEM, session, False, now)).body
        return {"Authorization": f"Bearer {made['token']}"}

    app = create_app(hub, sweep_seconds=0, rate_limit=RATE, rate_burst=BURST)
    with TestClient(app) as client:
        yield client, mint


def _until_refused(send: Callable[[int], Any], most: int = BURST + 5) -> tuple[int, list[int]]:
    """How many of ``send(0)``, ``send(1)``, … are answered before the first 429, and the codes answered."""
    codes = []
    for i in range(most):
        code = send(i).status_code
        if code == 429:
            return i, codes
        codes.append(code)
    return most, codes


def test_the_bomb_spends_the_whole_budget() -> None:
    """The shape the tests below send takes a claim's checks past ``REQUEST_BUDGET`` (else they prove nothing)."""
    meter = automata.Meter()
    with meter:
        budget = paths.Budget()
        for h in range(HOLDERS):
            for i in range(HELD_EACH):
                paths.overlaps(BOMB, f"src/m{h}_{i}/{DEEP}/file_{h}_{i}.py", budget=budget)
    assert budget.exhausted and meter.steps > automata.REQUEST_BUDGET


def test_literal_claims_cost_one_request_each(limited: tuple[TestClient, Callable[[str], dict[str, str]]]) -> None:
    client, mint = limited
    me = mint("CHEAP/c")
    answered, codes = _until_refused(lambda i: client.post("/api/coord/locks", headers=me, json={
        "project_key": PROJECT, "resource": f"src/m0_{i}/{DEEP}/other_{i}.py"}))
    assert answered == BURST and set(codes) == {201}, codes


def test_budget_exhausting_claims_are_refused_after_a_tenth(
        limited: tuple[TestClient, Callable[[str], dict[str, str]]]) -> None:
    """Each claim of the bomb spends the whole budget (answered 409, "undecided"), and costs 10 requests: the
    burst of 40 lets 4 through (before the charge, all 40)."""
    client, mint = limited
    me = mint("BOMB/b")
    answered, codes = _until_refused(lambda i: client.post("/api/coord/locks", headers=me, json={
        "project_key": PROJECT, "resource": f"{BOMB}{i}"}))
    assert answered == BURST // 10 and set(codes) == {409}, codes
    # a cheap token is not held up by the other's debt
    other = mint("CHEAP/d")
    assert client.post("/api/coord/locks", headers=other, json={"project_key": PROJECT,
                                                                "resource": "docs/a.md"}).status_code == 201


@pytest.mark.parametrize("route", ["GET /locks/conflicts", "POST /locks/conflicts", "GET /locks?resource="])
def test_budget_exhausting_conflict_queries_are_refused_after_a_tenth(
        limited: tuple[TestClient, Callable[[str], dict[str, str]]], route: str) -> None:
    client, mint = limited
    me = mint("BOMB/q")

    def send(i: int) -> Any:
        if route == "POST /locks/conflicts":
            return client.post("/api/coord/locks/conflicts", headers=me,
                               json={"project_key": PROJECT, "resources": [BOMB]})
        path = "/api/coord/locks/conflicts" if route == "GET /locks/conflicts" else "/api/coord/locks"
        return client.get(path, headers=me, params={"project_key": PROJECT, "resource": BOMB})

    answered, codes = _until_refused(send)
    assert answered == BURST // 10 and set(codes) == {200}, codes
    r = send(0)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text


def test_mcp_tool_claims_are_charged_the_same(limited: tuple[TestClient, Callable[[str], dict[str, str]]]) -> None:
    """``claim_lease`` over ``/mcp``: the ``/mcp`` request counts one, its inner claim's work the rest."""
    client, mint = limited
    me = {**mint("BOMB/m"), "Accept": "application/json, text/event-stream", "Content-Type": "application/json",
          "MCP-Protocol-Version": "2025-06-18"}

    def send(i: int) -> Any:
        return client.post("/mcp", headers=me, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "claim_lease", "arguments": {"project_key": PROJECT, "resource": f"{BOMB}{i}"}}})

    answered, codes = _until_refused(send)
    assert answered == BURST // 10 and set(codes) == {200}, codes
