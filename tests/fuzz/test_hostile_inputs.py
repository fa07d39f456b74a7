"""The hostile-input classes of issue 8 in every parameter location of every operation, on both backends.

Schemathesis (``test_openapi.py``) draws values from the declared schemas, and
the JSON encoder it uses cannot even produce some of these; this sweep sends
them raw: integers over 4,300 digits, NUL, lone surrogates, NaN/Infinity and
deep nesting, in each path parameter, each query parameter and each
top-level body field of every operation in the OpenAPI document. Every
answer must be a status the document declares, never a 5xx, in the one
error envelope, and a refused request must leave the event log untouched.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Api

# in a URL: as a client would percent-encode them (a lone surrogate as its CESU-8 bytes)
URL_VALUES = {"huge-int": "1" * 5000, "nul": "%00", "surrogate": "%ED%A0%80", "nan": "NaN", "infinity": "-Infinity",
              "deep": quote("[" * 2000)}
# in a JSON body: raw literals
JSON_VALUES = {"huge-int": "1" * 5000, "nul": '"a\\u0000b"', "surrogate": '"\\udc00"', "nan": "NaN",
               "infinity": "Infinity", "overflow": "1e400", "deep": "[" * 2000 + "]" * 2000,
               "deep-object": '{"a":' * 1000 + "1" + "}" * 1000}
SSE = ("GET", "/api/coord/events")  # an endless stream: covered in tests/abuse


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _cases(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, target, where, request kwargs) for every operation × location × hostile value."""
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if (method.upper(), path) == SSE:
                continue
            params = op.get("parameters", [])
            plain = path
            for p in params:
                if p["in"] == "path":
                    plain = plain.replace("{" + p["name"] + "}", "x").replace("{" + p["name"] + ":path}", "x")
            for p in params:
                for label, value in URL_VALUES.items():
                    if p["in"] == "path":
                        target = path.replace("{" + p["name"] + "}", value).replace("{" + p["name"] + ":path}", value)
                        target = target.replace("{", "").replace("}", "")
                        out.append((method.upper(), target, f"path {p['name']} {label}", {}))
                    elif p["in"] == "query":
                        out.append((method.upper(), f"{plain}?{p['name']}={value}", f"query {p['name']} {label}", {}))
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            fields = _resolve(spec, body["schema"]).get("properties", {}) or {"x": {}}
            for name in fields:
                for label, literal in JSON_VALUES.items():
                    raw = ('{"' + name + '": ' + literal + "}").encode()
                    out.append((method.upper(), plain, f"body {name} {label}",
                                {"content": raw, "headers": {"content-type": "application/json"}}))
    return out


def test_every_location_refuses_every_hostile_value_without_a_500(api: Api) -> None:
    me = api.token("FUZZ/claude-main")
    spec = api.get("/openapi.json").json()
    cases = _cases(spec)
    assert len(cases) > 300  # the sweep really covers the API
    failures = []
    for method, target, where, kw in cases:
        before = api.hub.query_sync(lambda tx, now: tx.events.last_id())
        headers = {**me, **kw.pop("headers", {})}
        r = api.request(method, target, headers=headers, **kw)
        path = target.split("?")[0]
        # the route the router picks: a literal segment wins over a parameter (`/merges/next` over `/merges/{id}`)
        routes = [p for p in spec["paths"] if _matches(p, path) and method.lower() in spec["paths"][p]]
        template = min(routes, key=lambda p: p.count("{"), default=None)
        declared = spec["paths"][template][method.lower()]["responses"] if template else {}
        if r.status_code >= 500 or (template and str(r.status_code) not in declared):
            failures.append((method, target[:80], where, r.status_code, r.text[:200]))
        elif r.status_code >= 400:
            body = r.json()
            if body.get("detail") != body.get("error", {}).get("message"):
                failures.append((method, target[:80], where, "not the envelope", r.text[:200]))
            if api.hub.query_sync(lambda tx, now: tx.events.last_id()) != before:
                failures.append((method, target[:80], where, "refused but wrote", r.status_code))
    assert not failures, (len(failures), failures[:10])


def _matches(template: str, path: str) -> bool:
    a, b = template.strip("/").split("/"), path.strip("/").split("/")
    if template.endswith(":path}"):
        return b[:len(a) - 1] == a[:-1]
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("literal", list(JSON_VALUES.values()), ids=list(JSON_VALUES))
def test_mcp_refuses_hostile_json_without_a_500(api: Api, literal: str) -> None:
    raw = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": ' + literal + "}}").encode()
    r = api.post("/mcp", content=raw, headers={**api.token("FUZZ/mcp"), "content-type": "application/json",
                                                "accept": "application/json, text/event-stream"})
    assert r.status_code < 500, r.text[:300]
