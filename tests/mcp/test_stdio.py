"""``coord mcp``: the stdio server as Claude Code launches it, a real subprocess against a real hub."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from coordhub.mcp.server import PROFILES
from tests.client.test_wire import Canned, json_answer
from tests.conftest import LiveHub, free_port
from tests.mcp.conftest import MODES, error, ok

pytestmark = pytest.mark.anyio

COORD = [sys.executable, "-m", "coordhub"]
A, B = "HOST-A/claude-main", "HOST-B/claude-main"


@asynccontextmanager
async def stdio(tmp_path: Path, url: str, token: str | None, *args: str, mode: str = "legacy",
                session: str | None = None, cwd: Path | None = None) -> AsyncIterator[Client]:
    """``coord mcp`` as a child process (in ``cwd``, default the home), with a clean home (no identity.json,
    no local admin.token)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"COORD_URL": url, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "PYTHONUNBUFFERED": "1"}
    env.update({"COORD_TOKEN": token} if token else {})
    env.update({"COORD_SESSION": session} if session else {})
    params = StdioServerParameters(command=COORD[0], args=[*COORD[1:], "mcp", *args], env=env, cwd=str(cwd or home))
    async with Client(params, mode=mode) as c:
        yield c


@pytest.mark.parametrize("mode", MODES)
async def test_two_agents_over_stdio(live_hub: LiveHub, tmp_path: Path, mode: str) -> None:
    async with stdio(tmp_path, live_hub.url, live_hub.token(A), mode=mode) as a, \
            stdio(tmp_path, live_hub.url, live_hub.token(B), mode=mode) as b:
        assert len((await a.list_tools()).tools) == len(PROFILES["default"])
        sent = ok(await a.call_tool("send_message", {"to": B, "subject": "from stdio", "requires_ack": True}))
        assert sent["from_session"] == A  # the token's session, whatever the arguments say
        box = ok(await b.call_tool("inbox", {}))
        assert [(m["id"], m["from_session"]) for m in box["messages"]] == [(sent["id"], A)]
        ok(await b.call_tool("ack_message", {"message_id": sent["id"]}))
        lease = ok(await a.call_tool("claim_lease", {"project_key": "p", "resource": "docs/"}))
        text = error(await b.call_tool("claim_lease", {"project_key": "p", "resource": "docs/api.md"}))
        assert "lease_conflict" in text and A in text and lease["id"] in text
        assert ok(await b.call_tool("status", {}))["session_id"] == B


async def test_seed002_profile_over_stdio(live_hub: LiveHub, tmp_path: Path) -> None:
    async with stdio(tmp_path, live_hub.url, live_hub.token("backend"), "--tools", "seed002") as be, \
            stdio(tmp_path, live_hub.url, live_hub.token("orchestrator"), "--tools", "seed002") as orch:
        assert len((await be.list_tools()).tools) == 8
        ok(await be.call_tool("coord_register_presence", {"role": "backend"}))
        sent = ok(await be.call_tool("coord_publish_message", {"msg_type": "READY_FOR_REVIEW", "subject": "s",
                                                               "description": "d"}))
        assert sent["from"] == "backend" and sent["to"] == "orchestrator"
        got = ok(await orch.call_tool("coord_check_messages", {"pending_only": True}))
        assert [m["id"] for m in got["messages"]] == [sent["message_id"]]
        ok(await orch.call_tool("coord_ack_message", {"message_id": sent["message_id"]}))
        assert ok(await orch.call_tool("coord_get_presence", {}))["instances"]["backend"]["active"] is True
        assert "identity comes from the token" in error(await orch.call_tool("coord_heartbeat", {"role": "backend"}))


async def test_unreachable_hub_and_bad_token_are_clear_errors(live_hub: LiveHub, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with stdio(tmp_path, down, "whatever") as c:
        text = error(await c.call_tool("status", {}))
        assert "hub_unreachable" in text and down in text
        # no connection was made: the write certainly was not (review: it said the write "may have been made")
        text = error(await c.call_tool("send_message", {"to": "x/y", "subject": "s"}))
        assert "hub_unreachable" in text and "the write was not made" in text and "may have been" not in text, text
    async with stdio(tmp_path, live_hub.url, "not-a-token") as c:
        text = error(await c.call_tool("inbox", {}))
        assert f"unauthorized: the hub at {live_hub.url} refused the token this MCP server was given as unknown or " \
               "revoked: " in text, text


async def test_no_auth_hub_over_stdio(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "open", args=("--no-auth",)).start()
    try:
        async with stdio(tmp_path, hub.url, None, session=A, mode="auto") as a:
            assert ok(await a.call_tool("send_message", {"to": B, "subject": "x"}))["from_session"] == A
            assert ok(await a.call_tool("status", {}))["session_id"] == A
    finally:
        hub.stop()


async def test_claim_sends_project_relative_paths_and_directories_with_a_slash(tmp_path: Path) -> None:
    """Issue 7, points 11 and 13: the stdio server runs in the agent's tree, so it names paths as the hooks do."""
    repo = tmp_path / "shop"
    (repo / "src" / "api").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    hub = Canned()
    hub.answer = json_answer(json.dumps({"id": "l-1", "fence": 1, "resource": "x"}).encode())
    try:
        async with stdio(tmp_path, hub.url, "tok", cwd=repo / "src") as c:
            for typed in ("api", str(repo / "src" / "a.py"), "deploy:staging"):
                ok(await c.call_tool("claim_lease", {"project_key": "shop", "resource": typed}))
    finally:
        hub.close()
    bodies = [json.loads(r.partition(b"\r\n\r\n")[2]) for r in hub.requests if b" /api/coord/locks " in r]
    assert [b["resource"] for b in bodies] == ["src/api/", "src/a.py", "deploy:staging"]


async def test_an_id_cannot_steer_a_tool_to_another_endpoint(live_hub: LiveHub, tmp_path: Path) -> None:
    """A lease id of ``../locks?release_all=true`` would have released every lease of the caller (an HTTP
    library resolves the dot segment, and the ``?`` starts a query): the client refuses such a path before
    sending it, and the leases stay (found by a review). The tool refuses it first: a lease id is a UUID."""
    async with stdio(tmp_path, live_hub.url, live_hub.token(A)) as a:
        held = [ok(await a.call_tool("claim_lease", {"project_key": "p", "resource": f"f{i}.py"})) for i in (1, 2)]
        for steer in ("../locks?release_all=true", "..", f"{held[0]['id']}/../../locks", f"{held[0]['id']}#x"):
            text = error(await a.call_tool("release_lease", {"lease_id": steer}))
            assert "invalid: lease_id: " in text and "is not a valid id" in text, text
        mine = ok(await a.call_tool("list_leases", {"project_key": "p"}))
        assert sorted(lease["id"] for lease in mine["leases"]) == sorted(lease["id"] for lease in held)
