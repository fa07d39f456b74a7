"""Issue 15: the door judges a body orjson reads by counting its keys (``strictjson.plain``), not by reading them.

A wrong shortcut here would let a key named twice through (a proxy judging
the first value, the hub acting on the last). So every body crafted to make a
cheap count read "unique" (whitespace or an escape before the colon, a key
spelt with an escape, a string holding ``":``, a repeat in a nested object or
in an array's object, UTF-16) is refused at the door, on the hot routes, a
FastAPI route and ``/mcp``; and over generated bodies the door's verdict is
the exact one: Python's parser with a hook that sees every key.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coordhub import strictjson
from coordhub.api import inputs
from coordhub.jsonkeys import DuplicateKey, unique_keys
from tests.conftest import Api

_SCOPE = {"type": "http", "path": "/api/coord/messages", "query_string": b""}


def _named_twice(body: bytes) -> bool:
    """The exact verdict: whether an object of ``body`` names a key twice, every key seen by the hook."""
    try:
        json.loads(body, object_pairs_hook=unique_keys)
    except DuplicateKey:
        return True
    return False


def _door(body: bytes) -> int | None:
    refused = inputs.refusal(dict(_SCOPE), body, b"application/json")
    return None if refused is None else refused.status_code


# Generated JSON texts: keys from a tiny alphabet (so repeats are common) holding the characters a text scan
# trips on, each character maybe spelt as an escape; whitespace of every JSON kind around colons and commas.
_ws = st.sampled_from(["", "", " ", "\n", "\t", "\r", " \n "])
_chars = st.sampled_from(["a", "b", ":", '"', "\\", " ", "é", "{", "["])


@st.composite
def _string(draw: Any) -> str:
    text = draw(st.text(_chars, max_size=2))
    spelt = []
    for char in text:
        plain = json.dumps(char, ensure_ascii=False)[1:-1]
        spelt.append(draw(st.sampled_from([plain, f"\\u{ord(char):04x}", f"\\u{ord(char):04X}"])))
    return '"' + "".join(spelt) + '"'


def _object(members: list[tuple[str, str, str, str]]) -> str:
    return "{" + ",".join(f"{before}{key}{after}:{space}{value}" for key, before, after, space, value in
                          members) + "}"


_scalars = st.one_of(_string(), st.sampled_from(["1", "-2.5", "true", "null", '":"', '"\\":"', '"a\\" :"']))
_texts = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(st.tuples(_ws, inner, _ws), max_size=3).map(
            lambda items: "[" + ",".join(f"{a}{v}{b}" for a, v, b in items) + "]"),
        st.lists(st.tuples(_string(), _ws, _ws, _ws, inner), max_size=4).map(_object)),
    max_leaves=12)


@settings(max_examples=1500, deadline=None)
@given(text=_texts, outer=_ws)
def test_the_door_refuses_exactly_the_bodies_that_name_a_key_twice(text: str, outer: str) -> None:
    body = (outer + text + outer).encode()
    assume(body.count(b"[") + body.count(b"{") <= strictjson.MAX_DEPTH)  # else refused for its nesting, maybe
    twice = _named_twice(body)
    if strictjson.plain(body, orjson.loads(body)):
        assert not twice, body
    assert _door(body) == (400 if twice else None), body


def test_the_count_passes_ordinary_bodies_and_flags_what_it_cannot_vouch_for() -> None:
    ordinary = [b'{"to_session":"alpha/claude-main","subject":"s","body":"hello","priority":"normal"}',
                b'{"project_key": "p", "resource": "src/a.py", "description": "d", "ttl_hours": 1}',
                b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_message",'
                b'"arguments":{"to":"B/x","subject":"s","tags":["a","b"],"at":[{"x":1},{"x":2}]}}}',
                b'[1, "a", null]', b'"text"', b'{"a":"\\u00e9\\"x\\\\","\\u00e9":1}', b'{}']
    for body in ordinary:
        assert strictjson.plain(body, orjson.loads(body)), body
    # counted too high (a key's bound is not exact): the byte scans and, if they flag it, the strict parse decide
    for body in (b'{"a": "b"\n}', b'{"a":":"}', b'{"a":"b" }'):
        assert not strictjson.plain(body, orjson.loads(body)) and _door(body) is None, body
    nested = b"[" * (strictjson.MAX_DEPTH + 1) + b"]" * (strictjson.MAX_DEPTH + 1)
    for body in (b'{"a":"\\u0000"}', nested):
        assert not strictjson.plain(body, orjson.loads(body)), body


_TWICE = {
    "/api/coord/messages": [
        b'{"to_session":"B/x","subject":"s","body":"b","subject" :"t"}',
        b'{"to_session":"B/x","subject":"s","body":"b","subject"\n:"t"}',
        b'{"to_session":"B/x","subject":"s","body":"b","subject"\t\r:"t"}',
        b'{"to_session":"B/x","subject":"s","body":"b","\\u0073ubject":"t"}',
        b'{"to_session":"B/x","subject":"x\\":","body":":b","subject":"t"}',
        b'{"to_session":"B/x","subject":"s","body":"b","meta":{"k":1,"k" :2}}',
        b'{"to_session":"B/x","subject":"s","body":"b","meta":[{"k":1},{"k":1,"\\u006b":2}]}'],
    "/api/coord/locks": [
        b'{"project_key":"p","resource":"src/a.py","resource" :"src/b.py"}',
        b'{"project_key":"p","resource":"src/a.py","description":"\\":","resource"\n:"src/b.py"}',
        b'{"project_key":"p","resource":"src/a.py","r\\u0065source":"src/b.py"}'],
    "/api/coord/todos": [  # a FastAPI route
        b'{"text":"t","text" :"u"}', b'{"text":"t","\\u0074ext":"u"}', b'{"text":"t","x":[{"k":1,"k"\r\n:2}]}'],
    "/mcp": [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_message",'
        b'"arguments":{"to":"B/x","subject":"s","to" :"C/x"}}}'],
}


@pytest.mark.parametrize("path", list(_TWICE))
def test_a_key_named_twice_is_refused_however_it_is_spelt_on_every_kind_of_route(api: Api, path: str) -> None:
    me = {**api.token("A/x"), "content-type": "application/json", "accept": "application/json, text/event-stream"}
    api.token("B/x")
    for raw in _TWICE[path]:
        assert _named_twice(raw), raw
        for body in (raw, raw.decode().encode("utf-16")):
            r = api.post(path, content=body, headers=me)
            assert r.status_code == 400, (body, r.text)
            assert "more than once" in r.text or "not UTF-8" in r.text, (body, r.text)
    ok = api.post("/api/coord/messages", content=_TWICE["/api/coord/messages"][0].replace(b',"subject" :"t"', b""),
                  headers=me)
    assert ok.status_code == 201, ok.text


def test_the_value_read_at_the_door_is_handed_on_once_and_only_for_its_own_body() -> None:
    body = b'{"to_session":"B/x","subject":"s","body":"b"}'
    scope = dict(_SCOPE)
    assert inputs.refusal(scope, body, b"application/json") is None
    read = scope[inputs.BODY_VALUE][1]
    assert inputs.body_value(scope, body) is read  # not parsed again
    assert inputs.BODY_VALUE not in scope
    scope[inputs.BODY_VALUE] = body, read
    other = bytes(bytearray(body))  # equal, not the same body
    assert inputs.body_value(scope, other) == read and inputs.body_value(scope, other) is not read


def test_a_stored_payload_is_read_without_counting_its_keys_and_still_strictly() -> None:
    assert strictjson.loads('{"a": 1, "a": 2}', keys_unique=True) == {"a": 2}  # vouched for by the caller
    with pytest.raises(strictjson.BadJSON, match="more than once"):
        strictjson.loads('{"a": 1, "a": 2}')
    for bad in ('{"a": NaN}', '{"a": "\\ud800"}', "[" * 40 + "]" * 40):
        with pytest.raises(strictjson.BadJSON):
            strictjson.loads(bad, keys_unique=True)
