"""The hub's one JSON encoder for its hot paths: orjson, with the standard library for what orjson refuses.

Used for HTTP answers (:mod:`coordhub.api.answers`), stored event payloads
(:mod:`coordhub.core.events`) and the in-process client's requests
(:mod:`coordhub.client.aio`) — issue 15's "one JSON encoder". Output is
compact UTF-8 like ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``:
the same JSON values (only a float's spelling may differ: ``1e-7`` for
``1e-07``), several times faster. orjson refuses an integer past 64 bits;
such a value is encoded by the standard library instead, so nothing that
encoded before fails now.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact UTF-8 JSON bytes; dict keys that are not strings are written as strings.

    ``default`` converts what JSON has no form for (as in ``json.dumps``);
    without it such a value raises ``TypeError``.
    """
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default).encode()
