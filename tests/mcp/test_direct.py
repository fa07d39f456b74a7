"""The direct ``tools/call`` on the hub's ``/mcp`` (coordhub.mcp.direct): the SDK's answer, the REST rules.

A plain ``tools/call`` is answered without the SDK's per-request transport;
these tests pin that its answers are the SDK's own (compared with the SDK
answering the same request) and that the tool's REST call still goes
through the app with the caller's identity, the halt and validation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.api.door import Door, inner_door
from coordhub.client.aio import asgi_request
from coordhub.mcp.direct import DirectCalls
from coordhub.mcp.http import PATH, ready
from tests.mcp.conftest import MODES, McpHub, error, ok

pytestmark = pytest.mark.anyio

A, B = "HOST-A/claude-main", "HOST-B/claude-main"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"


@pytest.fixture
async def mcp_hub(mcp_hub: McpHub) -> McpHub:
    """The hub with its ``/mcp`` loaded (it loads at the first ``/mcp`` request): its direct calls can be read."""
    await ready(mcp_hub.app)
    return mcp_hub


def _gate(hub: McpHub) -> Any:
    route = hub.app.router.routes[0]
    assert getattr(route, "path", None) == PATH
    return route.endpoint  # type: ignore[attr-defined]


def direct(hub: McpHub, profile: str = "default") -> DirectCalls:
    """The hub's direct-call handler of ``profile``."""
    found: DirectCalls = _gate(hub).direct[profile]
    return found


@contextmanager
def sdk_only(hub: McpHub) -> Iterator[None]:
    """Every ``/mcp`` request answered by the SDK, as before the direct path existed."""
    gate = _gate(hub)
    saved, gate.direct = gate.direct, {}
    try:
        yield
    finally:
        gate.direct = saved


def request(name: str, arguments: dict[str, Any], version: str | None, request_id: Any = 7,
            ) -> tuple[dict[str, str], bytes]:
    """Headers and body of a raw ``tools/call`` at ``version`` (``None``: no version header)."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    if version == MODERN:
        headers.update({"Mcp-Method": "tools/call", "Mcp-Name": name})
        params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                           "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    return headers, json.dumps(body).encode()


async def post(hub: McpHub, token: str, headers: dict[str, str], body: bytes) -> httpx2.Response:
    async with hub.http({**headers, "Authorization": f"Bearer {token}"}) as h:
        return await h.post(PATH, content=body)


CALLS = [  # read-only or refused calls: the same request answers the same twice
    ("presence", {}),
    ("list_leases", {"project_key": "p"}),
    ("check_fence", {"fence": 1, "resource": "src/a.py", "project_key": "p"}),
    ("inbox", {"unread_only": False, "limit": 5}),
    ("send_message", {"to": 5, "subject": "x"}),  # arguments that do not fit the schema
    ("send_message", {"to": B, "subject": "s" * 501}),  # refused by the REST validation (422)
    ("release_lease", {"lease_id": "7b0c1f4e-8d4e-4a57-9a51-0a9f6f0c2d11"}),  # refused: not found
    ("list_todos", {"status": "all", "user": "nobody"}),
]


@pytest.mark.parametrize("version", [None, "2025-06-18", LEGACY, MODERN])
async def test_answers_are_the_sdks_own(mcp_hub: McpHub, version: str | None) -> None:
    """Status, content type and JSON body equal the SDK's answer to the same request (fails if the SDK's wire
    form changes under us, e.g. on an upgrade)."""
    token = await mcp_hub.token(A)
    lease = {"project_key": "p", "resource": "src/a.py", "ttl_hours": 0}  # never expires: no countdown to differ
    await mcp_hub.rest("POST", "/api/coord/locks", token, json=lease)
    for name, arguments in CALLS:
        headers, body = request(name, arguments, version, request_id=f"id-{name}")
        before = direct(mcp_hub).answered
        fast = await post(mcp_hub, token, headers, body)
        assert direct(mcp_hub).answered == before + 1, f"{name} did not take the direct path"
        with sdk_only(mcp_hub):
            slow = await post(mcp_hub, token, headers, body)
        assert (fast.status_code, fast.headers["content-type"]) == (slow.status_code, slow.headers["content-type"])
        assert fast.json() == slow.json(), name
        assert fast.headers.get("mcp-session-id") is None


async def test_anything_unusual_goes_to_the_sdk(mcp_hub: McpHub) -> None:
    """Malformed or other requests are not answered here: the SDK answers them as before."""
    token = await mcp_hub.token(A)
    headers, body = request("status", {}, LEGACY)
    cases = [
        (headers, b"{not json"),
        (headers, json.dumps([json.loads(body)]).encode()),  # a batch
        (headers, body.replace(b'"status"', b'"no_such_tool"')),
        (headers, body.replace(b'"tools/call"', b'"tools/list"')),
        ({**headers, "MCP-Protocol-Version": "1999-01-01"}, body),
        ({**headers, "Content-Type": "text/plain"}, body),
        ({**headers, "Content-Type": "Application/JSON"}, body),  # the SDK's test is case-sensitive: 415
        ({**headers, "Accept": "text/event-stream"}, body),
        (request("status", {}, MODERN)[0] | {"Mcp-Name": "inbox"}, request("status", {}, MODERN)[1]),
        (request("inbox", {"limit": 3}, MODERN)[0] | {"Mcp-Param-Limit": "3"},
         request("inbox", {"limit": 3}, MODERN)[1]),
    ]
    for case_headers, case_body in cases:
        before = direct(mcp_hub).answered
        fast = await post(mcp_hub, token, case_headers, case_body)
        assert direct(mcp_hub).answered == before
        with sdk_only(mcp_hub):
            slow = await post(mcp_hub, token, case_headers, case_body)
        assert fast.status_code == slow.status_code, case_body
        if slow.headers.get("content-type", "").startswith("application/json"):
            assert fast.json() == slow.json()


def authentications(hub: McpHub, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The ``Authorization`` value of each authentication the hub makes from here on (appended as they happen)."""
    auth = hub.app.state.auth
    seen: list[str | None] = []
    authenticate = auth.authenticate_keyed  # what the gate and the routes call (the actor and its rate-limit key)

    async def counted(authorization: str | None, *args: Any, **kwargs: Any) -> Any:
        seen.append(authorization)
        return await authenticate(authorization, *args, **kwargs)

    monkeypatch.setattr(auth, "authenticate_keyed", counted)
    return seen


async def test_each_request_is_authenticated_once_whichever_path_answers_it(mcp_hub: McpHub,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's Door asks the gate for a direct answer first and runs it the ASGI way only when it gives none: a
    request the SDK answers must not be authenticated (and counted against the caller's rate limit) twice."""
    token = await mcp_hub.token(A)
    seen = authentications(mcp_hub, monkeypatch)
    plain = request("status", {}, LEGACY)
    listing = (plain[0], plain[1].replace(b'"tools/call"', b'"tools/list"'))
    for (headers, body), direct_answers in ((plain, 1), (listing, 0)):
        seen.clear()
        before = direct(mcp_hub).answered
        answer = await post(mcp_hub, token, headers, body)
        assert answer.status_code == 200, answer.text
        assert direct(mcp_hub).answered == before + direct_answers
        assert seen == [f"Bearer {token}"], body


async def test_a_direct_calls_body_is_read_once(mcp_hub: McpHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The door reads the body's JSON once and the direct call takes that value (issue 15: ``/mcp`` bodies were
    parsed twice); a body the door's fast check does not clear is still read and answered."""
    import orjson

    from coordhub.api import inputs
    from coordhub.strictjson import plain

    token = await mcp_hub.token(A)
    headers, body = request("presence", {}, LEGACY)
    reads: list[bytes] = []
    loads = orjson.loads

    def counted(data: Any) -> Any:
        if data == body:
            reads.append(data)
        return loads(data)

    monkeypatch.setattr(inputs.orjson, "loads", counted)
    before = direct(mcp_hub).answered
    answer = await post(mcp_hub, token, headers, body)
    assert answer.status_code == 200, answer.text
    assert direct(mcp_hub).answered == before + 1
    assert len(reads) == 1
    spaced = body.replace(b'"2.0",', b'"2.0" ,')  # a value's quote before a space: the fast check cannot clear it
    assert not plain(spaced, orjson.loads(spaced))
    answer = await post(mcp_hub, token, headers, spaced)
    assert answer.status_code == 200, answer.text
    assert direct(mcp_hub).answered == before + 2


def test_the_version_cache_keeps_no_long_header_values() -> None:
    """The served-version verdict is cached by the headers' values only when they are short: a token holder
    sending long, ever-different ``Accept`` headers must not make the hub keep them (64 × 4 MB did, before)."""
    from mcp_types import DEFAULT_NEGOTIATED_VERSION

    from coordhub.mcp import direct as module

    module._cached_version.cache_clear()
    long = [(b"content-type", b"application/json"), (b"accept", b"application/json, " + b"x" * 100_000)]
    short = [(b"content-type", b"application/json"), (b"accept", b"application/json")]
    for _ in range(2):
        assert DirectCalls._version(long) == DEFAULT_NEGOTIATED_VERSION
        assert DirectCalls._version(short) == DEFAULT_NEGOTIATED_VERSION
    info = module._cached_version.cache_info()
    assert (info.currsize, info.hits) == (1, 1)


async def test_the_gate_run_as_its_route_answers_both_ways_authenticating_once(mcp_hub: McpHub,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A request under a root path takes ``/mcp``'s route, which runs the gate as a plain ASGI endpoint (no door
    asked it to respond first): a plain ``tools/call`` still gets the direct answer, anything else the SDK's, each
    authenticated once."""
    token = await mcp_hub.token(A)
    seen = authentications(mcp_hub, monkeypatch)
    headers, body = request("status", {}, LEGACY)
    raw = [(k.lower().encode(), v.encode()) for k, v in {**headers, "Authorization": f"Bearer {token}"}.items()]
    for call, direct_answers in ((body, 1), (body.replace(b'"tools/call"', b'"tools/list"'), 0)):
        scope = {"type": "http", "method": "POST", "path": PATH, "raw_path": PATH.encode(), "root_path": "",
                 "query_string": b"", "headers": raw, "client": ("127.0.0.1", 1), "scheme": "http",
                 "server": ("127.0.0.1", 80), "http_version": "1.1", "asgi": {"version": "3.0"}, "app": mcp_hub.app}
        sent: list[Any] = []
        messages = [{"type": "http.request", "body": call, "more_body": False}]

        async def receive(messages: list[dict[str, Any]] = messages) -> dict[str, Any]:
            if not messages:
                await asyncio.sleep(3600)  # the client stays until the answer is sent
            return messages.pop()

        seen.clear()
        before = direct(mcp_hub).answered
        await _gate(mcp_hub)(scope, receive, lambda message, sent=sent: _append(sent, message))
        assert sent[0]["status"] == 200, sent
        assert json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["result"]
        assert direct(mcp_hub).answered == before + direct_answers
        assert seen == [f"Bearer {token}"]


async def _append(sent: list[Any], message: Any) -> None:
    sent.append(message)


async def test_a_direct_answer_on_a_real_server_is_one_write_counted_as_what_it_answered(
        served_hub: McpHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """On uvicorn the door writes a plain ``tools/call``'s answer itself, in one write, and counts it by its
    status; it does not hand it to the ASGI ``send`` that holds and joins messages (``wire.coalescing``)."""
    # uvicorn logs access (and writes answers the ASGI way) while its logger has handlers: pytest's capture
    # gives it some during a test; `coord serve` runs without
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "handlers", [])
    token = await served_hub.token(A)
    headers, body = request("status", {}, LEGACY)
    client = httpx2.AsyncClient(base_url=served_hub.url, headers={**headers, "Authorization": f"Bearer {token}"})
    async with client:
        assert (await client.post(PATH, content=body)).status_code == 200  # /mcp loads at its first request
        await answered_as_one_write(served_hub, client, body, monkeypatch)


async def answered_as_one_write(served_hub: McpHub, client: httpx2.AsyncClient, body: bytes,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Post ``body`` (a plain ``tools/call``) once more, noting what the door coalesced and counted."""
    from coordhub.api import wire
    from coordhub.api.metrics import RequestTimes

    coalesced: list[object] = []
    joining = wire.coalescing

    def counted(send: Any, method: str) -> Any:
        coalesced.append(send)
        return joining(send, method)

    monkeypatch.setattr(wire, "coalescing", counted)
    answered: list[tuple[str, int]] = []
    count = RequestTimes.count

    def noted(self: RequestTimes, route: str, method: str, status: int, seconds: float) -> None:
        answered.append((route, status))
        count(self, route, method, status, seconds)

    monkeypatch.setattr(RequestTimes, "count", noted)
    before = direct(served_hub).answered
    answer = await client.post(PATH, content=body)
    assert answer.status_code == 200 and answer.json()["result"]["isError"] is False
    assert direct(served_hub).answered == before + 1
    assert coalesced == []
    assert answered == [(PATH, 200)]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_clients_take_the_direct_path(mcp_hub: McpHub, mode: str) -> None:
    async with mcp_hub.client(A, mode) as a:
        before = direct(mcp_hub).answered
        assert ok(await a.call_tool("status", {}))["session_id"] == A
        assert ok(await a.call_tool("send_message", {"to": B, "subject": "hi"}))["from_session"] == A
        assert direct(mcp_hub).answered == before + 2


@pytest.mark.parametrize("version", [LEGACY, MODERN])
async def test_a_halted_hub_refuses_a_direct_write(mcp_hub: McpHub, version: str) -> None:
    tokens = [await mcp_hub.token(A), await mcp_hub.token(B)]  # minted before the halt
    await mcp_hub.rest("POST", "/api/coord/halt", json={"reason": "bad deploy"})
    headers, body = request("send_message", {"to": B, "subject": "during the halt"}, version)
    answer = (await post(mcp_hub, tokens[0], headers, body)).json()["result"]
    assert answer["isError"] is True
    text = answer["content"][0]["text"]
    assert "halted: " in text and "bad deploy" in text and "\n" not in text
    box = await mcp_hub.rest("GET", "/api/coord/messages", tokens[1], params={"unread_only": "false"})
    assert box == []


async def test_concurrent_callers_act_as_themselves(mcp_hub: McpHub) -> None:
    """The direct path is shared by every caller: each call acts as its own token's session, never another's."""
    tokens = {A: await mcp_hub.token(A), B: await mcp_hub.token(B)}

    async def send(me: str, peer: str, n: int) -> dict[str, Any]:
        headers, body = request("send_message", {"to": peer, "subject": f"{me} {n}"}, LEGACY)
        answer = (await post(mcp_hub, tokens[me], headers, body)).json()["result"]
        assert not answer.get("isError"), answer
        return dict(answer["structuredContent"])

    sent = await asyncio.gather(*(send(me, peer, n) for n in range(10) for me, peer in ((A, B), (B, A))))
    assert all(m["from_session"] == m["subject"].rsplit(" ", 1)[0] for m in sent)
    assert sorted(m["from_session"] for m in sent) == [A] * 10 + [B] * 10


async def test_validation_errors_are_one_line_tool_errors(mcp_hub: McpHub) -> None:
    async with mcp_hub.client(A) as a:
        before = direct(mcp_hub).answered
        text = error(await a.call_tool("send_message", {"to": 3, "subject": "x"}))
        assert text == "Error executing tool send_message: invalid: to: Input should be a valid string"
        text = error(await a.call_tool("send_message", {"to": B, "subject": "s" * 501}))  # the REST 422
        assert text.startswith("Error executing tool send_message: invalid: ") and "subject" in text
        assert "\n" not in text
        assert direct(mcp_hub).answered == before + 2


async def test_an_inner_request_cannot_be_forged_from_outside(mcp_hub: McpHub) -> None:
    """Only the app marks a request as the hub's own: no header makes an outside request skip the browser guard
    or act without its token."""
    token = await mcp_hub.token(A)
    forged = {"coordhub.inner_request": "1", "coordhub-inner-request": "true", "X-Coord-Inner": "1"}
    async with mcp_hub.http({**forged, "Authorization": f"Bearer {token}", "Origin": "http://evil.example"}) as h:
        r = await h.post("/api/coord/messages", json={"to_session": B, "subject": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    async with mcp_hub.http(forged) as h:
        r = await h.post("/api/coord/messages", json={"to_session": B, "subject": "x"})
    assert r.status_code == 401
    headers, body = request("send_message", {"to": B, "subject": "x"}, LEGACY)
    async with mcp_hub.http({**headers, **forged}) as h:
        r = await h.post(PATH, content=body)
    assert r.status_code == 401
    box = await mcp_hub.rest("GET", "/api/coord/messages", await mcp_hub.token(B), params={"unread_only": "false"})
    assert box == []


async def test_a_tools_rest_request_goes_straight_to_the_door_under_the_rest_rules(
        mcp_hub: McpHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the app has served a request, a tool's REST request is handed to its Door, not through FastAPI's
    entry again: a lean route's answer is taken from its endpoint (``Door.local``), anything else goes the ASGI
    way (``Door.inner``). The rules still apply: a NUL in a tool's text is refused as the REST API refuses it
    (the local way declines it, the ASGI way words the refusal), and nothing is stored."""
    token = await mcp_hub.token(A)
    seen: list[tuple[str, str, str, bool]] = []
    door_inner, door_local = Door.inner, Door.local

    async def inner(self: Door, scope: dict[str, Any], body: bytes, receive: Any, send: Any) -> None:
        await door_inner(self, scope, body, receive, send)
        seen.append(("inner", scope["method"], scope["path"], scope["coordhub.inner_request"]))

    async def local(self: Door, scope: dict[str, Any], body: bytes, **given: Any) -> Any:
        answer = await door_local(self, scope, body, **given)
        seen.append(("local" if answer is not None else "declined", scope["method"], scope["path"],
                     scope["coordhub.inner_request"]))
        return answer

    monkeypatch.setattr(Door, "inner", inner)
    monkeypatch.setattr(Door, "local", local)
    headers, body = request("list_leases", {"project_key": "p"}, LEGACY)
    assert (await post(mcp_hub, token, headers, body)).json()["result"]["structuredContent"]["leases"] == []
    headers, body = request("send_message", {"to": B, "subject": "a\x00b"}, LEGACY)
    answer = (await post(mcp_hub, token, headers, body)).json()["result"]
    assert answer["isError"] is True
    assert answer["content"][0]["text"] == ("Error executing tool send_message: invalid: body.subject must not "
                                           "contain NUL characters")
    assert seen == [("local", "GET", "/api/coord/locks", True), ("declined", "POST", "/api/coord/messages", True),
                    ("inner", "POST", "/api/coord/messages", True)]
    box = await mcp_hub.rest("GET", "/api/coord/messages", await mcp_hub.token(B), params={"unread_only": "false"})
    assert box == []


async def test_the_doors_inner_way_keeps_the_body_limit_and_drops_empty_query_values(mcp_hub: McpHub) -> None:
    """``Door.inner`` answers as the whole way in would: 413 past the body limit, empty query values ignored."""
    token = await mcp_hub.token(A)
    door = inner_door(mcp_hub.app)
    assert door is not None
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")]

    async def call(method: str, path: str, query: bytes, body: bytes) -> tuple[int, bytes]:
        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": query, "headers": headers, "client": ("127.0.0.1", 0), "scheme": "http",
                 "server": ("coordhub.internal", 80), "http_version": "1.1", "asgi": {"version": "3.0"}}
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await door.inner(scope, body, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    big = json.dumps({"to_session": B, "subject": "x", "body": "y" * door.max_body_bytes}).encode()
    status, answer = await call("POST", "/api/coord/messages", b"", big)
    assert status == 413 and json.loads(answer)["error"]["code"] == "payload_too_large"
    status, answer = await call("GET", "/api/coord/locks", b"project_key=&resource=", b"")
    whole = await asgi_request(mcp_hub.app, "GET", "/api/coord/locks", {"project_key": "", "resource": ""},
                               {"Authorization": f"Bearer {token}"}, b"")
    assert (status, json.loads(answer)) == (whole[0], json.loads(whole[1])) == (200, [])


ANSWERS = [
    {"leases": [{"id": "l-1", "holder": A, "description": None, "fence": 12, "expires_at": "2026-11-30T10:00:00Z",
                 "ratio": 0.1 + 0.2, "big": 2**70, "nested": {"empty": [], "none": None}}], "count": 1},
    {"text": "héllo ✓ \u2028 \"quoted\" \\ back", "flag": True, "zero": 0.0, "neg": -1e-300},
    {"single": None},
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_a_tools_result_is_the_sdks_conversion(answer: dict[str, Any]) -> None:
    """CoordTool converts a plain answer dict itself: the same CallToolResult as the SDK's convert_result."""
    from coordhub.mcp.server import profile_tools
    for tool in profile_tools("all").values():
        ours = tool._converted(dict(answer))  # type: ignore[attr-defined]
        assert ours == tool.fn_metadata.convert_result(dict(answer)), tool.name
        assert ours.structured_content is not None and ours.structured_content == answer


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", LEGACY, MODERN])
@pytest.mark.parametrize("answer", [*ANSWERS, None])
@pytest.mark.parametrize("is_error", [False, True])
def test_the_wire_shape_is_the_sdks_surface(answer: dict[str, Any] | None, version: str, is_error: bool) -> None:
    """The direct answer's result is the SDK surface's dump of the whole CallToolResult, at every version."""
    from mcp.types import CallToolResult, TextContent
    from mcp_types.methods import serialize_server_result

    from coordhub.mcp.direct import METHOD, _wire
    result = CallToolResult(content=[TextContent(type="text", text=json.dumps(answer) + " ✓")],
                            structured_content=answer, is_error=is_error)
    expected = serialize_server_result(METHOD, version, result.model_dump(by_alias=True, mode="json",
                                                                            exclude_none=True))
    assert json.dumps(_wire(version, result), sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert json.dumps(_wire(version, result), sort_keys=True) == json.dumps(expected, sort_keys=True)  # shape reused


@pytest.mark.parametrize("result", [["a", "b"], "plain text", 7, None, {1: "non-string key"}, {"k": (1, 2)}])
def test_any_other_result_is_converted_by_the_sdk(result: Any) -> None:
    """What is not a plain answer dict keeps the SDK's own conversion (a list, text, a number, odd keys); a dict
    with a value JSON has no type for is dumped on the wire as the SDK would have."""
    from coordhub.mcp.server import profile_tools
    tool = profile_tools("default")["list_leases"]
    try:
        expected: Any = tool.fn_metadata.convert_result(result)
    except Exception as exc:  # the SDK refuses it: so must we, with the same kind of error
        with pytest.raises(type(exc)):
            tool._converted(result)  # type: ignore[attr-defined]
        return
    ours = tool._converted(result)  # type: ignore[attr-defined]
    # the same on the wire (a tuple left in a dict answer is dumped as the list the SDK made of it)
    assert ours.model_dump(mode="json", by_alias=True) == expected.model_dump(mode="json", by_alias=True)


def _unusual_results() -> list[Any]:
    from mcp.types import Annotations, CallToolResult, ImageContent, TextContent
    text = TextContent(type="text", text="t")
    return [
        CallToolResult(content=[text, TextContent(type="text", text="second")], structured_content={"a": 1}),
        CallToolResult(content=[TextContent(type="text", text="t", annotations=Annotations(priority=0.5))]),
        CallToolResult(content=[TextContent(type="text", text="t", _meta={"k": "v"})]),
        CallToolResult(content=[text], structured_content={"a": 1}, _meta={"trace": "x"}),
        CallToolResult(content=[ImageContent(type="image", data="aGk=", mime_type="image/png")]),
        CallToolResult(content=[], is_error=True),
    ]


@pytest.mark.parametrize("version", ["2024-11-05", "2025-06-18", LEGACY, MODERN])
@pytest.mark.parametrize("index", range(6))
def test_an_unusual_result_is_shaped_by_the_sdks_surface(version: str, index: int) -> None:
    """Several blocks, annotations, _meta, an image, no block: the surface shapes them itself, unchanged."""
    from mcp_types.methods import serialize_server_result

    from coordhub.mcp.direct import METHOD, _wire
    result = _unusual_results()[index]
    expected = serialize_server_result(METHOD, version, result.model_dump(by_alias=True, mode="json",
                                                                            exclude_none=True))
    assert json.dumps(_wire(version, result), sort_keys=True) == json.dumps(expected, sort_keys=True)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(), lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(answer=st.dictionaries(st.text(max_size=5), _JSON_VALUES, max_size=5),
       big=st.one_of(st.none(), st.integers(2**64, 2**80)))
def test_a_plain_answers_text_block_is_the_sdks(answer: dict[str, Any], big: int | None) -> None:
    """The text block of a plain answer is the SDK's indented JSON of it, byte for byte (an integer past 64 bits,
    which orjson does not take, included)."""
    import pydantic_core

    from coordhub.mcp.server import CoordTool
    if big is not None:
        answer["big"] = [big]
    assert CoordTool.text(answer) == pydantic_core.to_json(answer, fallback=str, indent=2).decode()
