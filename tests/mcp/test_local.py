"""A tool's REST request answered from the endpoint itself (``Door.local``) answers as the ASGI way does.

Two hubs run the same script of ``tools/call`` requests, writes and refusals
included: one as built (lean routes answered by ``Door.local``), one with
``Door.local`` declining everything (every tool request the ASGI way,
``Door.inner``, as before it existed). Each answer, ids and times masked,
must be the same, and the local way must have answered most of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from coordhub.api.door import Door
from coordhub.headers import SESSION_HEADER
from coordhub.mcp.http import PATH
from tests.mcp.conftest import McpHub, running_hub
from tests.mcp.test_direct import LEGACY, request

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
UNKNOWN = "7b0c1f4e-8d4e-4a57-9a51-0a9f6f0c2d11"

# (session, tool, arguments, id to keep from the answer under this name); "{name}" in an argument is a kept id
SCRIPT: list[tuple[str, str, dict[str, Any], str | None]] = [
    (A, "send_message", {"to": B, "subject": "hello", "body": "first"}, "m1"),
    (A, "send_message", {"to": "all", "subject": "everyone", "importance": "high"}, None),
    (A, "send_message", {"to": B, "subject": "nul \x00 inside"}, None),  # the REST NUL rule
    (A, "send_message", {"to": B, "subject": "s" * 501}, None),  # the REST bound (422, FastAPI's wording)
    (A, "send_message", {"to": "nobody/known", "subject": "unknown", "requires_ack": True}, None),
    (B, "inbox", {"unread_only": True, "limit": 5}, None),
    (B, "inbox", {"unread_only": False, "limit": 500}, None),
    (B, "read_message", {"message_id": "{m1}"}, None),
    (B, "ack_message", {"message_id": "{m1}"}, None),
    (B, "reply", {"message_id": "{m1}", "body": "back"}, None),
    (A, "read_message", {"message_id": UNKNOWN}, None),
    (A, "claim_lease", {"project_key": "p", "resource": "src/app/", "ttl_hours": 1}, "l1"),
    (B, "claim_lease", {"project_key": "p", "resource": "src/app/x.py"}, None),  # conflict
    (B, "claim_lease", {"project_key": "p", "resource": "bad\x00path"}, None),
    (B, "claim_lease", {"project_key": "", "resource": "docs/"}, None),
    (A, "list_leases", {}, None),
    (A, "list_leases", {"project_key": "p", "resource": "src/app/y.py"}, None),
    (A, "list_leases", {"project_key": "", "session_id": ""}, None),  # empty query values ignored
    (A, "list_leases", {"session_id": "host-b/CLAUDE-main"}, None),
    (A, "list_leases", {"resource": "a\x00b"}, None),
    (A, "check_fence", {"fence": 1, "resource": "src/app/", "project_key": "p"}, None),
    (A, "check_fence", {"fence": 99, "resource": "src/app/", "project_key": "p"}, None),
    (A, "renew_lease", {"lease_id": "{l1}", "ttl_hours": 3}, None),
    (B, "renew_lease", {"lease_id": "{l1}"}, None),  # not the holder
    (B, "release_lease", {"lease_id": "{l1}"}, None),
    (A, "release_lease", {"lease_id": "not-a-uuid"}, None),
    (A, "release_lease", {"lease_id": "{l1}"}, None),
    (A, "release_lease", {"lease_id": "{l1}"}, None),  # already released
    (A, "add_todo", {"text": "write the docs", "project_key": "p"}, "t1"),
    (B, "list_todos", {"project_key": "p"}, None),
    (B, "complete_todo", {"todo_id": "{t1}"}, None),
    (A, "set_component", {"project_key": "p", "component": "api", "state": "built"}, None),
    (A, "list_components", {"project_key": "p"}, None),
    (A, "presence", {}, None),
    (B, "status", {"project_key": "p"}, None),
]


def masked(value: Any) -> Any:
    """``value`` with ids, times and countdowns (``*_seconds``, read off the clock) masked."""
    if isinstance(value, dict):
        return {k: "<seconds>" if k.endswith("_seconds") and isinstance(v, float) else masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        if value[:1] in "{[":  # a text block: the answer as JSON
            try:
                return masked(json.loads(value))
            except ValueError:
                pass
        return TIME.sub("<time>", UUID.sub("<uuid>", value))
    return value


async def run(hub: McpHub, no_auth: bool) -> list[Any]:
    if no_auth:  # who calls is named by X-Coord-Session
        identity = {who: {SESSION_HEADER: who} for who in (A, B)}
    else:
        identity = {who: {"Authorization": f"Bearer {await hub.token(who)}"} for who in (A, B)}
    async with hub.http(identity[A]) as h:  # the app has served a request: its Door is known
        assert (await h.get("/api/coord/whoami")).status_code == 200
    kept: dict[str, str] = {}
    answers = []
    for who, tool, arguments, keep in SCRIPT:
        given = {k: v.format(**kept) if isinstance(v, str) and "{" in v else v for k, v in arguments.items()}
        headers, body = request(tool, given, LEGACY)
        async with hub.http({**headers, **identity[who]}) as h:
            answer = (await h.post(PATH, content=body)).json()
        if keep is not None:
            kept[keep] = answer["result"]["structuredContent"]["id"]
        answers.append(masked(answer))
    return answers


@pytest.mark.parametrize("no_auth", [False, True], ids=["tokens", "no-auth"])
async def test_the_local_way_answers_every_tool_as_the_asgi_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 no_auth: bool) -> None:
    """The local way takes the query as pairs and the caller the ``/mcp`` request resolved (a token's actor, or
    the ``X-Coord-Session`` of a no-auth hub); the ASGI way parses the one and resolves the other again."""
    taken: list[str] = []
    door_local = Door.local

    async def counted(self: Door, scope: dict[str, Any], body: bytes, **given: Any) -> Any:
        answer = await door_local(self, scope, body, **given)
        taken.append("local" if answer is not None else "declined")
        return answer

    async def declined(self: Door, scope: dict[str, Any], body: bytes, **given: Any) -> None:
        return None

    monkeypatch.setattr(Door, "local", counted)
    (tmp_path / "local").mkdir()
    (tmp_path / "asgi").mkdir()
    async with running_hub(tmp_path / "local", no_auth) as hub:
        local = await run(hub, no_auth)
        local_counts = hub.app.state.hot_routes
    monkeypatch.setattr(Door, "local", declined)
    async with running_hub(tmp_path / "asgi", no_auth) as hub:
        asgi = await run(hub, no_auth)
        asgi_counts = hub.app.state.hot_routes
    for step, (got, want) in enumerate(zip(local, asgi, strict=True)):
        assert got == want, f"step {step}: {SCRIPT[step][:3]}"
    # Each request counted once, whichever way it went (served by a lean route, or passed on to FastAPI).
    assert local_counts == asgi_counts and local_counts.passed_on > 0, (local_counts, asgi_counts)
    # Both branches ran: most requests answered locally, the refusals (and FastAPI's wordings) declined.
    assert taken.count("local") >= 25 and taken.count("declined") >= 4, taken


async def test_a_tool_call_is_counted_once_in_the_metrics(tmp_path: Path) -> None:
    """``coord_http_request_seconds`` counts the ``/mcp`` request of a tool call, not the REST request the tool
    makes inside the hub, whichever way that goes (a lean route's answer taken locally, or a refusal the ASGI way
    words)."""
    from prometheus_client.parser import text_string_to_metric_families

    def counts(text: str) -> dict[tuple[str, str, str], float]:
        return {(s.labels["route"], s.labels["method"], s.labels["status"]): s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if s.name == "coord_http_request_seconds_count"}

    async with running_hub(tmp_path) as hub:
        token = await hub.token(A)
        calls = [("list_leases", {"project_key": "p"}), ("claim_lease", {"project_key": "p", "resource": "a.py"}),
                 ("send_message", {"to": B, "subject": "nul \x00 inside"})]
        async with hub.http({"Authorization": f"Bearer {hub.admin_token}"}) as h:
            before = counts((await h.get("/metrics")).text)
        for tool, arguments in calls:
            headers, body = request(tool, arguments, LEGACY)
            async with hub.http({**headers, "Authorization": f"Bearer {token}"}) as h:
                assert (await h.post(PATH, content=body)).status_code == 200
        async with hub.http({"Authorization": f"Bearer {hub.admin_token}"}) as h:
            after = counts((await h.get("/metrics")).text)
    grew = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert grew == {(PATH, "POST", "2xx"): 3, ("/metrics", "GET", "2xx"): 1}, grew
