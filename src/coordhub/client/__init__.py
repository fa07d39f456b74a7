"""The Python client: one client for the CLI, the MCP shim and scripts, with seed 001's softfail queue.

Exports are resolved lazily so that ``coordhub.client.settings`` (standard
library only) can be imported by the hook script without loading the HTTP
stack.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "CoordClient": "coordhub.client.client", "HubError": "coordhub.client.outcomes",
    "Queued": "coordhub.client.outcomes", "Unreachable": "coordhub.client.outcomes",
    "ClientSettings": "coordhub.client.settings", "resolve": "coordhub.client.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'coordhub.client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
