"""Bad input anywhere gets one error envelope, a declared 4xx, and changes nothing (contract §2.10)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Api

BAD_BODIES: list[Any] = [None, {}, [], "x", 1, {"unknown_field": 1}, {"project_key": 5, "resource": ["x"]},
                         {"subject": "\x00"}, {"text": "a" * 10, "auto": "yes"}, {"ttl_hours": -1}]
BAD_RAW = [b"{not json", b"\xff\xfe\x00garbage", b'{"a": 1} trailing', b"[" * 5000]
IDS = ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "'; DROP TABLE leases; --", "%00", "x" * 300,
       "3521460477267071873293420832227328", "-1"]  # integers past 64 bits, and below 1, for numeric ids


def _operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    spec = api.get("/openapi.json").json()
    return [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def _concrete(path: str, ident: str) -> str:
    """``path`` with every parameter (``{lease_id}``, ``{name:path}``, … whatever routes are added) set to ``ident``."""
    return re.sub(r"\{[^}]+\}", lambda _: ident, path)


def _assert_envelope(r: Any, declared: dict[str, Any], where: str) -> None:
    assert r.status_code < 500, (where, r.status_code, r.text)
    assert str(r.status_code) in declared, (where, r.status_code, sorted(declared), r.text)
    if r.status_code >= 400:
        body = r.json()
        assert set(body) >= {"error", "detail"}, (where, body)
        assert body["error"]["code"] and body["error"]["message"] == body["detail"], (where, body)


def test_bad_input_everywhere_is_a_declared_4xx_envelope_and_writes_nothing(api: Api) -> None:
    me = api.token("HOWARD-HOME/claude-main")
    last = api.hub.query_sync(lambda tx, now: tx.events.last_id())  # the log's end before the next request

    def send(method: str, target: str, declared: dict[str, Any], where: str, **kw: Any) -> None:
        nonlocal last
        r = api.request(method, target, headers={**me, **kw.pop("headers", {})}, **kw)
        _assert_envelope(r, declared, where)
        end = api.hub.query_sync(lambda tx, now: tx.events.last_id())
        if r.status_code >= 400:  # refused: nothing may have been written
            assert end == last, where
        last = end

    for method, path, op in _operations(api):
        if (method, path) == ("GET", "/api/coord/events"):
            continue  # an endless SSE stream; its bad input is checked in tests/api/test_events.py
        declared = op["responses"]
        for target in dict.fromkeys(_concrete(path, ident) for ident in IDS):  # once for a path with no parameter
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                for body in BAD_BODIES:
                    send(method, target, declared, f"{method} {target} {body!r}", json=body)
                for raw in BAD_RAW:
                    send(method, target, declared, f"{method} {target} raw", content=raw,
                         headers={"content-type": "application/json"})
            else:
                for params in ({"timeout": "0"}, {"limit": "x", "fence": "-3", "unread_only": "maybe",
                                                  "status": "weird", "timeout": "0"},
                               {"fence": "99999999999999999999999", "timeout": "0"}, {"timeout": "-1"}):
                    send(method, target, declared, f"{method} {target} {params}", params=params)


def test_oversized_body_is_413(api: Api) -> None:
    me = api.token("A/b")
    big = b'{"subject": "s", "body": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    r = api.post("/api/coord/messages", content=big, headers={**me, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_messages_say_what_is_wrong(api: Api) -> None:
    me = api.token("A/b")
    r = api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "colour": "red"}, headers=me)
    assert r.status_code == 422 and "unknown field 'colour'" in r.json()["detail"]
    r = api.post("/api/coord/locks", json={"resource": "x"}, headers=me)
    assert r.status_code == 422 and "missing field 'project_key'" in r.json()["detail"]
    r = api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "ttl_hours": "2"}, headers=me)
    assert r.status_code == 422 and "ttl_hours" in r.json()["detail"]
    r = api.post("/api/coord/locks", content=b"\xff", headers={**me, "content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    r = api.post("/api/coord/locks", content=b"{", headers={**me, "content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = api.get("/api/coord/locks/abc", headers=me)
    assert r.status_code == 422 and "lease_id" in r.json()["detail"]


def test_unknown_route_and_method_use_the_envelope(api: Api) -> None:
    me = api.token("A/b")
    r = api.get("/api/coord/nope", headers=me)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.request("PATCH", "/api/coord/status", headers=me)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("resource", ["", "a\x00b", "x" * 2000])
def test_bad_resource(api: Api, resource: str) -> None:
    me = api.token("A/b")
    r = api.post("/api/coord/locks", json={"project_key": "p", "resource": resource}, headers=me)
    assert r.status_code == 422
