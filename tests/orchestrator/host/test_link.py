"""How the host reads the hub's answers: which errors stop a worker, which are retried, which carry a size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client import CoordClient, Unreachable
from coordhub.client.settings import ClientSettings
from coordhub.orchestrator.link import HubLink, LogGap, Refused, Stale


def link_answering(tmp_path: Path, status: int, body: dict[str, Any], seen: list[httpx2.Request]) -> HubLink:
    settings = ClientSettings(url="http://hub.test:8001", token="host-token", session=None, user=None, machine=None,
                              queue_file=tmp_path / "q.jsonl", timeout=5.0)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(status, json=body)

    link = HubLink(settings, "m1")
    for role in ("main", "report", "heartbeat", "poll"):
        link._clients[role] = CoordClient(settings, transport=httpx2.MockTransport(handler))
    return link


def err(code: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{code}!", **details}, "detail": f"{code}!"}


def test_a_stale_attempt_stops_the_worker(tmp_path: Path) -> None:
    seen: list[httpx2.Request] = []
    link = link_answering(tmp_path, 409, err("stale_attempt", current=2), seen)
    with pytest.raises(Stale):
        link.report("a1b2c3d4", {"attempt": 1, "state": "done", "reason": "x"})
    assert seen[0].url.path == "/api/coord/orchestrator/assignments/a1b2c3d4/report"
    assert seen[0].headers["authorization"] == "Bearer host-token"


def test_a_log_gap_says_where_the_hub_log_ends(tmp_path: Path) -> None:
    link = link_answering(tmp_path, 409, err("log_gap", size=1234), [])
    with pytest.raises(LogGap) as gap:
        link.log("a1b2c3d4", 1, 1 << 53, "")
    assert gap.value.size == 1234


def test_the_rate_limit_is_retried_never_dropped(tmp_path: Path) -> None:
    """A final report answered 429 must be sent again, not given up like a refusal."""
    link = link_answering(tmp_path, 429, err("rate_limited"), [])
    with pytest.raises(Unreachable, match="rate limited"):
        link.report("a1b2c3d4", {"attempt": 1, "state": "done", "reason": "x"})


def test_other_refusals_name_their_code(tmp_path: Path) -> None:
    link = link_answering(tmp_path, 422, err("invalid"), [])
    with pytest.raises(Refused) as refused:
        link.register([], {}, 1, "0.1", [{"action": "x"}], [])
    assert (refused.value.status, refused.value.code) == (422, "invalid") and not isinstance(refused.value, Stale)


def test_register_sends_recovery_notes_only_when_there_are_some(tmp_path: Path) -> None:
    seen: list[httpx2.Request] = []
    link = link_answering(tmp_path, 200, {"machine": "m1", "host_incarnation": 3}, seen)
    link.register(["python"], {"app": "/src/app"}, 2, "0.1", [], [])
    link.register(["python"], {"app": "/src/app"}, 2, "0.1", [{"action": "killed"}], ["repo x: missing"])
    first, second = (json.loads(r.content) for r in seen)
    assert first == {"machine": "m1", "capabilities": ["python"], "repos": {"app": "/src/app"}, "slots": 2,
                     "agent_version": "0.1"}
    assert second["recovered"] == [{"action": "killed"}] and second["problems"] == ["repo x: missing"]
