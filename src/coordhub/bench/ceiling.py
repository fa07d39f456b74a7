"""The ceiling: the hub's hot endpoints on the same stack, in memory, without auth or durability.

Same FastAPI and uvicorn, same request models (so the same validation work),
same paths and response shapes; state lives in dicts. Whatever the hub does
beyond this — authentication, the store, idempotency, events, fsync — is what
a ratio "hub ÷ ceiling" measures. Run: ``python -m coordhub.bench.ceiling PORT``.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from coordhub.api.schemas import LockClaim, MessageSend


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
        lease: dict[str, Any] = {"id": str(uuid.uuid4()), "fence": counter[0], "project_key": body.project_key,
                 "resource": body.resource, "session_id": request.headers.get("authorization", ""),
                 "description": body.description, "ttl_hours": body.ttl_hours, "acquired_at": time.time(),
                 "state": "active"}
        leases[lease["id"]] = lease
        held[key] = lease["id"]
        return JSONResponse(lease, status_code=201)

    @app.delete("/api/coord/locks/{lease_id}")
    async def release(lease_id: uuid.UUID) -> JSONResponse:
        lease = leases.pop(str(lease_id), None)
        if lease is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no lease"}}, status_code=404)
        held.pop((lease["project_key"], lease["resource"]), None)
        return JSONResponse({**lease, "state": "released"})

    @app.post("/api/coord/messages", status_code=201)
    async def send(body: MessageSend, request: Request) -> JSONResponse:
        counter[0] += 1
        msg = {"id": str(uuid.uuid4()), "seq": counter[0], "from_session": request.headers.get("authorization", ""),
               "to_session": body.to_session, "subject": body.subject, "body": body.body, "created_at": time.time(),
               "read": False}
        inbox.setdefault(body.to_session or "*", []).append(msg)
        return JSONResponse(msg, status_code=201)

    @app.get("/api/coord/messages")
    async def unread(to_session: str = "*") -> JSONResponse:
        return JSONResponse([m for m in inbox.get(to_session, [])[-100:] if not m["read"]])

    return app


def main() -> None:
    """Serve the ceiling on ``argv[1]`` (port) with the hub's uvicorn settings."""
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
