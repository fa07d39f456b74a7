"""The ceiling: the hub's hot endpoints on the same stack, in memory, without auth or durability.

Same FastAPI and uvicorn, same request models (so the same validation work),
same paths and response shapes; state lives in dicts. ``/mcp`` is the same MCP
SDK server the hub mounts (stateless, JSON responses) with the two tools the
``mcp`` scenario calls, answered from the same dicts. ``GET /api/coord/events``
is a bare SSE stream (no filters, no cursor, no catch-up) and a send writes its
frame to every open stream before it answers, one ASGI ``send`` after another:
the plainest fan-out the stack allows, the push scenario's ceiling. Whatever
the hub does beyond this — authentication, the store, idempotency, events,
fsync — is what a ratio "hub ÷ ceiling" measures. Run: ``python -m
coordhub.bench.ceiling PORT``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from coordhub.api.conversation_schemas import ProfileSet, TurnSend
from coordhub.api.message_schemas import MessageSend
from coordhub.api.schemas import LockClaim
from coordhub.core import turns
from coordhub.ids import new_id


def create_app() -> FastAPI:
    """The in-memory app."""
    app = FastAPI(title="coordhub ceiling")
    leases: dict[str, dict[str, Any]] = {}
    held: dict[tuple[str, str], str] = {}
    inbox: dict[str, list[dict[str, Any]]] = {}
    counter = [0]

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "database": "none", "backend": "memory", "durability": "none"})

    @app.post("/api/coord/locks", status_code=201)
    async def claim(body: LockClaim, request: Request) -> JSONResponse:
        key = (body.project_key, body.resource)
        if key in held:
            return JSONResponse({"error": {"code": "lease_conflict", "message": "held"}}, status_code=409)
        counter[0] += 1
        lease: dict[str, Any] = {"id": new_id(), "fence": counter[0], "project_key": body.project_key,
                 "resource": body.resource, "session_id": request.headers.get("authorization", ""),
                 "description": body.description, "ttl_hours": body.ttl_hours, "acquired_at": time.time(),
                 "state": "active"}
        leases[lease["id"]] = lease
        held[key] = lease["id"]
        return JSONResponse(lease, status_code=201)

    @app.get("/api/coord/locks")
    async def live(session_id: str | None = None) -> JSONResponse:
        return JSONResponse([x for x in leases.values() if session_id is None or x["session_id"] == session_id])

    @app.delete("/api/coord/locks/{lease_id}")
    async def release(lease_id: uuid.UUID) -> JSONResponse:
        lease = leases.pop(str(lease_id), None)
        if lease is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no lease"}}, status_code=404)
        held.pop((lease["project_key"], lease["resource"]), None)
        return JSONResponse({**lease, "state": "released"})

    def remember(sender: str, to_session: str | None, subject: str, text: str) -> dict[str, Any]:
        counter[0] += 1
        msg = {"id": new_id(), "seq": counter[0], "from_session": sender, "to_session": to_session,
               "subject": subject, "body": text, "created_at": time.time(), "read": False}
        inbox.setdefault(to_session or "*", []).append(msg)
        return msg

    streams = _mount_events(app)

    @app.post("/api/coord/messages", status_code=201)
    async def send(body: MessageSend, request: Request) -> JSONResponse:
        msg = remember(request.headers.get("authorization", ""), body.to_session, body.subject, body.body)
        if streams:
            event = {"id": msg["seq"], "kind": "message.sent", "payload": msg}
            frame = f"id: {msg['seq']}\nevent: message.sent\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
            chunk = {"type": "http.response.body", "body": frame.encode(), "more_body": True}
            for out in list(streams):
                try:
                    await out(chunk)
                except OSError:  # that stream's client is gone; its own task ends it
                    streams.discard(out)
        return JSONResponse(msg, status_code=201)

    @app.get("/api/coord/messages")
    async def unread(to_session: str = "*", limit: int = 50) -> JSONResponse:
        return JSONResponse([m for m in inbox.get(to_session, [])[:limit] if not m["read"]])

    sequences: dict[str, int] = {}

    @app.put("/api/coord/conversations/profile")
    async def profile(body: ProfileSet) -> JSONResponse:
        return JSONResponse({"machine": body.machine, "project": body.project, "tools": body.tools or []})

    @app.post("/api/coord/conversations/turns", status_code=201)
    async def turn(body: TurnSend, request: Request) -> JSONResponse:
        # the same parsing and checks as the hub's (the draft), the sequence from a dict
        d = turns.draft(to=body.to, content=body.content, conversation_id=body.conversation_id,
                        type=body.type, title=body.title, body=body.body, now=time.time())
        seq = sequences[d.turn.conversation_id] = sequences.get(d.turn.conversation_id, 0) + 1
        counter[0] += 1
        return JSONResponse({"id": counter[0], "conversation_id": d.turn.conversation_id, "sequence": seq,
                             "type": d.turn.type, "to": body.to, "content": d.content,
                             "content_sha256": d.turn.sha256(), "decision": "process"}, status_code=201)

    _mount_mcp(app, leases, remember)
    return app


def _mount_events(app: FastAPI) -> set[Send]:
    """``GET /api/coord/events`` as a bare SSE stream: headers and ``: connected``, then whatever a send writes
    to it (every event, unfiltered) until the client goes. Returns the live streams' ASGI ``send`` callables."""
    from starlette.routing import Route

    streams: set[Send] = set()

    class Events:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
            await send({"type": "http.response.body", "body": b": connected\n\n", "more_body": True})
            streams.add(send)
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
            finally:
                streams.discard(send)

    app.router.routes.insert(0, Route("/api/coord/events", endpoint=Events(), methods=["GET"]))
    return streams


def _mount_mcp(app: FastAPI, leases: dict[str, dict[str, Any]],
               remember: Callable[[str, str | None, str, str], dict[str, Any]]) -> None:
    """``/mcp`` as the hub serves it (the same SDK server, stateless, JSON responses) with the two tools the
    ``mcp`` scenario calls answered from memory: what is left is the MCP stack's own cost."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.tools import Tool
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import Route

    async def list_leases(project_key: str | None = None, resource: str | None = None,
                          session_id: str | None = None) -> dict[str, Any]:
        """Live leases."""
        found = [x for x in leases.values() if session_id is None or x["session_id"] == session_id]
        return {"leases": found, "count": len(found)}

    async def send_message(to: str, subject: str, body: str = "") -> dict[str, Any]:
        """Send a message from your session."""
        return remember("mcp", None if to == "all" else to, subject, body)

    server = MCPServer("ceiling", tools=[Tool.from_function(f, structured_output=True)
                                         for f in (list_leases, send_message)], log_level="WARNING")
    endpoint = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True,
                                          transport_security=TransportSecuritySettings(
                                              enable_dns_rebinding_protection=False))
    app.router.routes.insert(0, Route("/mcp", endpoint=endpoint))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state, server.session_manager.run():
            yield state

    app.router.lifespan_context = lifespan


def main() -> None:
    """Serve the ceiling on ``argv[1]`` (port) with the hub's uvicorn settings."""
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
