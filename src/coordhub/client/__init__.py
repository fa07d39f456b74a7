"""The Python client: one client for the CLI, the MCP shim and scripts, with seed 001's softfail queue."""

from coordhub.client.client import CoordClient, HubError, Queued, Unreachable
from coordhub.client.settings import ClientSettings, resolve

__all__ = ["ClientSettings", "CoordClient", "HubError", "Queued", "Unreachable", "resolve"]
