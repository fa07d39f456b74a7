"""The lean hot path (coordhub.api.hotpath) answers exactly as FastAPI's routes do.

Two hubs on the same manual clock run the same script of requests, one app
with the hot routes served by :class:`~coordhub.api.hotpath.HotRoutes`, one
without; every answer (status, the headers a client acts on, the JSON body
with random ids masked) must be the same. The script covers each hot route's
accepted requests and its refusals (bad bodies, parameters and paths, auth,
identity, halts, idempotent replays), and the fast app's counters prove the
fast path served the first kind and handed the second to FastAPI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount

from coordhub.api.app import create_app
from coordhub.api.auth import Caller, caller
from coordhub.api.hotpath import HOT, HotRoutes, NotLean, _long_number, plans
from coordhub.clock import ManualClock
from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store.sqlite import SQLiteStore

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KEPT_HEADERS = ("content-type", "idempotent-replayed", "retry-after", "www-authenticate", "coord-next-after-seq",
                "coord-next-before-seq")


@dataclass
class Side:
    """One hub and its app, with the tokens of the script's sessions and the ids its answers gave."""

    client: TestClient
    hub: Hub
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, who: str | None, *, body: Any = None, raw: bytes | None = None,
             content_type: str | None = "application/json", params: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, keep: str | None = None) -> tuple[int, dict[str, str], Any]:
        sent = dict(headers or {})
        if who is not None:
            sent["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        if content_type is not None and (body is not None or raw is not None):
            sent["Content-Type"] = content_type
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        r = self.client.request(method, path.format(**self.ids), content=data, params=params, headers=sent)
        answer = r.json() if r.content else None
        if keep is not None and r.status_code < 300:
            self.ids[keep] = answer["id"]
        kept = {k: v for k, v in r.headers.items() if k in KEPT_HEADERS}
        return r.status_code, kept, _masked(answer)


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        return UUID.sub("<uuid>", value)
    return value


def _side(tmp: Path, hot: bool) -> Iterator[Side]:
    store = SQLiteStore(tmp / "coord.db")
    store.open()
    hub = Hub(store, ManualClock())
    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    with TestClient(create_app(hub, sweep_seconds=0, hot_routes=hot)) as client:
        side = Side(client, hub, {"admin": admin})
        for name in ("M/a", "M/b"):
            r = client.post("/api/coord/tokens", json={"name": name}, headers={"Authorization": f"Bearer {admin}"})
            side.tokens[name] = r.json()["token"]
        yield side
    store.close()


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    (tmp_path / "fast").mkdir()
    (tmp_path / "slow").mkdir()
    fast = _side(tmp_path / "fast", True)
    slow = _side(tmp_path / "slow", False)
    yield next(fast), next(slow)
    for gen in (fast, slow):
        next(gen, None)


MSG = "/api/coord/messages"
LOCKS = "/api/coord/locks"
CLAIM = {"project_key": "p", "resource": "src/app/", "description": "work", "ttl_hours": 1}

# (method, path, caller, keyword arguments of Side.call); the script runs top to bottom on both hubs.
SCRIPT: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("POST", MSG, "M/a", {"body": {"to_session": "M/b", "subject": "hello", "body": "one"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "to all", "importance": "high"}}),
    ("POST", MSG, "M/a", {"body": {"to_session": "m/B", "subject": "case", "requires_ack": True}}),
    ("POST", MSG, "M/a", {"body": {"from_session": "M/b", "subject": "as another"}}),
    ("POST", MSG, "M/a", {"body": {"to_session": "M/b"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "x", "surplus": 1}}),
    ("POST", MSG, "M/a", {"body": {"subject": "x", "requires_ack": "yes"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "line\nbreak"}}),
    ("POST", MSG, "M/a", {"body": ["subject"]}),
    ("POST", MSG, "M/a", {"body": None, "raw": b"{\"subject\": \"x\""}),
    ("POST", MSG, "M/a", {"raw": b"", "content_type": "application/json"}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\":\"x\"}", "content_type": "text/plain"}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\":\"x\"}", "content_type": None}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\":\"x\"}", "content_type": "application/json; charset=utf-8"}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\":\"x\"}", "content_type": "application/vnd.coord+json"}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\":\"big\",\"max_deliveries\":123456789012345678901234}"}),
    ("POST", MSG, "M/a", {"body": {"to_session": "nobody/here", "subject": "unknown recipient"}}),
    ("POST", MSG, None, {"body": {"subject": "no token"}}),
    ("POST", MSG, "coord_not-a-token", {"body": {"subject": "bad token"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "keyed"}, "headers": {"Idempotency-Key": "k-1"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "keyed"}, "headers": {"Idempotency-Key": "k-1"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "other"}, "headers": {"Idempotency-Key": "k-1"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "late"}, "headers": {"X-Coord-Queued-At": "2026-01-01T00:00:00Z"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "late"}, "headers": {"X-Coord-Queued-At": "yesterday"}}),
    ("GET", MSG, "M/b", {"params": {"unread_only": "true", "limit": "5"}}),
    ("GET", MSG, "M/b", {}),
    ("GET", MSG, "M/b", {"params": {"unread_only": "TRUE", "limit": "+3"}}),
    ("GET", MSG, "M/b", {"params": {"unread_only": "yes", "limit": " 2"}}),
    ("GET", MSG, "M/b", {"params": {"limit": "0"}}),
    ("GET", MSG, "M/b", {"params": {"limit": "501"}}),
    ("GET", MSG, "M/b", {"params": {"limit": "abc"}}),
    ("GET", MSG, "M/b", {"params": {"unread_only": "maybe"}}),
    ("GET", MSG, "M/b", {"params": {"before_seq": "0"}}),
    ("GET", MSG, "M/b", {"params": {"before_seq": "3"}}),
    ("GET", MSG, "M/b", {"params": {"to_session": "M/a"}}),
    ("GET", MSG, "admin", {"params": {"to_session": "m/b"}}),
    ("GET", MSG, "admin", {}),
    ("POST", MSG, "M/a", {"body": {"to_session": "M/b", "subject": "in t", "thread_id": "t"}}),
    ("POST", MSG, "M/b", {"body": {"to_session": "M/c", "subject": "aside in t", "thread_id": "t"}}),
    ("GET", MSG, "M/a", {"params": {"thread_id": "t"}}),
    ("GET", MSG, "M/b", {"params": {"thread_id": "t", "limit": "1", "after_seq": "1"}}),
    ("GET", MSG, "M/b", {"params": {"thread_id": "t", "unread_only": "true"}}),
    ("GET", MSG, "M/b", {"params": {"thread_id": "t", "before_seq": "3"}}),
    ("GET", MSG, "M/b", {"params": {"thread_id": "t" * 201}}),
    ("POST", LOCKS, "M/a", {"body": CLAIM, "keep": "lease"}),
    ("POST", LOCKS, "M/b", {"body": {**CLAIM, "resource": "src/app/main.py"}}),
    ("POST", LOCKS, "M/a", {"body": CLAIM}),
    ("POST", LOCKS, "M/a", {"body": {**CLAIM, "ttl_hours": -1}}),
    ("POST", LOCKS, "M/a", {"body": {**CLAIM, "session_id": "M/b"}}),
    ("POST", LOCKS, "M/a", {"body": {"resource": "x"}}),
    ("POST", LOCKS, "M/b", {"body": {**CLAIM, "resource": "docs/"}, "keep": "other"}),
    ("GET", LOCKS + "/conflicts", "M/b", {"params": {"project_key": "p", "resource": "src/app/x.py"}}),
    ("GET", LOCKS + "/conflicts", "M/a", {"params": {"project_key": "p", "resource": "src/**"}}),
    ("GET", LOCKS + "/conflicts", "M/a", {"params": {"project_key": "p"}}),
    ("GET", LOCKS + "/conflicts", "M/a", {"params": {"project_key": "p", "resource": "x", "session_id": "M/b"}}),
    ("GET", LOCKS, "M/a", {}),
    ("GET", LOCKS, "M/b", {"params": {"project_key": "p", "resource": "src/app/x.py"}}),
    ("GET", LOCKS, "M/b", {"params": {"project_key": "p", "resource": "src/**", "session_id": "m/A"}}),
    ("GET", LOCKS, "admin", {"params": {"session_id": "M/b"}}),
    ("GET", LOCKS, "M/a", {"params": {"session_id": "nobody/here"}}),
    ("GET", LOCKS, "M/a", {"params": {"project_key": "p", "resource": ""}}),
    ("GET", LOCKS, "M/a", {"params": {"resource": "bad\u0000path"}}),
    ("GET", LOCKS, "M/a", {"params": {"resource": "../../etc"}}),
    ("GET", LOCKS, None, {}),
    # the query as Starlette reads it for FastAPI: the last of a repeated name, '+' and %-escapes, bad UTF-8
    ("GET", LOCKS + "?session_id=M/b&session_id=M/a", "M/a", {}),
    ("GET", LOCKS + "?session_id=M/a&session_id=", "M/a", {}),
    ("GET", LOCKS + "?project_key=p&resource=src/app+x.py&resource=src%2Fapp%2Fx.py", "M/b", {}),
    ("GET", LOCKS + "?resource=%E9t%C3%A9&project_key=p", "M/b", {}),
    ("GET", LOCKS + "?session_id&=x&project_key=p", "M/b", {}),
    ("GET", MSG + "?limit=1&limit=500&unread_only=false&unread_only=true", "M/b", {}),
    ("GET", MSG + "?limit=2&limit=0", "M/b", {}),
    ("POST", LOCKS + "/{lease}/renew", "M/a", {"body": {"ttl_hours": 3}}),
    ("POST", LOCKS + "/{lease}/renew", "M/b", {"body": {}}),
    ("POST", LOCKS + "/{lease}/renew", "M/a", {}),  # no body (seed 001's clients send none): the lease's own TTL
    ("POST", LOCKS + "/{lease}/renew", "M/a", {"raw": b"", "content_type": "text/plain"}),
    ("POST", LOCKS + "/{lease}/renew", "M/a", {"raw": b"null"}),
    ("POST", LOCKS + "/{lease}/renew", "M/a", {"params": {"session_id": "M/b"}}),
    ("POST", LOCKS + "/{lease}/renew", "M/a", {"body": {"ttl_hours": "3"}}),
    ("POST", LOCKS + "/00000000-0000-4000-8000-000000000000/renew", "M/a", {"body": {}}),
    ("POST", LOCKS + "/not-a-uuid/renew", "M/a", {"body": {}}),
    ("DELETE", LOCKS + "/{lease}", "M/b", {}),
    ("DELETE", LOCKS + "/{lease}", "M/b", {"params": {"force": "true", "reason": "stuck"}}),
    ("DELETE", LOCKS + "/{lease}", "M/a", {"params": {"reason": "bad\nreason"}}),
    ("DELETE", LOCKS + "/{lease}", "M/a", {"params": {"session_id": "M/b"}}),
    ("DELETE", LOCKS + "/check", "M/a", {}),
    ("DELETE", LOCKS + "/{lease}", "M/a", {"params": {"reason": "done"}}),
    ("DELETE", LOCKS + "/{lease}", "M/a", {}),
    # the rules in front of every route (coordhub.api.door), on the hot routes as on the others
    ("POST", MSG, "M/a", {"body": {"subject": "nul \u0000 inside"}}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\": \"x\", \"max_deliveries\": NaN}"}),
    ("POST", MSG, "M/a", {"raw": b"{\"subject\": \"" + b"x" * 1_100_000 + b"\"}"}),
    ("POST", MSG, "M/a", {"body": {"subject": "from a page"}, "headers": {"Origin": "http://evil.example"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "same origin"}, "headers": {"Origin": "http://testserver"}}),
    ("GET", MSG, "M/b", {"params": {"to_session": "M/\u0000b"}}),
    ("GET", MSG, "M/b", {"params": {"limit": "", "unread_only": "", "before_seq": ""}}),
    ("GET", LOCKS + "/conflicts", "M/a", {"params": {"project_key": "p", "resource": "src/", "session_id": ""}}),
    ("POST", "/api/coord/halt", "admin", {"body": {"reason": "freeze"}}),
    ("POST", MSG, "M/a", {"body": {"subject": "during halt"}}),
    ("POST", LOCKS, "M/a", {"body": CLAIM}),
    ("DELETE", LOCKS + "/{other}", "M/b", {}),
    ("GET", MSG, "M/b", {"params": {"limit": "2"}}),
]


TODOS = "/api/coord/todos"
COMPONENTS = "/api/coord/components"
NIL = "00000000-0000-4000-8000-000000000000"

# Routes beyond the hottest ones, served here because their declarations are lean (and the ones that are not,
# handed to FastAPI): answers, errors and the route each request reaches must be FastAPI's.
MORE: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("POST", TODOS, "M/a", {"body": {"text": "write the docs", "project_key": "p"}, "keep": "todo"}),
    ("POST", TODOS, "M/a", {"body": {"text": "two projects", "project_key": "p", "project": "q"}}),
    ("POST", TODOS, "M/a", {"body": {"text": "as another", "created_by": "M/b"}}),
    ("POST", TODOS, "M/a", {"body": {"project_key": "p"}}),
    ("POST", TODOS, "M/a", {"raw": b"{\"text\": \"x\"}", "content_type": "text/plain"}),
    ("GET", TODOS, "M/b", {"params": {"project_key": "p"}}),
    ("GET", TODOS, "M/b", {"params": {"project_key": "p", "status": "all"}}),
    ("GET", TODOS, "M/b", {"params": {"status": "sideways"}}),
    ("GET", TODOS + "/{todo}", "M/b", {}),
    ("GET", TODOS + "/not-a-uuid", "M/b", {}),
    ("GET", TODOS + "/" + NIL, "M/b", {}),
    ("POST", TODOS + "/{todo}/done", "M/b", {}),  # an optional body, sent empty: None, as FastAPI reads it
    ("POST", TODOS + "/{todo}/done", "M/b", {"body": {"completed_by": "M/a"}}),
    ("PUT", COMPONENTS, "M/a", {"body": {"project_key": "p", "component": "api", "state": "built"}}),
    ("PUT", COMPONENTS + "/p/web", "M/a", {"body": {"state": "deploying", "version": "1.2"}}),
    ("PUT", COMPONENTS + "/p/web", "M/a", {"body": {"state": "x" * 5000}}),
    ("PUT", COMPONENTS + "/p/web/extra", "M/a", {"body": {"state": "built"}}),
    ("GET", COMPONENTS, "M/b", {"params": {"project_key": "p"}}),
    ("GET", "/api/coord/whoami", "M/b", {}),
    ("GET", "/api/coord/whoami", None, {}),
    ("POST", "/api/coord/presence/register", "M/a", {"body": {"client": "test", "cwd": "/tmp"}}),
    ("POST", "/api/coord/presence/heartbeat", "M/a", {"body": {"incarnation": "nope"}}),
    ("GET", "/api/coord/presence", "M/b", {}),
    ("GET", "/api/coord/presence", "M/b", {"params": {"state": "online"}}),
    ("GET", "/api/coord/status", "M/b", {"params": {"project_key": "p"}}),
    ("GET", MSG + "/unread-count", "M/b", {}),
    ("GET", MSG + "/" + NIL, "M/b", {}),
    ("PUT", MSG + "/" + NIL + "/read", "M/b", {}),
    ("GET", "/api/coord/tokens", "admin", {}),
    ("GET", "/api/coord/tokens", "M/a", {}),
    ("DELETE", "/api/coord/tokens/M/b", "M/a", {}),
    ("GET", "/api/coord/halt", "M/a", {}),
    ("PATCH", TODOS, "M/a", {"body": {}}),
    ("GET", "/api/coord/conversations/profile%0A", "M/a", {}),  # the router's `$` matches before a last newline
    ("GET", "/api/coord/locks%0A", "M/a", {}),
    ("POST", "/api/coord/events", "M/a", {"raw": b'{"kind": "guard.bypass", "detail": {"n": 18446744073709551617, '
                                                 b'"m": -9999999999999999999, "k": 1234567890123456789}}'}),
    ("POST", "/api/coord/events", "M/a", {"raw": b'{"kind": "guard.bypass", "detail": {"n": 12}}'}),
    ("GET", "/api/coord/nowhere", "M/a", {}),
    ("GET", "/api/coord/todos/", "M/a", {}),
]


def test_hot_routes_answer_as_fastapi_does(sides: tuple[Side, Side]) -> None:
    fast, slow = sides
    halt = next(i for i, (method, path, _, _) in enumerate(SCRIPT) if path == "/api/coord/halt")
    for step, (method, path, who, kwargs) in enumerate(SCRIPT[:halt] + MORE + SCRIPT[halt:]):
        got = fast.call(method, path, who, **kwargs)
        want = slow.call(method, path, who, **kwargs)
        assert got == want, f"step {step}: {method} {path} {kwargs}"
    counts = fast.client.app.state.hot_routes  # type: ignore[attr-defined]
    # Both branches ran: accepted requests served by the fast path, refused ones handed to FastAPI.
    assert counts.served >= 70 and counts.passed_on >= 25, counts
    assert slow.client.app.state.hot_routes.served == 0  # type: ignore[attr-defined]


def test_every_hot_route_is_planned_from_its_own_declaration() -> None:
    app = create_app(Hub(SQLiteStore(":memory:"), ManualClock()), sweep_seconds=0)
    found = plans(app)
    assert [(p.method, p.route.path) for p in found] == list(HOT)
    inbox = next(p for p in found if p.method == "GET" and p.route.path.endswith("/messages"))
    assert [q.name for q in inbox.query] == ["to_session", "unread_only", "session_id", "thread_id", "limit",
                                             "before_seq", "after_seq"]
    assert inbox.body is None and inbox.caller_name == "who"


def test_a_route_the_fast_path_cannot_resolve_exactly_is_refused_when_the_app_is_built() -> None:
    app = FastAPI()

    @app.post("/api/coord/messages")
    async def send(request: Request, x_thing: str = Header(), who: Caller = Depends(caller)) -> JSONResponse:
        """A header parameter: resolved by FastAPI only."""
        raise NotImplementedError

    with pytest.raises(NotLean, match="headers"):
        plans(app, [("POST", "/api/coord/messages")])
    with pytest.raises(NotLean, match="no route"):
        plans(app, [("GET", "/api/coord/nowhere")])

    @app.get("/api/coord/kinds")
    async def kinds(request: Request, kind: list[str] = Query([]), who: Caller = Depends(caller)) -> JSONResponse:
        """A list parameter (every ?kind=): FastAPI reads all of them, so it is FastAPI's to resolve."""
        raise NotImplementedError

    with pytest.raises(NotLean, match="single values"):
        plans(app, [("GET", "/api/coord/kinds")])

    @app.get("/api/coord/plain")
    async def plain(request: Request, who: Caller = Depends(caller)) -> dict[str, int]:
        """A plain return value: FastAPI serializes it through the response model."""
        return {"n": 1}

    with pytest.raises(NotLean, match="must return a Response"):
        plans(app, [("GET", "/api/coord/plain")])

    @app.get("/api/coord/blocking")
    def blocking(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        """A plain function: FastAPI runs it in a thread."""
        raise NotImplementedError

    with pytest.raises(NotLean, match="async"):
        plans(app, [("GET", "/api/coord/blocking")])


def _taker(app: FastAPI, method: str, path: str) -> str | None:
    """The endpoint the fast path serves ``method`` on ``path`` with, or None when it leaves it to FastAPI."""
    found = HotRoutes(lambda: app.router.routes).match({"type": "http", "method": method, "path": path})
    return None if found is None else found[0].route.name


def _fastapi_taker(app: FastAPI, method: str, path: str) -> str | None:
    """The endpoint FastAPI itself runs for ``method`` on ``path`` (each test endpoint names itself)."""
    app.dependency_overrides[caller] = lambda: None
    with TestClient(app) as client:
        r = client.request(method, path, headers={"X": "x"})
    return r.json()["by"] if r.status_code == 200 else None


def test_a_request_is_served_here_only_when_the_first_route_that_takes_it_is_lean() -> None:
    app = FastAPI()
    early, late = APIRouter(), APIRouter()

    @early.get("/api/coord/items/special")
    async def special(request: Request, x: str = Header(), who: Caller = Depends(caller)) -> JSONResponse:
        """Not lean (a header), declared before the lean route whose template also takes its path."""
        return JSONResponse({"by": "special"})

    @early.get("/api/coord/items/{item_id}")
    async def item(request: Request, item_id: str, who: Caller = Depends(caller)) -> JSONResponse:
        """Lean, and first for every other item path (and for the exact path declared after it)."""
        return JSONResponse({"by": "item"})

    @early.get("/api/coord/items/latest")
    async def latest(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        """Lean, but never reached: the template before it takes its path."""
        return JSONResponse({"by": "latest"})

    @early.post("/api/coord/items/{item_id}")
    async def put_item(request: Request, item_id: int, who: Caller = Depends(caller)) -> JSONResponse:
        """Lean; an int path parameter."""
        return JSONResponse({"by": "put_item"})

    @late.get("/api/coord/later")
    async def later(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        """Lean, but after a router included with a prefix, which may take any path: FastAPI's."""
        return JSONResponse({"by": "later"})

    app.include_router(early)
    app.include_router(APIRouter(), prefix="/anything")
    app.include_router(late)
    assert _taker(app, "GET", "/api/coord/items/special") is None
    assert _taker(app, "GET", "/api/coord/items/42") == "item"
    assert _taker(app, "GET", "/api/coord/items/latest") == "item"  # as FastAPI: the first route that takes it
    assert _taker(app, "POST", "/api/coord/items/42") == "put_item"
    assert _taker(app, "DELETE", "/api/coord/items/42") is None  # no route: FastAPI's 405
    assert _taker(app, "GET", "/api/coord/items/42/more") is None  # no route: FastAPI's 404
    assert _taker(app, "GET", "/api/coord/later") is None
    assert _fastapi_taker(app, "GET", "/api/coord/items/latest") == "item"  # FastAPI's own router agrees
    assert _fastapi_taker(app, "GET", "/api/coord/items/special") == "special"

    app.router.routes.insert(0, Mount("/", app=FastAPI()))  # a mount that takes every path, first
    assert _taker(app, "GET", "/api/coord/items/42") is None


def test_an_unexpected_error_in_a_hot_route_is_the_same_500_and_reaches_the_server(
        sides: tuple[Side, Side], monkeypatch: pytest.MonkeyPatch) -> None:
    for side in sides:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(side.hub, "mutate", broken)
    fast, slow = sides
    answers = []
    for side in (fast, slow):
        with pytest.raises(RuntimeError, match="a bug"):  # raised on to the server, as Starlette's error layer does
            side.call("POST", MSG, "M/a", body={"subject": "x"})
        with TestClient(side.client.app, raise_server_exceptions=False) as quiet:
            r = quiet.post(MSG, json={"subject": "x"}, headers={"Authorization": f"Bearer {side.tokens['M/a']}"})
            answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1] == (500, {"error": {"code": "internal", "message": "internal error in the hub; "
                                                        "it has been logged"},
                                              "detail": "internal error in the hub; it has been logged"})
    assert fast.client.app.state.hot_routes.served >= 2  # type: ignore[attr-defined]


def test_hot_routes_are_counted_by_template_and_refusals_are_not(sides: tuple[Side, Side]) -> None:
    fast, _ = sides
    fast.call("POST", MSG, "M/a", body={"to_session": "M/b", "subject": "one"})
    fast.call("POST", LOCKS, "M/a", body=CLAIM, keep="lease")
    fast.call("DELETE", LOCKS + "/{lease}", "M/a")
    fast.call("POST", MSG, "M/a", body={"subject": "x"}, headers={"Origin": "http://evil.example"})  # 403
    fast.call("POST", MSG, "M/a", body={"subject": "nul \u0000"})  # 422 from the input rules
    fast.call("POST", MSG, "M/a", body={"subject": "x", "surplus": 1})  # 422 from FastAPI: reached the route
    text = fast.client.get("/metrics", headers={"Authorization": f"Bearer {fast.tokens['admin']}"}).text

    counted = {(s.labels["route"], s.labels["method"], s.labels["status"]): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "coord_http_request_seconds_count"}

    def count(route: str, method: str, status: str) -> float:
        return counted.get((route, method, status), 0.0)

    assert count(MSG, "POST", "2xx") == 1
    assert count(MSG, "POST", "4xx") == 1  # the surplus field only; the 403 and the NUL never reached a route
    assert count(LOCKS, "POST", "2xx") == 1
    assert count(LOCKS + "/{lease_id}", "DELETE", "2xx") == 1


def test_the_apps_state_is_read_as_plain_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: ``app.state`` values are read without Starlette's ``__getattr__`` (an ``AttributeError`` made
    and dropped per read), and stay the same values Starlette's ``State`` holds."""
    from starlette.datastructures import State

    from coordhub.api.app import AppState

    state = AppState()
    state.hub, state.auth = "hub", "auth"
    fallbacks: list[str] = []
    slow = State.__getattr__

    def counted(self: State, key: str) -> object:
        fallbacks.append(key)
        return slow(self, key)

    monkeypatch.setattr(State, "__getattr__", counted)
    assert (state.hub, state.auth) == ("hub", "auth")
    assert fallbacks == []
    state.hub = "other"
    del state.auth
    assert state.hub == "other" and state._state == {"hub": "other"}
    with pytest.raises(AttributeError):
        state.auth  # noqa: B018
    assert fallbacks == ["auth"]


_REGEX_LONG_NUMBER = re.compile(rb"\d{19}")  # the rule as a regular expression (a bytes pattern: ASCII digits only)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"0", b"1", b"9", b"5" * 18, b"7" * 19, b"a", b"\"", b":", b" ", b"-", b".",
                                 "\u0663".encode(), b"\xd9\xa3", b"\x00", b"/", b":"]), max_size=40))
def test_a_long_number_is_found_as_the_regular_expression_finds_it(parts: list[bytes]) -> None:
    """The fast path hands FastAPI every body with 19 digits in a row (orjson would read such a number as a float):
    the scan answers as ``\\d{19}`` does, for runs that meet across pieces, non-ASCII digits and zeros."""
    body = b"".join(parts)
    assert _long_number(body) is (_REGEX_LONG_NUMBER.search(body) is not None)


@pytest.mark.parametrize(("body", "long"), [(b"", False), (b"1" * 18, False), (b"1" * 19, True), (b"0" * 19, True),
                                            (b"x" + b"9" * 18 + b"x" + b"9", False),
                                            (b'{"n":1234567890123456789}', True),
                                            (b'{"n":-123456789012345678.5}', False), ("\u0661".encode() * 19, False)])
def test_a_long_number_at_its_edges(body: bytes, long: bool) -> None:
    assert _long_number(body) is long
