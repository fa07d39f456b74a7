"""How a tool reaches the hub as its caller, and how the hub's refusals become MCP errors.

The server's lifespan yields a :class:`Connector`; each tool asks it for the
caller's :class:`~coordhub.client.aio.AsyncCoordClient` and makes REST calls
through :func:`call`. A refusal is raised as ``ToolError`` with one line,
``<code>: <message>`` (the envelope's code, e.g. ``lease_conflict``), so the
MCP client sees ``is_error=True`` and the reason; an unreachable hub says so
and names the URL.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.client import HubError, Unreachable


class Connector(Protocol):
    """Gives each tool call the client that acts as the MCP caller's session."""

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The caller's client (never closed by the tool)."""
        ...


class FixedConnector:
    """One client for every call: the stdio shim, which is one session."""

    def __init__(self, client: AsyncCoordClient) -> None:
        self._client = client

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The shim's one client."""
        return self._client


def client(ctx: Context) -> AsyncCoordClient:
    """The caller's client, from the connector the server's lifespan yielded."""
    connector = cast(Connector, ctx.request_context.lifespan_context)
    return connector.client(ctx)


def refusal(err: HubError | Unreachable) -> ToolError:
    """The one-line MCP error for a hub failure: ``<code>: <message>``."""
    if isinstance(err, Unreachable):
        return ToolError(f"hub_unreachable: {err}")
    return ToolError(f"{err.code}: {err.message}")


async def call(ctx: Context, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
               *, timeout: float | None = None) -> Any:
    """Call the hub as the caller; the decoded answer, or ``ToolError`` saying why not."""
    try:
        return await client(ctx).call(method, path, params, body, timeout=timeout)
    except (HubError, Unreachable) as err:
        raise refusal(err) from None


async def me(ctx: Context) -> str:
    """The caller's session id (what the token acts as); ``ToolError`` if the hub cannot say."""
    try:
        return await client(ctx).session_id()
    except (HubError, Unreachable) as err:
        raise refusal(err) from None


def drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the ``None`` values (arguments the caller left out)."""
    return {k: v for k, v in fields.items() if v is not None}
