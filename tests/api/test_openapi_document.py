"""The OpenAPI document's error responses: each refers to the one envelope, which the document defines as FastAPI
would render it, and no route carries a validator per error code (a quarter of a hub's start-up, issue 15)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from coordhub.api.app import create_app
from coordhub.api.errors import ENVELOPE_REF, ErrorEnvelope, responses
from coordhub.core.hub import Hub
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import Api


def _document(tmp_path: Path) -> tuple[FastAPI, dict[str, Any]]:
    app = create_app(Hub(SQLiteStore(tmp_path / "unused.db")), sweep_seconds=0)
    return app, app.openapi()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_in_the_document_resolves(tmp_path: Path) -> None:
    _, doc = _document(tmp_path)
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert ENVELOPE_REF["$ref"] in refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


def test_every_error_response_is_the_envelope(tmp_path: Path) -> None:
    _, doc = _document(tmp_path)
    errors = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or (path, method, status) == ("/health", "get", "503"):
                    continue  # /health answers 503 with its own body, the checks that failed
                assert response["content"]["application/json"]["schema"] == ENVELOPE_REF, (method, path, status)
                errors += 1
    assert errors > 500


def test_the_envelope_is_defined_as_fastapi_renders_a_response_model(tmp_path: Path) -> None:
    _, doc = _document(tmp_path)
    reference = FastAPI()

    @reference.get("/x", responses={404: {"model": ErrorEnvelope, "description": "d"}})
    async def x() -> None:
        return None

    expected = reference.openapi()["components"]["schemas"]
    ours = doc["components"]["schemas"]
    assert {"ErrorEnvelope", "ErrorBody"} <= expected.keys()
    for name in expected:
        if name.startswith(("HTTPValidationError", "ValidationError")):
            continue  # FastAPI's own 422 body, which the hub's routes do not declare
        assert ours[name] == expected[name], name


def test_no_route_builds_a_validator_for_its_error_responses(tmp_path: Path) -> None:
    app, _ = _document(tmp_path)
    routes = [r for r in app.router.routes if isinstance(r, APIRoute) and r.responses]
    assert len(routes) > 100
    for route in routes:
        if route.path == "/health":
            continue  # its 503 is a HealthOut, declared as a model
        assert not route.response_fields, route.path  # FastAPI builds one per response declared with a "model"
    assert responses(404)[404]["content"]["application/json"]["schema"] == ENVELOPE_REF


def test_the_document_is_built_off_the_event_loop(api: Api) -> None:
    """Building the document takes ~1 s of CPU (seconds on a loaded machine): a request for it must not hold up
    the hub's other requests meanwhile (FastAPI's own route built it on the event loop). The build here waits
    until the test has seen another request answered."""
    app = api.client.app
    entered, release = threading.Event(), threading.Event()
    build = app.openapi

    def slow_build() -> dict[str, Any]:
        entered.set()
        release.wait(30)
        return build()

    app.openapi = slow_build
    answers: dict[str, int] = {}

    def get(path: str) -> None:
        answers[path] = api.get(path).status_code

    document = threading.Thread(target=get, args=("/openapi.json",))
    document.start()
    try:
        assert entered.wait(30)
        health = threading.Thread(target=get, args=("/health",))
        health.start()
        health.join(10)
        assert answers.get("/health") == 200, "the hub stopped answering while the document was built"
    finally:
        release.set()
        document.join(30)
    assert answers["/openapi.json"] == 200
    assert api.get("/openapi.json").json()["info"]["title"] == "coordhub"  # kept, served again
