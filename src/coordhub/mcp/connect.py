"""How a tool reaches the hub as its caller, and how the hub's refusals become MCP errors.

The server's lifespan yields a :class:`Connector`; each tool asks it for the
caller's :class:`~coordhub.client.aio.AsyncCoordClient` and makes REST calls
through :func:`call`. A refusal is raised as ``ToolError`` with one line,
``<code>: <message>`` (the envelope's code, e.g. ``lease_conflict``), so the
MCP client sees ``is_error=True`` and the reason; an unreachable hub says so
and names the URL.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.client import HubError, Unreachable
from coordhub.hooks import project as projects


class Connector(Protocol):
    """Gives each tool call the client that acts as the MCP caller's session."""

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The caller's client (never closed by the tool)."""
        ...

    def resource(self, text: str) -> str:
        """A lease resource as the caller typed it, as the hub should get it (see :class:`FixedConnector`)."""
        ...


class FixedConnector:
    """One client for every call: the stdio shim, which is one session, running in the agent's working tree."""

    def __init__(self, client: AsyncCoordClient, cwd: Path | None = None) -> None:
        self._client = client
        self._cwd = cwd or Path.cwd()

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The shim's one client."""
        return self._client

    def resource(self, text: str) -> str:
        """Paths made project-relative, symlinks resolved, an existing directory given a trailing ``/``.

        The shim runs where the agent works (Claude Code starts it in the
        project), so it applies the CLI's rule
        (:meth:`coordhub.hooks.project.Project.claimed`, issue 7, points 11
        and 13); NAMEs and globs pass unchanged.
        """
        return projects.resolve(self._cwd).claimed(text, self._cwd)


class CallerContext(Context):
    """A tool's context made by the hub's direct ``tools/call`` (:mod:`coordhub.mcp.direct`).

    It carries the connector instead of an SDK request context, which that
    path does not build; ``request_context`` raises ``ValueError`` on it (no
    tool here needs one). One context serves every call of a server: the
    caller, who the ``/mcp`` request acts as, is :data:`CALLER` of the task
    running the call (each request is a task of its own, and a task started
    by a tool inherits it). A context per call cost ~7 µs to build through
    pydantic, ~3 µs to copy (issue 15).

    ``connector`` is a plain slot, not a pydantic private attribute (a read of
    one goes through pydantic's machinery, ~2 µs).
    """

    __slots__ = ("connector",)
    if TYPE_CHECKING:  # declared for type checkers only: an annotation here would make a pydantic field of it
        connector: Connector

    def __init__(self, server: MCPServer, connector: Connector) -> None:
        super().__init__(mcp_server=server)
        object.__setattr__(self, "connector", connector)

    @property
    def caller(self) -> object:
        """Who the running call acts as (:data:`CALLER`; None outside a call)."""
        return CALLER.get()


CALLER: ContextVar[object] = ContextVar("coordhub.mcp.caller", default=None)
"""Who the direct ``tools/call`` running in this task acts as (:class:`coordhub.mcp.http.HttpCaller`)."""


def client(ctx: Context) -> AsyncCoordClient:
    """The caller's client, from the connector the server's lifespan yielded."""
    return _connector(ctx).client(ctx)


def hub_resource(ctx: Context, text: str) -> str:
    """A resource argument as the hub should get it (the connector's rule; unchanged on the hub's ``/mcp``)."""
    return _connector(ctx).resource(text)


def _connector(ctx: Context) -> Connector:
    if isinstance(ctx, CallerContext):
        return ctx.connector
    return cast(Connector, ctx.request_context.lifespan_context)


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
