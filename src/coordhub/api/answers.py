"""The hub's JSON answers: one encoder, orjson (issue 15, "one JSON encoder").

:class:`JSONResponse` renders with orjson: compact and UTF-8 like Starlette's
``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``, the same JSON
values for everything the hub answers with (only a float's spelling may differ:
``1e-7`` for ``1e-07``), and several times faster. A value orjson refuses (an integer past
64 bits, a dict with non-string keys) is rendered by Starlette's encoder
instead, so nothing that encoded before fails now.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    """A JSON response rendered by orjson (Starlette's encoder for what orjson refuses)."""

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON bytes."""
        try:
            return orjson.dumps(content)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return super().render(content)
