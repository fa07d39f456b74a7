"""The strict JSON rules run before a request is authenticated: what they cost must not let a stranger stall the hub.

A body of a MiB of ``[{},{},…]`` (flagged for the strict parse: more than 32
brackets) took ~260 ms of the event loop to refuse or pass, ten times the plain
parse, all before any token was looked at. Now the check of a parsed value runs
no Python code per value (one pass of C-level sweeps per level of nesting, a
walk only to name where a fault is, bounded), and a body over
``inputs.OFF_LOOP_BYTES`` is judged on the rules' own thread, not the loop's.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub import strictjson
from coordhub.api import inputs
from coordhub.strictjson import MAX_DEPTH, BadJSON, NulInput
from tests.conftest import Api

_SURROGATE = re.compile("[\ud800-\udfff]")


def _reference(value: Any, where: str = "body", *, nul_ok: bool = False) -> None:
    """The rules as two plain recursive walks: nesting over ``MAX_DEPTH`` anywhere first, then the first other
    fault in document order (a key before its value), named by where it is."""
    def deepest(item: Any) -> int:
        if isinstance(item, dict):
            return 1 + max(map(deepest, item.values()), default=0)
        if isinstance(item, list):
            return 1 + max(map(deepest, item), default=0)
        return 0

    def walk(item: Any, path: str) -> None:
        if isinstance(item, dict):
            for key, sub in item.items():
                string(key, path)
                walk(sub, f"{path}.{key}")
        elif isinstance(item, list):
            for i, sub in enumerate(item):
                walk(sub, f"{path}.{i}")
        elif isinstance(item, str):
            string(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadJSON(f"{path}: not a finite number")

    def string(text: str, path: str) -> None:
        if not nul_ok and "\x00" in text:
            raise NulInput(path)
        if _SURROGATE.search(text):
            raise BadJSON(f"{path}: a lone surrogate is not Unicode text (RFC 8259 §8.2)")

    if deepest(value) > MAX_DEPTH:
        raise BadJSON(f"body is not valid JSON (nested deeper than {MAX_DEPTH})")
    walk(value, where)


def _outcome(check: Any, value: Any, nul_ok: bool) -> tuple[str, str] | None:
    try:
        check(value, nul_ok=nul_ok)
    except (BadJSON, NulInput) as exc:
        return type(exc).__name__, str(exc)
    return None


_text = st.text(alphabet=st.sampled_from(["a", "é", "\x00", "\ud800", "\U0001f600", "."]), max_size=4)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), _text,
                     st.sampled_from([0.5, -2.0, math.inf, -math.inf, 1e300]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(_text, inner, max_size=4)), max_leaves=40)


def _nested(depth: int, inner: Any) -> Any:
    for i in range(depth - 1):
        inner = [inner] if i % 2 else {"k": inner}
    return inner


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(_values, st.builds(_nested, st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2), _values)),
       nul_ok=st.booleans())
def test_the_check_refuses_what_a_plain_walk_refuses_and_names_the_same_place(value: Any, nul_ok: bool) -> None:
    assert _outcome(strictjson.check, value, nul_ok) == _outcome(_reference, value, nul_ok)


@contextlib.contextmanager
def python_calls(files: tuple[str, ...] = ()) -> Iterator[list[int]]:
    """The Python function calls made inside the block, in the one item of the list it gives (counted by
    ``sys.setprofile``, not timed); with ``files``, only calls of functions in files whose names end so."""
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and (not files or frame.f_code.co_filename.endswith(files)):
            calls[0] += 1

    sys.setprofile(count)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def test_the_check_runs_no_python_code_per_value() -> None:
    """Counted, not timed: the Python calls made while checking 200,000 values (a MiB of ``{}``, nested and
    mixed) stay a few per level of nesting, and a fault deep in such a body is named within a bounded walk."""
    wide = [{}, [1, 2.5, "x", None, True], {"a": {"b": [3]}}] * 40_000
    with python_calls() as calls:
        strictjson.check(wide)
    assert calls[0] < 50, calls[0]
    late = wide + [{"late": "a\x00"}]
    with python_calls() as calls, pytest.raises(NulInput) as refused:
        strictjson.check(late)
    assert refused.value.field == "body"  # past the walk's bound: named at the top, still refused
    assert calls[0] < strictjson.LOCATE_NODES * 2, calls[0]
    with pytest.raises(NulInput) as near:
        strictjson.check([{"a": 1}, {"late": "a\x00"}])
    assert near.value.field == "body.1.late"


def test_an_integer_over_the_digit_limit_is_refused_even_when_the_interpreter_allows_it() -> None:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        with pytest.raises(BadJSON, match="integer longer than"):
            strictjson.loads("[" + "9" * (strictjson.MAX_INT_DIGITS + 1) + "]")
        assert strictjson.loads("[" + "9" * strictjson.MAX_INT_DIGITS + "]")[0] > 0
    finally:
        sys.set_int_max_str_digits(limit)
    with pytest.raises(BadJSON, match="integer longer than"):
        strictjson.loads("[" + "9" * (strictjson.MAX_INT_DIGITS + 1) + "]")


def test_a_large_body_is_judged_off_the_event_loop_and_a_small_one_on_it(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stranger's MiB of brackets is refused (401: no token) after the rules judged it on their own thread;
    a small flagged body is judged on the loop (a thread hop would cost more than the check). Either way a
    fault found is answered the same."""
    seen: list[str] = []
    loads = strictjson.loads

    def spying(raw: Any, *, nul_ok: bool = False) -> Any:
        seen.append(threading.current_thread().name)
        return loads(raw, nul_ok=nul_ok)

    monkeypatch.setattr(inputs, "loads", spying)
    big = json.dumps({"subject": "s", "body": "b", "to_session": "B/y", "x": [{}] * 40_000}).encode()
    assert len(big) > inputs.OFF_LOOP_BYTES
    r = api.post("/api/coord/messages", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 401, r.text
    assert seen and seen[-1].startswith("coord-input-rules"), seen
    bad = big.replace(b'"s"', b'"s\\u0000"', 1)
    r = api.post("/api/coord/messages", content=bad, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.subject", r.text
    small = json.dumps({"subject": "s", "body": "b", "to_session": "B/y", "x": [{}] * 40}).encode()
    r = api.post("/api/coord/messages", content=small, headers={"content-type": "application/json"})
    assert r.status_code == 401 and not seen[-1].startswith("coord-input-rules"), (r.text, seen)


_key = st.text(alphabet=st.sampled_from(["a", "b", '"', "\\", ":", " ", "é", "\n"]), max_size=3)
_flat = st.one_of(st.none(), st.integers(-5, 5), _key)
_docs = st.recursive(_flat, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(_key, inner, max_size=3)), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(doc=st.dictionaries(_key, _docs, min_size=1, max_size=4), again=_docs, spaced=st.booleans(),
       escaped=st.booleans())
def test_a_key_named_twice_is_always_found_and_a_body_without_one_passes(doc: dict[str, Any], again: Any,
                                                                        spaced: bool, escaped: bool) -> None:
    # The scan that flags bodies for the strict parse must never miss a repeated key, whatever the keys and
    # values hold (quotes, backslashes, colons, spaces); the strict parse refuses exactly those bodies.
    separators = (" , ", " : ") if spaced else (",", ":")
    clean = json.dumps(doc, separators=separators, ensure_ascii=escaped).encode()
    assert strictjson.loads(clean) == doc
    key = next(iter(doc))
    twice = clean[:-1] + f"{separators[0]}{json.dumps(key, ensure_ascii=escaped)}{separators[1]}".encode() \
        + json.dumps(again, separators=separators).encode() + b"}"
    assert json.loads(twice)[key] == again  # what Python's parser made of it: the last one, silently
    assert strictjson.suspect(twice)
    with pytest.raises(BadJSON, match="more than once"):
        strictjson.loads(twice)
    wrapped = b'{"x":[' + twice + b"]}"
    assert strictjson.suspect(wrapped)
    with pytest.raises(BadJSON, match="more than once"):
        strictjson.loads(wrapped)


def test_a_key_spelt_with_an_escape_is_the_same_key_and_objects_of_one_shape_pass() -> None:
    aliased = b'{"subject": "s", "\\u0073ubject": "t"}'
    assert strictjson.suspect(aliased)
    with pytest.raises(BadJSON, match="'subject' more than once"):
        strictjson.loads(aliased)
    assert not strictjson.suspect(b'{"subject": "a \\"quoted\\": b", "body": "x\\\\"}')
    same_shape = json.dumps({"items": [{"path": "a"}, {"path": "b"}]}).encode()
    assert strictjson.suspect(same_shape)  # the scan cannot tell the objects apart: the strict parse decides
    assert strictjson.loads(same_shape) == {"items": [{"path": "a"}, {"path": "b"}]}
    # counted, not hooked: parsing a MiB of one-key objects strictly makes no Python call per object
    many = json.dumps([{"a": 1}] * 100_000).encode()
    with python_calls(("strictjson.py", "jsonkeys.py")) as calls:  # the rules' own (not a GC callback of a plugin)
        strictjson.loads(many)
    assert calls[0] < 50, calls[0]
