"""The OpenAPI document's error responses: each refers to the one envelope, which the document defines as FastAPI
would render it, and no route carries a validator per error code (a quarter of a hub's start-up, issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from coordhub.api.app import create_app
from coordhub.api.errors import ENVELOPE_REF, ErrorEnvelope, responses
from coordhub.core.hub import Hub
from coordhub.store.sqlite import SQLiteStore


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
