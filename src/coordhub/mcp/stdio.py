"""``coord mcp``: the stdio MCP server that Claude Code launches, acting as one session.

The hub and identity come from ``COORD_URL`` / ``COORD_TOKEN`` (or
``COORD_SESSION`` for a ``--no-auth`` hub), else ``.claude/identity.json``,
resolved by :func:`coordhub.client.settings.resolve` exactly as for the CLI.
Nothing is checked at start-up: a hub that is down or a bad token shows up
as a clear error on the first tool call, so the agent's MCP server list stays
stable. stdout carries the protocol only; logs go to stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.settings import ClientSettings, resolve
from coordhub.mcp.connect import FixedConnector
from coordhub.mcp.server import build_server


def main(profile: str = "default", settings: ClientSettings | None = None) -> None:
    """Serve ``profile``'s tools over stdin/stdout until the client closes them."""
    found = settings or resolve()

    @contextlib.asynccontextmanager
    async def connector() -> AsyncIterator[FixedConnector]:
        async with AsyncCoordClient(found.url, found.token, found.session, timeout=found.timeout,
                                    claimed=found.session_claimed) as client:
            yield FixedConnector(client)

    build_server(profile, connector).run()
