"""The hub's JSON answers, encoded by :func:`coordhub.jsonbytes.dumps` (issue 15, "one JSON encoder")."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse as StarletteJSONResponse

from coordhub import jsonbytes


class JSONResponse(StarletteJSONResponse):
    """A JSON response rendered by orjson (the standard library for what orjson refuses)."""

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON bytes."""
        return jsonbytes.dumps(content)
