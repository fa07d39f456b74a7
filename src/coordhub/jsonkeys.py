"""Refusing a JSON object that names one key twice: the ``object_pairs_hook`` every strict reader of JSON shares.

RFC 8259 §4 says an object's names SHOULD be unique and leaves what a parser
does with a repeated one open: Python's ``json`` and orjson keep the last
value, some proxies and WAFs the first, so one body could be checked as one
request and acted on as another. The hub's request bodies
(:mod:`coordhub.strictjson`) and ``coord-hook``'s stdin refuse it instead.
Standard library only, and nothing imported: ``coord-hook`` reads its stdin
with it on every run.
"""

from __future__ import annotations

from typing import Any


class DuplicateKey(ValueError):
    """An object names ``key`` more than once; ``str(exc)`` says so, for a client."""

    def __init__(self, key: str) -> None:
        super().__init__(f"an object names the key {key[:40]!r} more than once")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: the object as a dict; :class:`DuplicateKey` for a key named twice."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return found
