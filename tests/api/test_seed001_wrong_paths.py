"""What a newcomer from seed 001 meets at a path or method the hub does not serve.

Seed 001's API served its OpenAPI page at ``/api/docs``; the hub serves none (docs/api.md) and answered a bare
``no endpoint for GET /api/docs``. A method a path does not take (``GET /api/coord/work-items``, as one would list
a workflow's items) answered ``Method Not Allowed`` without saying which it takes; the ``Allow`` header did.
"""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.mark.parametrize("path", ["/api/docs", "/docs", "/redoc", "/api/openapi.json"])
def test_a_docs_page_path_points_at_the_openapi_document(api: Api, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["message"] == (f"no endpoint for GET {path}: the hub serves no docs page; its OpenAPI "
                                            "document is /openapi.json (load it into any OpenAPI viewer)")
    assert api.get("/openapi.json").status_code == 200


def test_a_method_a_path_does_not_take_names_the_ones_it_takes(api: Api) -> None:
    me = api.token("HOWARD-HOME/claude-main")
    r = api.get("/api/coord/work-items", params={"workflow_id": "x"}, headers=me)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"] == {"code": "method_not_allowed",
                                 "message": "GET is not served at /api/coord/work-items: it takes POST"}
    r = api.post("/api/coord/status", headers=me)
    assert r.status_code == 405 and r.json()["error"]["message"] == (
        "POST is not served at /api/coord/status: it takes GET")
