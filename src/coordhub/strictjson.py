"""Strict JSON for request bodies: the rules, shared by the input guard and the error handlers.

Python's ``json`` module accepts more than JSON: ``NaN`` and ``Infinity``
(not JSON, RFC 8259 §6), an object naming one key twice (RFC 8259 §4 says
names SHOULD be unique; parsers then disagree: Python keeps the last value,
some proxies and WAFs read the first, so a body could be judged on one and
acted on with the other), strings with lone surrogates (not Unicode text, RFC
8259 §8.2, and impossible to encode back to UTF-8 in an answer), nesting
until the interpreter's recursion limit, and integers it then refuses to
convert past 4,300 digits with a bare ``ValueError``. :func:`loads` refuses all
of these, and NUL (U+0000) in any string, with one exception type each.
"""

from __future__ import annotations

import json
import math
import operator
import re
import sys
from collections.abc import Iterable, Iterator
from itertools import chain, compress, repeat
from typing import Any

from coordhub.jsonkeys import DuplicateKey, unique_keys

MAX_DEPTH = 32  # nesting of arrays/objects in a JSON body; the API's own bodies need 3
MAX_INT_DIGITS = 4300  # Python's own limit on converting a decimal string to an int

_ESCAPES = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")  # a surrogate or NUL escape
_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON's whitespace (RFC 8259 §2) read as a colon, `[` as `{`: a text's `":` then counts the quotes a colon may
# follow (see plain), its `{` the objects and arrays it may open
_MARKED = bytes.maketrans(b" \t\n\r[", b"::::{")
_CONTAINERS = frozenset((dict, list))


class BadJSON(ValueError):
    """The body is not JSON this hub accepts; ``str(exc)`` says why, for a client."""


class NulInput(ValueError):
    """A NUL character in a parameter; ``field`` names where."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} must not contain NUL characters")
        self.field = field


def _constant(name: str) -> Any:
    raise BadJSON(f"body is not valid JSON ({name} is not a JSON number)")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadJSON(f"body is not valid JSON (an integer longer than {MAX_INT_DIGITS} digits)")
    return int(text)


LOCATE_NODES = 20_000  # values visited to name where a fault is (past that, it is reported at the top)


def loads(raw: bytes | str, *, nul_ok: bool = False, keys_unique: bool = False) -> Any:
    """Parse a request body strictly; raise :class:`BadJSON` (why) or :class:`NulInput` (where).

    Refuses non-UTF-8 bytes, syntax errors, an object naming a key twice, NaN/Infinity, integers over
    :data:`MAX_INT_DIGITS` digits, nesting over :data:`MAX_DEPTH`, lone
    surrogates and (unless ``nul_ok``) NUL in any string. Never raises
    anything else. Its cost stays within a few times the plain parse's, for
    any body (it runs before a request is authenticated).

    ``keys_unique``: the caller vouches that no object of ``raw`` names a key twice (a text the hub wrote
    itself from dicts, as a stored event's payload), so the keys are not counted; every other rule applies.
    """
    # A NUL byte is never in UTF-8 JSON (not whitespace, not allowed raw in a string) and always in UTF-16/32 JSON,
    # which FastAPI's json.loads would read (it guesses the encoding) where every scan of suspect() reads no key.
    if isinstance(raw, bytes) and raw.find(b"\x00") >= 0:
        raise BadJSON("body is not UTF-8 text (it holds a NUL byte: UTF-16 or UTF-32? RFC 8259 §8.1 says UTF-8)")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BadJSON("body is not UTF-8 text") from None
    # The interpreter refuses integers over its own digit limit before converting them (ValueError, below); only
    # where that limit was lifted does each integer's length need checking first (a hook call per integer: a
    # megabyte of digits would otherwise be converted, in quadratic time, before it is refused).
    limit = sys.get_int_max_str_digits()
    try:
        value = json.loads(text, parse_constant=_constant,
                           parse_int=_integer if limit == 0 or limit > MAX_INT_DIGITS else None)
    except json.JSONDecodeError as exc:
        raise BadJSON(f"body is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise BadJSON(f"body is not valid JSON (nested deeper than {MAX_DEPTH})") from None
    except ValueError as exc:  # BadJSON from a hook, or the interpreter's own limit on an integer's digits
        raise exc if isinstance(exc, BadJSON) else BadJSON(
            f"body is not valid JSON (an integer longer than {MAX_INT_DIGITS} digits)") from None
    # A key named twice leaves one entry: the objects parsed hold fewer keys than the text names. Counted, not
    # hooked (a hook call per object costs the parse several times over): first against the bound plain() counts
    # (one C pass), then, where that bound is above the count, against the keys read from the text; only a body
    # found short of both is parsed again, with the hook, to name the key.
    keys = _sweep(value, "body", nul_ok)
    if keys_unique:
        return value
    encoded = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if keys != encoded.translate(_MARKED).count(b'":') and keys != len(_keys(encoded)):
        try:
            json.loads(text, object_pairs_hook=unique_keys)
        except DuplicateKey as exc:
            raise BadJSON(f"body is not valid JSON ({exc})") from None
    return value


def check(value: Any, where: str = "body", *, nul_ok: bool = False) -> None:
    """Refuse a parsed JSON value nested over :data:`MAX_DEPTH`, with non-finite floats, lone surrogates or NUL;
    raises :class:`BadJSON` or :class:`NulInput` (never when ``nul_ok``). (Integers are bounded by the parse:
    :func:`loads`.)

    One pass per level of nesting, each a few C-level sweeps (no Python code
    runs per value: a body of a MiB of empty objects is checked in tens of ms,
    not hundreds); only when a fault is found is the value walked again, at
    most :data:`LOCATE_NODES` values, to say where.
    """
    _sweep(value, where, nul_ok)


def _sweep(value: Any, where: str, nul_ok: bool) -> int:
    """:func:`check`; returns how many keys the value's objects hold in all."""
    level, depth, keys = [value], 0, 0
    strings: list[str] = []
    floats: list[float] = []
    while level:
        depth += 1
        kinds = list(map(type, level))
        present = set(kinds)
        if depth > MAX_DEPTH and (dict in present or list in present):
            raise BadJSON(f"body is not valid JSON (nested deeper than {MAX_DEPTH})")
        dicts, lists = list(_of(dict, level, kinds, present)), _of(list, level, kinds, present)
        strings.extend(_of(str, level, kinds, present))
        floats.extend(_of(float, level, kinds, present))
        strings.extend(chain.from_iterable(dicts))  # the keys
        keys += sum(map(len, dicts))
        level = list(chain(chain.from_iterable(map(dict.values, dicts)), chain.from_iterable(lists)))
    joined = "\x01".join(strings)
    if not all(map(math.isfinite, floats)):
        _locate(value, where, nul_ok, BadJSON(f"{where}: not a finite number"))
    if not nul_ok and "\x00" in joined:
        _locate(value, where, nul_ok, NulInput(where))
    if _SURROGATE.search(joined):
        _locate(value, where, nul_ok, BadJSON(f"{where}: a lone surrogate is not Unicode text (RFC 8259 §8.2)"))
    return keys


def _of(kind: type, level: list[Any], kinds: list[type], present: set[type]) -> Iterable[Any]:
    """The values of ``level`` whose type is exactly ``kind`` (``kinds``: each one's type; ``present``: the set)."""
    if kind not in present:
        return ()
    return level if len(present) == 1 else compress(level, map(operator.is_, kinds, repeat(kind)))


def _locate(value: Any, where: str, nul_ok: bool, unplaced: ValueError) -> None:
    """Raise the error of the first fault in ``value`` (in document order), named by where it is; ``unplaced``
    (the fault :func:`check` found, at ``where``) when none is within the first :data:`LOCATE_NODES` steps."""
    frames: list[tuple[Iterator[tuple[Any, Any]], str, bool]] = [(iter(((None, value),)), where, False)]
    for _ in range(LOCATE_NODES):
        if not frames:
            break
        items, path, keyed = frames[-1]
        pair = next(items, None)
        if pair is None:
            frames.pop()
            continue
        key, item = pair
        if keyed and isinstance(key, str):
            _string(key, path, nul_ok)
        here = path if key is None else f"{path}.{key}"
        if isinstance(item, dict):
            frames.append((iter(item.items()), here, True))
        elif isinstance(item, list):
            frames.append((enumerate(item), here, False))
        elif isinstance(item, str):
            _string(item, here, nul_ok)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadJSON(f"{here}: not a finite number")
    raise unplaced


def _string(text: str, path: str, nul_ok: bool) -> None:
    if not nul_ok and "\x00" in text:
        raise NulInput(path)
    if _SURROGATE.search(text):
        raise BadJSON(f"{path}: a lone surrogate is not Unicode text (RFC 8259 §8.2)")


def suspect(body: bytes) -> bool:
    """Whether a body needs the strict parse: cheap scans, false for nearly every real request.

    Deep nesting needs more brackets than :data:`MAX_DEPTH`; NaN/Infinity,
    surrogate and NUL escapes need their literal bytes; a key named twice needs
    two keys spelt alike, or one with an escape (a body whose list holds objects
    of one shape is parsed strictly: the scan cannot tell objects apart). Huge
    integers are not scanned for: Python's parser refuses them itself, and the
    error handler reports that (through :func:`loads`). A NUL byte marks a body
    in UTF-16 or UTF-32, which FastAPI would parse (``json.loads`` guesses the
    encoding of bytes) while every scan here reads nothing in it. A few ms per MiB.
    """
    # find, not `in`: see coordhub.api.inputs.query_nul
    return (body.find(b"\x00") >= 0 or body.count(b"[") + body.count(b"{") > MAX_DEPTH or body.find(b"NaN") >= 0
            or body.find(b"Infinity") >= 0
            or (body.find(b"\\u") >= 0 and _ESCAPES.search(body) is not None) or _keys_repeat(body))


def plain(body: bytes, value: Any) -> bool:
    """Whether ``body`` surely passes :func:`loads`, given ``value``: the body as read by a parser that refuses
    all but RFC 8259 JSON in UTF-8 (no NaN or Infinity, no lone surrogate, no raw control character: orjson).
    False: ask :func:`suspect`. Like it, it does not look for integers over :data:`MAX_INT_DIGITS` digits.

    Such a parser leaves three of :func:`loads`'s rules to check: nesting (no more brackets than
    :data:`MAX_DEPTH`), NUL (only as the escape ``\\u0000``) and keys named twice. Those are counted: the keys
    ``value``'s objects hold (a key named twice is one) against a bound on how many the text names, which an
    attacker cannot push down. A key is a string followed by optional whitespace and a colon (RFC 8259 §4), so
    its closing quote is a quote followed by whitespace or a colon, one of its own: counting every such quote
    (closing a key or a value, or escaped inside a string) counts each key at least once, whatever the strings
    hold. Equal counts, so, mean no key is named twice. Four C-level sweeps, a few more per object or array
    when there are several (issue 15: a quarter of :func:`suspect`'s cost on a message's body).
    """
    marked = body.translate(_MARKED)
    containers = marked.count(b"{")  # each object or array read has a bracket of its own in the text
    if containers > MAX_DEPTH or body.find(b"\\u0000") >= 0:
        return False
    keys = len(value) if containers == 1 and type(value) is dict else _key_count(value)
    return keys == marked.count(b'":')


def _key_count(value: Any) -> int:
    """How many keys the objects of a parsed JSON value hold in all (a key named twice in the text is one).
    Breadth first, each object or array swept at C level: no Python code runs per scalar."""
    keys, containers = 0, [value]
    for item in containers:  # grows as it is walked
        if type(item) is dict:
            keys += len(item)
            item = item.values()
        elif type(item) is not list:
            continue
        containers.extend(compress(item, map(_CONTAINERS.__contains__, map(type, item))))
    return keys


def _keys_repeat(body: bytes) -> bool:
    """Whether two of the body's object keys may be one key: keys spelt alike (in one object or not: telling costs
    the parse) or any key with an escape (``"a"`` and ``"\\u0061"`` are one key)."""
    keys = _keys(body)
    return len(set(keys)) < len(keys) or b"".join(keys).find(b"\\") >= 0


def _keys(body: bytes) -> list[bytes]:
    """The object keys a JSON text names, in order, as spelt between their quotes (escaped backslashes and quotes
    left out). Only C-level sweeps: no Python code runs per key.

    Split at its quotes, a JSON text alternates outside and inside strings (outside strings JSON has no quote);
    a string is a key when what follows it starts with a colon. Escaped backslashes, then escaped quotes, are
    dropped first, left to right as a parser pairs them, so no quote inside a string splits it (two keys may then
    read alike, which only makes the body parsed strictly). For an invalid text the list means nothing: its
    parse refuses it anyway.
    """
    if body.find(b"\\") >= 0:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    parts = body.split(b'"')
    return list(compress(parts[1::2], map(bytes.startswith, map(bytes.lstrip, parts[2::2]), repeat(b":"))))
