"""``/mcp`` on the hub: the bearer gate, origin and host checks, profiles, and real HTTP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import LiveHub
from tests.mcp.conftest import MODES, McpHub, error, ok, open_hub

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
JSONRPC = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-06-18"}


def tools_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A raw JSON-RPC ``tools/call`` request body."""
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Basic abc", "Bearer "])
async def test_missing_or_wrong_token_is_401_and_no_tool_runs(mcp_hub: McpHub, auth: str | None) -> None:
    headers = {**JSONRPC, **({"Authorization": auth} if auth is not None else {})}
    async with mcp_hub.http(headers) as h:
        r = await h.post("/mcp", json=tools_call("send_message", {"to": B, "subject": "sneaky"}))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"  # plain: no OAuth resource metadata to discover
    assert r.json()["error"]["code"] == "unauthorized"
    box = await mcp_hub.rest("GET", "/api/coord/messages", await mcp_hub.token(B), params={"unread_only": "true"})
    assert box == []


async def test_sdk_client_without_token_fails_to_connect(mcp_hub: McpHub) -> None:
    with pytest.raises(Exception, match="unhandled errors|error response"):
        async with mcp_hub.client(None) as c:
            await c.list_tools()


async def test_a_revoked_token_is_refused(mcp_hub: McpHub) -> None:
    token = await mcp_hub.token(A)
    await mcp_hub.rest("DELETE", f"/api/coord/tokens/{A}")
    async with mcp_hub.http({**JSONRPC, "Authorization": f"Bearer {token}"}) as h:
        r = await h.post("/mcp", json=tools_call("status", {}))
    assert r.status_code == 401


async def test_foreign_origin_is_403_and_same_origin_passes(mcp_hub: McpHub) -> None:
    headers = {**JSONRPC, "Authorization": f"Bearer {await mcp_hub.token(A)}"}
    async with mcp_hub.http({**headers, "Origin": "http://evil.example"}) as h:
        r = await h.post("/mcp", json=tools_call("status", {}))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    async with mcp_hub.client(A, headers={"Origin": "http://127.0.0.1:8001"}) as c:
        assert ok(await c.call_tool("status", {}))["session_id"] == A


async def test_any_host_name_works_with_auth(mcp_hub: McpHub) -> None:
    """LAN names and reverse proxies: the token, not the Host header, is the defence."""
    async with mcp_hub.client(A, headers={"Host": "coord.lan:8001"}) as c:
        assert ok(await c.call_tool("status", {}))["session_id"] == A


async def test_unknown_profile_is_422(mcp_hub: McpHub) -> None:
    async with mcp_hub.http({**JSONRPC, "Authorization": f"Bearer {await mcp_hub.token(A)}"}) as h:
        r = await h.post("/mcp?tools=everything", json=tools_call("status", {}))
    assert r.status_code == 422 and "tools='everything'" in r.json()["error"]["message"]


async def test_rest_and_openapi_are_unaffected(mcp_hub: McpHub) -> None:
    async with mcp_hub.http() as h:
        assert (await h.get("/health")).status_code == 200
        assert (await h.get("/api/coord/nope")).json()["error"]["code"] == "not_found"
        spec = (await h.get("/openapi.json")).json()
    assert "/mcp" not in spec["paths"]


async def test_no_auth_hub_takes_the_session_header_and_checks_host(tmp_path: Path, anyio_backend: str) -> None:
    app, admin, store = open_hub(tmp_path, no_auth=True)
    try:
        async with app.router.lifespan_context(app):
            hub = McpHub(app, admin)
            async with hub.client(None, headers={"X-Coord-Session": A}) as a:
                sent = ok(await a.call_tool("send_message", {"to": B, "subject": "open"}))
                assert sent["from_session"] == A
            async with hub.client(None) as anon:
                assert "X-Coord-Session" in error(await anon.call_tool("send_message", {"to": B, "subject": "x"}))
            async with hub.http({**JSONRPC, "X-Coord-Session": A, "Host": "evil.example"}) as h:
                r = await h.post("/mcp", json=tools_call("status", {}))
            assert r.status_code == 421  # DNS-rebinding protection: only loopback names without auth
    finally:
        store.close()


@pytest.mark.parametrize("mode", MODES)
async def test_over_a_real_port(served_hub: McpHub, mode: str) -> None:
    async with served_hub.client(A, mode) as a, served_hub.client(B, mode) as b:
        sent = ok(await a.call_tool("send_message", {"to": B, "subject": "over tcp"}))
        assert sent["from_session"] == A
        assert [m["id"] for m in ok(await b.call_tool("inbox", {}))["messages"]] == [sent["id"]]
        ok(await b.call_tool("ack_message", {"message_id": sent["id"]}))


@pytest.mark.parametrize("mode", MODES)
async def test_live_hub_serves_mcp(live_hub: LiveHub, mode: str) -> None:
    """``coord serve`` itself mounts ``/mcp`` (the wiring in ``create_app``)."""
    ha = httpx2.AsyncClient(headers={"Authorization": f"Bearer {live_hub.token(A)}"})
    hb = httpx2.AsyncClient(headers={"Authorization": f"Bearer {live_hub.token(B)}"})
    async with ha, hb, Client(streamable_http_client(live_hub.url + "/mcp", http_client=ha), mode=mode) as a, \
            Client(streamable_http_client(live_hub.url + "/mcp", http_client=hb), mode=mode) as b:
        lease = ok(await a.call_tool("claim_lease", {"project_key": "p", "resource": "src/"}))
        text = error(await b.call_tool("claim_lease", {"project_key": "p", "resource": "src/x.py"}))
        assert "lease_conflict" in text and A in text and lease["id"] in text
        sent = ok(await a.call_tool("send_message", {"to": B, "subject": "hi"}))
        assert ok(await b.call_tool("inbox", {}))["messages"][0]["id"] == sent["id"]
    async with httpx2.AsyncClient() as h:
        r = await h.post(live_hub.url + "/mcp", json=tools_call("status", {}), headers=JSONRPC)
    assert r.status_code == 401


async def test_the_app_can_start_twice(tmp_path: Path, anyio_backend: str) -> None:
    """Each lifespan run builds fresh SDK session managers (one manager can run only once)."""
    app, admin, store = open_hub(tmp_path)
    try:
        for _ in range(2):
            async with app.router.lifespan_context(app):
                async with McpHub(app, admin).client(A) as a:
                    assert ok(await a.call_tool("status", {}))["session_id"] == A
    finally:
        store.close()


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_only_post_is_served_no_standalone_stream(mcp_hub: McpHub, method: str) -> None:
    """Review: GET /mcp opened an SSE stream that held no stream slot, never ended and outlived its token (one
    token held 1,500 and filled the connection cap). Stateless, it would carry nothing: 405, as MCP allows."""
    token = await mcp_hub.token(A)
    async with mcp_hub.http({"Authorization": f"Bearer {token}", "Accept": "text/event-stream",
                             "MCP-Protocol-Version": "2025-06-18"}) as h:
        r = await h.request(method, "/mcp")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
