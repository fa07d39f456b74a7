"""How a tool reaches the hub as its caller, and how the hub's refusals become MCP errors.

The server's lifespan yields a :class:`Connector`; each tool asks it for the
caller's :class:`~coordhub.client.aio.AsyncCoordClient` and makes REST calls
through :func:`call`. A refusal is raised as ``ToolError`` with one line,
``<code>: <message>`` (the envelope's code, e.g. ``lease_conflict``), so the
MCP client sees ``is_error=True`` and the reason; an unreachable hub says so
and names the URL; a 401 to the stdio server also says whether it had no token
or one the hub refused, and how to give it one (:func:`hub_refusal`).

Ids and answers are checked here, not left to the hub: an id argument is put
into a request path only once it is an id of the hub's shape
(:func:`record_id`, :func:`conversation_slug`; ``wait`` as a message id had
reached ``GET /messages/wait``, a long poll), and an answer that is not the
JSON object or list a tool expects is a ``ToolError``, never a crash.

Retries (contract point 5): a tool that writes takes an ``idempotency_key``;
its REST write carries ``mcp:<tool>:<key>`` (:class:`RetryKey`), the key
being the argument, else the ``/mcp`` request's ``Idempotency-Key`` header,
else, over the network (stdio), a fresh one that an unreachable hub's error
names so that the agent can retry with it.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.credentials import ask_admin, needs_token
from coordhub.client.outcomes import HubError, Unreachable
from coordhub.client.wire import NEXT_CURSOR, whole_number
from coordhub.core.orgturn import CONVERSATION_ID, RESERVED_IDS
from coordhub.hooks import project as projects
from coordhub.hooks.untrusted import one_line


class Connector(Protocol):
    """Gives each tool call the client that acts as the MCP caller's session.

    ``fresh_keys``: whether a write given no idempotency key gets a fresh one (its client reaches the hub over
    the network, where an answer can be lost after the write was made; :func:`retry_key`).
    """

    fresh_keys: bool

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The caller's client (never closed by the tool)."""
        ...

    def resource(self, text: str) -> str:
        """A lease resource as the caller typed it, as the hub should get it (see :class:`FixedConnector`)."""
        ...

    def request_key(self, ctx: Context) -> str | None:
        """The ``Idempotency-Key`` header of the ``/mcp`` request running the call; None without one (stdio)."""
        ...


class FixedConnector:
    """One client for every call: the stdio shim, which is one session, running in the agent's working tree."""

    def __init__(self, client: AsyncCoordClient, cwd: Path | None = None) -> None:
        self._client = client
        self._cwd = cwd or Path.cwd()
        self.fresh_keys = not client.in_process

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

    def request_key(self, ctx: Context) -> str | None:
        """None: stdio has no request headers."""
        return None


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
    """The one-line MCP error for a hub failure: ``<code>: <message>``.

    The message may quote what another session wrote (``lease_conflict``
    names the holder's description, free text with line breaks), so it is
    shown with :func:`~coordhub.hooks.untrusted.one_line`: that text can
    neither end the refusal's line and add lines of its own nor hide
    characters from the user.
    """
    if isinstance(err, Unreachable):
        return ToolError(f"hub_unreachable: {one_line(err)}")
    return ToolError(f"{one_line(err.code)}: {one_line(err.message)}")


STDIO_TOKEN = ("COORD_TOKEN in the MCP server's environment (`coord mcp-config` prints the `claude mcp add` command "
               "that sets it) or identity.json \"token\"")
"""How the stdio server (``coord mcp``) is given its token (:mod:`coordhub.mcp.stdio`), as a 401 says it."""


def hub_refusal(ctx: Context, err: HubError) -> ToolError:
    """:func:`refusal` of ``err``; a 401 answered to the stdio server also says what to do, in one line.

    The stdio server sends the token it was started with, if any. Without
    one, the hub's line says to send an ``Authorization`` header, which an
    MCP user never writes, so the CLI's words follow it
    (:func:`~coordhub.client.credentials.needs_token`) with the server's
    own ways. With one, the hub refused that token, which it does only as
    unknown or revoked (:data:`coordhub.core.tokens.REVOKED`): the error
    says so in one sentence instead of the hub's line (which asks for an
    admin too, so the no-token words after it said so twice). A ``/mcp``
    caller is refused at the door before any tool runs, so its refusal is
    the hub's.
    """
    connector = _connector(ctx)
    if err.status != 401 or not isinstance(connector, FixedConnector):
        return refusal(err)
    shim = client(ctx)
    url = shim.base_url
    if shim.has_token:
        return ToolError(one_line(f"{err.code}: the hub at {url} refused the token this MCP server was given as "
                                  f"unknown or revoked: {ask_admin(STDIO_TOKEN, 'a new one')}"))
    return ToolError(f"{refusal(err)}; {one_line(needs_token(url, STDIO_TOKEN))}")


async def call(ctx: Context, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
               *, timeout: float | None = None, key: RetryKey | None = None, step: str = "") -> Any:
    """Call the hub as the caller; the decoded answer, or ``ToolError`` saying why not.

    A write with ``key`` carries :meth:`RetryKey.header` of ``step`` (a
    tool's second write names its step, so each write has its own key). The
    key's reuse for other arguments is ``idempotency_key_reused``; an
    unreachable hub's error names the key to retry with.
    """
    try:
        return await client(ctx).call(method, path, params, body, None if key is None else key.header(step),
                                      timeout=timeout)
    except (Unreachable, HubError) as err:
        raise failure(ctx, err, key) from None


def failure(ctx: Context, err: HubError | Unreachable, key: RetryKey | None = None) -> ToolError:
    """The ``ToolError`` of a call that failed with ``err``: :func:`hub_refusal` of a refusal, :func:`refusal` of
    an unreachable hub; with ``key``, an unreachable hub's error names the key to retry the write with, and a key
    reused for other arguments is said so."""
    if isinstance(err, Unreachable):
        if key is None:
            return refusal(err)
        if not err.sent:  # no connection was made (review: "may have been made" misled for a refused connection)
            return ToolError(f"hub_unreachable: {one_line(err)}; the write was not made: call {key.tool} again "
                             "once the hub is back")
        return ToolError(f"hub_unreachable: {one_line(err)}; the write may have been made: call {key.tool} again "
                         f"with idempotency_key={key.key!r} to retry it without a second effect")
    if key is not None and err.code == "idempotency_key_reused":
        return ToolError(f"idempotency_key_reused: key {key.key!r} was already used for a {key.tool} call with "
                         "other arguments; use a new key for a new call")
    return hub_refusal(ctx, err)


async def call_object(ctx: Context, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
                      *, key: RetryKey | None = None, step: str = "") -> dict[str, Any]:
    """:func:`call` whose answer must be a JSON object; ``ToolError`` (``unexpected_answer``) otherwise."""
    answer = await call(ctx, method, path, params, body, key=key, step=step)
    if not isinstance(answer, dict):
        raise unexpected(answer, "an object", method, path)
    return answer


async def call_list(ctx: Context, method: str, path: str, params: dict[str, Any] | None = None,
                    *, timeout: float | None = None) -> list[Any]:
    """:func:`call` (a read) whose answer must be a JSON list; ``ToolError`` (``unexpected_answer``) otherwise."""
    answer = await call(ctx, method, path, params, timeout=timeout)
    if not isinstance(answer, list):
        raise unexpected(answer, "a list", method, path)
    return answer


Page = TypeVar("Page", list[Any], dict[str, Any])


async def call_page(ctx: Context, path: str, params: dict[str, Any], shape: type[Page], *,
                    header: str = NEXT_CURSOR, timeout: float | None = None) -> tuple[Page, str | None]:
    """``GET path`` of a page of one of the hub's paged lists as the caller
    (:meth:`~coordhub.client.aio.AsyncCoordClient.call_page`): its answer, which must be a JSON list or object
    (``shape``), and where the next page starts, the answer's ``header`` (None: the list ends with it).
    ``ToolError`` as :func:`call` raises it, and ``unexpected_answer`` for an answer of another shape."""
    try:
        answer, after = await client(ctx).call_page("GET", path, params, header=header, timeout=timeout)
    except (Unreachable, HubError) as err:
        raise failure(ctx, err) from None
    if not isinstance(answer, shape):
        raise unexpected(answer, "a list" if shape is list else "an object", "GET", path)
    return answer, after


async def call_numbered_page(ctx: Context, path: str, params: dict[str, Any], header: str, *,
                             timeout: float | None = None) -> tuple[list[Any], int | None]:
    """:func:`call_page` of a list the hub pages by a number (a message's ``seq``, a lease's ``fence``): the list
    and the number ``header`` names (None: the list ends with this page); ``unexpected_answer`` for a header that
    is not a whole number."""
    answer, after = await call_page(ctx, path, params, list, header=header, timeout=timeout)
    if after is None:
        return answer, None
    number = whole_number(after)
    if number is None:
        raise ToolError(f"unexpected_answer: the hub answered GET {path} with a {header} header of "
                        f"{after[:40]!r} where the tool expects a whole number")
    return answer, number


def unexpected(answer: Any, wanted: str, method: str, path: str) -> ToolError:
    """The error for a hub answer that is not what the tool expects (``wanted``: "an object", "a list")."""
    return ToolError(f"unexpected_answer: the hub answered {method} {path} with {type(answer).__name__} "
                     f"where the tool expects {wanted}")


ID_EXAMPLE = "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"


def record_id(value: str, name: str) -> str:
    """``value`` as the hub's id of a record (a UUID, :func:`coordhub.ids.new_id`), in canonical form.

    Messages, leases, todos, workflows and work items are named by UUIDs, and
    their routes take nothing else; anything that is not one (``wait``,
    ``check``, ``../locks``) is refused here, before a path is built from it,
    with ``ToolError`` ``invalid: <name>: … not a valid id``.
    """
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ToolError(f"invalid: {name}: {value[:80]!r} is not a valid id (ids are UUIDs such as "
                        f"{ID_EXAMPLE})") from None


def conversation_slug(value: str, name: str = "conversation_id", *, shown: bool = False) -> str:
    """``value`` if it is a conversation id (seed 004's slug, :data:`coordhub.core.orgturn.CONVERSATION_ID`);
    ``ToolError`` ``invalid: …`` otherwise. ``shown``: it goes to ``GET /conversations/{id}``, where a
    :data:`~coordhub.core.orgturn.RESERVED_IDS` name (a conversation made before the hub refused them) would reach
    another route, so such a name is refused too."""
    if not CONVERSATION_ID.fullmatch(value):
        raise ToolError(f"invalid: {name}: {value[:80]!r} is not a valid id (a conversation id is a slug such as "
                        "prep-fixup: letters, digits, . _ -; at most 128 characters)")
    if shown and value in RESERVED_IDS:
        raise ToolError(f"invalid: {name}: {value!r} names a hub route (GET /api/coord/conversations/{value}), "
                        "not a conversation this tool can show")
    return value


MAX_KEY = 128  # characters of an agent's key; with mcp:<tool>:<step>: it stays within the hub's 200
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY}}}")


@dataclass(frozen=True)
class RetryKey:
    """The idempotency key of one tool call: ``key`` as the agent (or its ``/mcp`` request) gives it, or a
    fresh one; each REST write of the call carries :meth:`header`."""

    tool: str
    key: str

    def header(self, step: str = "") -> str:
        """The REST ``Idempotency-Key``: ``mcp:<tool>:<key>``, with ``<step>:`` before the key for a tool's other
        writes. The tool's name keeps one key given to two tools (an ``/mcp`` client's header on every request)
        from colliding at the hub, which scopes keys per session and checks the request matches."""
        return f"mcp:{self.tool}:{step + ':' if step else ''}{self.key}"


def retry_key(ctx: Context, tool: str, given: str | None) -> RetryKey | None:
    """The key of a call of ``tool`` that writes: ``given`` (the tool's ``idempotency_key``), else the ``/mcp``
    request's ``Idempotency-Key`` header, else a fresh one when the hub is reached over the network (the stdio
    shim: a lost answer is possible there), else None (in-process, a key would only cost the hub a record).

    ``ToolError`` ``invalid: …`` for a key that is not 1-128 printable ASCII characters.
    """
    origin, connector = "idempotency_key", _connector(ctx)
    if given is None:
        given, origin = connector.request_key(ctx), "Idempotency-Key header"
    if given is None:
        return RetryKey(tool, str(uuid.uuid4())) if connector.fresh_keys else None
    if not _KEY.fullmatch(given):
        raise ToolError(f"invalid: {origin}: must be 1-{MAX_KEY} printable ASCII characters")
    return RetryKey(tool, given)


async def me(ctx: Context) -> str:
    """The caller's session id (what the token acts as); ``ToolError`` if the hub cannot say."""
    try:
        return await client(ctx).session_id()
    except HubError as err:
        raise hub_refusal(ctx, err) from None
    except Unreachable as err:
        raise refusal(err) from None


def drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the ``None`` values (arguments the caller left out)."""
    return {k: v for k, v in fields.items() if v is not None}
