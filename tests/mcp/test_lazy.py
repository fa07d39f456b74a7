"""``/mcp`` loads its SDK side at the first ``/mcp`` request, on a worker thread, once (coordhub.mcp.http.Gate).

A hub that nobody reaches over MCP never imports the ``mcp`` SDK (~40 % of a
hub's start-up CPU, ~29 MiB); the first ``/mcp`` request waits for the load
while every other route goes on answering.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.heap import Freezer
from coordhub.mcp import served
from tests.mcp.conftest import McpHub, ok, open_hub, running_hub

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


class HeldLoad:
    """``served.load`` held on its thread until :meth:`release`; notes each load's thread and whether automatic
    collections were on while it ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        self.threads: list[int] = []
        self.collecting: list[bool] = []
        real = served.load

        def load(app: Any) -> served.Served:
            self.threads.append(threading.get_ident())
            self.collecting.append(gc.isenabled())
            self.entered.set()
            assert self.released.wait(30), "the test never released the load"
            return real(app)

        monkeypatch.setattr(served, "load", load)

    async def wait_entered(self) -> None:
        while not self.entered.is_set():
            await asyncio.sleep(0.01)

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def freezer() -> Iterator[Freezer]:
    """A freezer installed as in a serving hub (``coord serve`` settles its heap; tests do not)."""
    installed = Freezer()
    gc.callbacks.append(installed)
    try:
        yield installed
    finally:
        gc.callbacks.remove(installed)
        gc.unfreeze()
        gc.enable()


async def test_the_hub_answers_while_mcp_loads_and_loads_once(tmp_path: Path, anyio_backend: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              freezer: Freezer) -> None:
    """The load runs on a thread other than the event loop's, with automatic collections paused in a serving hub
    (back on after it); REST requests are answered while it runs; two ``/mcp`` requests that arrive meanwhile
    both wait for that one load and are both answered."""
    held = HeldLoad(monkeypatch)
    async with running_hub(tmp_path) as hub:
        token = await hub.token(A)
        headers = {**JSONRPC, "Authorization": f"Bearer {token}"}
        async with hub.http(headers) as h:
            first = asyncio.ensure_future(h.post("/mcp", json=CALL))
            second = asyncio.ensure_future(h.post("/mcp", json=CALL))
            await held.wait_entered()
            status = await hub.rest("GET", "/api/coord/status", token)  # answered while the load is held
            assert status["session_id"] == A
            assert not first.done() and not second.done()
            held.release()
            answers = await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert [r.status_code for r in answers] == [200, 200]
        assert {r.json()["result"]["structuredContent"]["session_id"] for r in answers} == {A}
        assert held.threads == [held.threads[0]] and held.threads[0] != threading.get_ident()
        assert held.collecting == [False] and gc.isenabled() and not freezer.due


async def test_a_waiter_that_goes_away_does_not_stop_the_load(tmp_path: Path, anyio_backend: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The first request is cancelled (its client left) while the load runs: the load goes on and the next
    request is answered."""
    held = HeldLoad(monkeypatch)
    async with running_hub(tmp_path) as hub:
        async with hub.http({**JSONRPC, "Authorization": f"Bearer {hub.admin_token}"}) as h:
            first = asyncio.ensure_future(h.post("/mcp", json=CALL))
            await held.wait_entered()
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            held.release()
            r = await asyncio.wait_for(h.post("/mcp", json=CALL), 30)
        assert r.status_code == 200, r.text
        assert len(held.threads) == 1


async def test_a_hub_stopping_during_the_load_refuses_the_waiting_request(
        tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch, freezer: Freezer) -> None:
    """The lifespan ends while the load runs: it waits for the load (a thread cannot be interrupted), starts no
    session manager, and the waiting request gets the 503 envelope, as does one that comes after the stop
    began."""
    held = HeldLoad(monkeypatch)
    app, admin, store = open_hub(tmp_path)
    try:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        async with McpHub(app, admin).http({**JSONRPC, "Authorization": f"Bearer {admin}"}) as h:
            waiting = asyncio.ensure_future(h.post("/mcp", json=CALL))
            await held.wait_entered()
            stopping = asyncio.ensure_future(lifespan.__aexit__(None, None, None))
            await asyncio.sleep(0.2)
            assert not stopping.done()  # waits for the load
            late = await h.post("/mcp", json=CALL)  # came after the stop began: refused at once
            assert late.status_code == 503 and late.json()["error"]["code"] == "mcp_unavailable", late.text
            held.release()
            await asyncio.wait_for(stopping, 30)
            r = await asyncio.wait_for(waiting, 30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "mcp_unavailable", r.text
        assert gc.isenabled() and len(held.threads) == 1
    finally:
        store.close()


async def test_a_load_that_fails_is_a_503_on_mcp_only(tmp_path: Path, anyio_backend: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Every ``/mcp`` request gets the hub's 503 envelope, the failure logged once and not tried again; REST is
    unaffected and the hub stops cleanly."""
    tries: list[int] = []

    def broken(app: Any) -> served.Served:
        tries.append(1)
        raise ImportError("no SDK here")

    monkeypatch.setattr(served, "load", broken)
    async with running_hub(tmp_path) as hub:
        token = await hub.token(A)
        async with hub.http({**JSONRPC, "Authorization": f"Bearer {token}"}) as h:
            for _ in range(3):
                r = await h.post("/mcp", json=CALL)
                assert r.status_code == 503 and r.json()["error"]["code"] == "mcp_unavailable", r.text
                assert "log says why" in r.json()["error"]["message"]
        assert (await hub.rest("GET", "/api/coord/status", token))["session_id"] == A
    assert tries == [1]
    assert caplog.text.count("ImportError: no SDK here") == 1  # one traceback, not one per request


async def test_a_stopped_app_refuses_mcp_until_started_again(tmp_path: Path, anyio_backend: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """After the lifespan ends the session managers are gone and ``/mcp`` is a 503; the next run loads nothing
    again and serves."""
    async with running_hub(tmp_path) as hub:
        async with hub.client(A) as a:
            assert ok(await a.call_tool("status", {}))["session_id"] == A
        app = hub.app
    r = await _post(McpHub(app, hub.admin_token))
    assert r.status_code == 503 and r.json()["error"]["code"] == "mcp_unavailable", r.text
    calls: list[Any] = []
    monkeypatch.setattr(served, "load", lambda app: calls.append(app))  # would fail: it must not run again
    async with app.router.lifespan_context(app):
        r = await _post(McpHub(app, hub.admin_token))
        assert r.status_code == 200 and calls == [], r.text


async def _post(hub: McpHub) -> Any:
    async with hub.http({**JSONRPC, "Authorization": f"Bearer {hub.admin_token}"}) as h:
        return await h.post("/mcp", json=CALL)
