"""``/mcp`` loads its SDK side at the first ``/mcp`` request, on a worker thread, once (coordhub.mcp.http.Gate).

A hub that nobody reaches over MCP never imports the ``mcp`` SDK (~40 % of a
hub's start-up CPU, ~29 MiB); the first ``/mcp`` request waits for the load
while every other route goes on answering.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.mcp import served
from tests.mcp.conftest import McpHub, ok, running_hub

pytestmark = pytest.mark.anyio

A = "HOST-A/claude-main"
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "status", "arguments": {}}}
JSONRPC = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_a_new_hub_imports_the_sdk_only_at_its_first_mcp_request(tmp_path: Path) -> None:
    """In a fresh interpreter: building and starting the app, and REST requests, import no ``mcp`` module; an
    ``/mcp`` request does, on a thread other than the event loop's, and is answered."""
    script = textwrap.dedent(f"""
        import asyncio, json, sys, threading
        import httpx2

        importers = []

        class Watch:  # notes the thread that first imports the SDK
            def find_spec(self, name, path=None, target=None):
                if name == "mcp":
                    importers.append(threading.current_thread() is threading.main_thread())
                return None

        sys.meta_path.insert(0, Watch())
        from coordhub.api.app import create_app
        from coordhub.core import tokens
        from coordhub.core.hub import Hub
        from coordhub.server import SYSTEM
        from coordhub.store.sqlite import SQLiteStore

        def sdk() -> bool:
            return any(name == "mcp" or name.startswith(("mcp.", "mcp_types")) for name in sys.modules)

        async def main() -> None:
            store = SQLiteStore({str(tmp_path / "coord.db")!r})
            store.open()
            hub = Hub(store)
            admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
            app = create_app(hub, sweep_seconds=0)
            seen = {{"after_create_app": sdk()}}
            async with app.router.lifespan_context(app):
                seen["after_start"] = sdk()
                headers = {{"Authorization": f"Bearer {{admin}}"}}
                async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub",
                                              headers=headers) as h:
                    seen["rest"] = (await h.get("/api/coord/status")).status_code
                    seen["after_rest"] = sdk()
                    r = await h.post("/mcp", json={json.dumps(CALL)}, headers={json.dumps(JSONRPC)})
                    seen["mcp"] = r.status_code, r.json()["result"]["structuredContent"]["session_id"]
                    seen["after_mcp"] = sdk()
                    seen["imported_on_the_loops_thread"] = importers
            store.close()
            print(json.dumps(seen))

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"after_create_app": False, "after_start": False, "rest": 200, "after_rest": False,
                    "mcp": [200, "admin"], "after_mcp": True, "imported_on_the_loops_thread": [False]}, seen


async def test_the_hub_answers_while_mcp_loads_and_loads_once(tmp_path: Path, anyio_backend: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The load runs on a thread other than the event loop's; REST requests are answered while it runs; two
    ``/mcp`` requests that arrive meanwhile both wait for that one load and are both answered."""
    release, entered = threading.Event(), threading.Event()
    loads: list[int] = []
    real_load = served.load

    def slow_load(app: Any) -> served.Served:
        loads.append(threading.get_ident())
        entered.set()
        assert release.wait(30), "the test never released the load"
        return real_load(app)

    monkeypatch.setattr(served, "load", slow_load)
    async with running_hub(tmp_path) as hub:
        token = await hub.token(A)
        headers = {**JSONRPC, "Authorization": f"Bearer {token}"}
        async with hub.http(headers) as h:
            first = asyncio.ensure_future(h.post("/mcp", json=CALL))
            second = asyncio.ensure_future(h.post("/mcp", json=CALL))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            status = await hub.rest("GET", "/api/coord/status", token)  # answered while the load is held
            assert status["session_id"] == A
            assert not first.done() and not second.done()
            release.set()
            answers = await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert [r.status_code for r in answers] == [200, 200]
        assert {r.json()["result"]["structuredContent"]["session_id"] for r in answers} == {A}
        assert loads == [loads[0]] and loads[0] != threading.get_ident()


async def test_a_load_that_fails_is_a_500_on_mcp_only(tmp_path: Path, anyio_backend: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``/mcp`` request gets the hub's 500 envelope; REST is unaffected and the hub stops cleanly."""
    def broken(app: Any) -> served.Served:
        raise ImportError("no SDK here")

    monkeypatch.setattr(served, "load", broken)
    async with running_hub(tmp_path) as hub:
        token = await hub.token(A)
        transport = httpx2.ASGITransport(app=hub.app, raise_app_exceptions=False)  # the 500 as a client sees it
        async with httpx2.AsyncClient(transport=transport, base_url=hub.url,
                                      headers={**JSONRPC, "Authorization": f"Bearer {token}"}) as h:
            for _ in range(2):
                r = await h.post("/mcp", json=CALL)
                assert r.status_code == 500 and r.json()["error"]["code"] == "internal", r.text
        assert (await hub.rest("GET", "/api/coord/status", token))["session_id"] == A


async def test_a_stopped_app_refuses_mcp_until_started_again(tmp_path: Path, anyio_backend: str) -> None:
    """After the lifespan ends the session managers are gone; the next run loads nothing again and serves."""
    async with running_hub(tmp_path) as hub:
        async with hub.client(A) as a:
            assert ok(await a.call_tool("status", {}))["session_id"] == A
        app = hub.app
    with pytest.raises(RuntimeError, match="not running"):
        await _post(McpHub(app, hub.admin_token))
    calls: list[Any] = []
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(served, "load", lambda app: calls.append(app))  # would fail: it must not run again
    try:
        async with app.router.lifespan_context(app):
            r = await _post(McpHub(app, hub.admin_token))
            assert r.status_code == 200 and calls == []
    finally:
        monkeypatch.undo()


async def _post(hub: McpHub) -> Any:
    async with hub.http({**JSONRPC, "Authorization": f"Bearer {hub.admin_token}"}) as h:
        return await h.post("/mcp", json=CALL)
