"""A plain ``tools/call`` on the hub's ``/mcp``, answered without the SDK's per-request transport.

In stateless mode the SDK serves each handshake-era (legacy) POST by
building a transport, memory streams, a JSON-RPC dispatcher and a server
task for that one request, and a 2026 single-exchange POST by running its
request pipeline (classification, OpenTelemetry span, request-state
boundary, surface validation); for a ``tools/call`` that machinery cost
about as much hub CPU as the tool's own REST request (issue 15). The SDK
offers no option to skip it, so :class:`DirectCalls` answers the one
request shape that dominates traffic itself and hands everything else to
the SDK unchanged.

What it answers: a POST whose body is one JSON-RPC request (``jsonrpc``,
``id``, ``method``, ``params`` and nothing else) with ``method``
``tools/call``, naming a tool of the profile, ``Content-Type:
application/json`` and an ``Accept`` that allows JSON, at a handshake-era
protocol version (or none) or at a 2026 version whose envelope and routing
headers pass the SDK's own ladder (:func:`mcp.shared.inbound.classify_inbound_request`)
and that carries no ``Mcp-Param-*`` header. Anything else, including every
malformed request, goes to the SDK, which answers it as before.

How: the tool runs through the SDK's own :meth:`Tool.run` (argument
validation, the ``Error executing tool …`` wording, result conversion), a
failure becomes the same ``is_error`` result as the SDK's handler makes, and
the result is shaped for the wire by the SDK's per-version surface
(:func:`mcp_types.methods.serialize_server_result`); a 2026 answer carries
the ``serverInfo`` stamp and a JSON-RPC error its mapped status, as the SDK's
single-exchange entry does. ``tests/mcp/test_direct.py`` compares the two
answers for every tool shape, so an SDK upgrade that changes the wire fails
there. The tool's REST call is unchanged: it is handed to the hub's own app
(:class:`coordhub.mcp.served.AppConnector`), so identity, the halt,
idempotency and validation are the REST rules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import orjson
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.types import CallToolResult, TextContent
from mcp_types import DEFAULT_NEGOTIATED_VERSION
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.responses import Response

from coordhub.mcp.connect import CALLER, CallerContext, Connector
from coordhub.mcp.server import CoordTool, shown, shown_text

log = logging.getLogger("coordhub.mcp")

METHOD = "tools/call"
ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
PARAM_KEYS = frozenset({"name", "arguments", "_meta"})
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
CACHED_HEADERS = 512  # bytes of the three version-deciding headers' values up to which their verdict is cached
HEADER_KEYWORD = b'"x-mcp-header"'  # an input-schema keyword: the argument travels in an Mcp-Param-* header too


class DirectCalls:
    """Answers plain ``tools/call`` requests of one profile's tools (see the module docstring).

    ``tools`` are the profile's SDK tools by name, ``server`` the SDK server
    that lists them (its name and version stamp 2026 answers), ``connector``
    what the tools reach the hub through.
    """

    def __init__(self, server: MCPServer, tools: Mapping[str, Tool], connector: Connector) -> None:
        self.server = server
        self.tools = dict(tools)
        # a 2026 request names such a tool's declared arguments in Mcp-Param-* headers, which the SDK checks
        self.header_tools = {name for name, tool in tools.items() if HEADER_KEYWORD in orjson.dumps(tool.parameters)}
        self.context = CallerContext(server, connector)  # every call's: the caller is CALLER of its task
        self.server_info = {"name": server.name, "version": server.version}
        self.answered = 0  # requests answered here (tests and profiles read it)

    async def answer(self, raw: list[tuple[bytes, bytes]], read: Callable[[], Any], caller: object) -> Response | None:
        """The answer, not yet sent, if the request is a plain ``tools/call``; None if the SDK must answer it.

        ``raw`` are the request's headers as the server gives them (the
        scope's, lower-case names); ``read()`` gives its whole body's JSON
        value (raising ``orjson.JSONDecodeError``: the SDK answers such a
        body), called only once the headers ask for JSON, so the door's read of
        the body is reused (:func:`coordhub.api.inputs.body_value`); ``caller``
        is who the ``/mcp`` request acts as (already authenticated), handed to
        the connector through the tool's context.
        """
        version = self._version(raw)
        if version is None:
            return None
        try:
            message = read()
        except orjson.JSONDecodeError:
            return None
        tool, request_id, arguments = self._plain_call(message)
        if tool is None:
            return None
        modern = version in MODERN_PROTOCOL_VERSIONS
        if modern and (tool.name in self.header_tools or not _modern_route_ok(message, raw)):
            return None
        self.answered += 1
        try:
            result = await self._run(tool, arguments, caller)
        except MCPError as err:  # a protocol error the tool raised on purpose: a JSON-RPC error, as the SDK sends it
            error = err.error.model_dump(by_alias=True, mode="json", exclude_none=True)
            status = ERROR_CODE_HTTP_STATUS.get(err.error.code, 200) if modern else 200
            return _json(status, {"jsonrpc": "2.0", "id": request_id, "error": error})
        wire = _plain_wire(version, result) if isinstance(result, Plain) else _wire(version, result)
        if modern:
            meta = wire.get("_meta")
            wire["_meta"] = {**(meta if isinstance(meta, dict) else {}), SERVER_INFO_KEY: dict(self.server_info)}
        return _json(200, {"jsonrpc": "2.0", "id": request_id, "result": wire})

    @staticmethod
    def _version(raw: list[tuple[bytes, bytes]]) -> str | None:
        """The protocol version the request is served at, if JSON is what it sends and accepts; else ``None``.

        ``raw`` are the request's headers as the server gives them (lower-case
        names); the first of a repeated header counts, as Starlette's
        ``Headers.get`` reads it.
        """
        content_type = accept = version = None
        for key, value in raw:
            if key == b"content-type":
                content_type = value if content_type is None else content_type
            elif key == b"accept":
                accept = value if accept is None else accept
            elif key == b"mcp-protocol-version":
                version = value if version is None else version
        if len(content_type or b"") + len(accept or b"") + len(version or b"") > CACHED_HEADERS:
            return _served_version(content_type, accept, version)  # a client's long values are not kept
        return _cached_version(content_type, accept, version)

    def _plain_call(self, message: Any) -> tuple[Tool | None, Any, dict[str, Any]]:
        """(tool, request id, arguments) of a well-formed ``tools/call`` of a known tool; ``(None, …)`` otherwise."""
        if not isinstance(message, dict) or message.keys() != ENVELOPE_KEYS or message["jsonrpc"] != "2.0" \
                or message["method"] != METHOD:
            return None, None, {}
        request_id, params = message["id"], message["params"]
        if isinstance(request_id, bool) or not isinstance(request_id, int | str) or not isinstance(params, dict) \
                or not params.keys() <= PARAM_KEYS:
            return None, None, {}
        name, arguments, meta = params.get("name"), params.get("arguments"), params.get("_meta")
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)) \
                or not (meta is None or isinstance(meta, dict)):
            return None, None, {}
        return self.tools.get(name), request_id, arguments or {}

    async def _run(self, tool: Tool, arguments: dict[str, Any], caller: object) -> CallToolResult | Plain:
        """The tool's result; a failure as the SDK's handler reports it (``is_error``, the error's text).

        A hub tool's plain answer (:meth:`CoordTool.plain`) comes back as its
        text block and itself, which :func:`_plain_wire` puts on the wire as
        the SDK would put the :class:`CallToolResult` made of them, without
        building one (issue 15).
        """
        context, acting = self.context, CALLER.set(caller)
        try:
            if isinstance(tool, CoordTool):
                found = await tool.answer(arguments, context)
                if tool.plain(found):
                    try:
                        return Plain(shown_text(tool.text(found)), found)
                    except Exception as exc:  # as CoordTool.convert words a conversion failure
                        raise UnexpectedToolError(f"Error executing tool {tool.name}") from exc
                result = shown(tool.convert(found))
            else:
                result = await tool.run(arguments, context, convert_result=True)
        except MCPError:
            raise
        except Exception as exc:
            if isinstance(exc, ToolError) and not isinstance(exc, UnexpectedToolError):
                log.info("Tool %r failed: %r", tool.name, str(exc))
            else:
                log.exception("Tool %r raised an unexpected exception", tool.name)
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        finally:
            CALLER.reset(acting)
        if not isinstance(result, CallToolResult):  # our tools return plain objects; a multi-round result is not ours
            raise TypeError(f"tool {tool.name!r} returned {type(result).__name__}, not a CallToolResult")
        return result


def _served_version(content_type: bytes | None, accept: bytes | None, version: bytes | None) -> str | None:
    """:meth:`DirectCalls._version` of these header values (None: the header is absent)."""
    # The SDK's own test of the media type, exactly: any comma-separated part before the first ";" is the
    # literal, case-sensitive "application/json" (a request it would refuse with 415 must reach it)
    if content_type is None or all(part.strip() != b"application/json"
                                   for part in content_type.split(b";")[0].split(b",")):
        return None
    accepted = {part.split(b";")[0].strip().lower() for part in (accept or b"").split(b",")}
    if accepted.isdisjoint((b"application/json", b"application/*", b"*/*")):
        return None
    if version is None:
        return DEFAULT_NEGOTIATED_VERSION
    text = version.decode("latin-1")
    return text if text in HANDSHAKE_PROTOCOL_VERSIONS or text in MODERN_PROTOCOL_VERSIONS else None


# a fleet's clients send a handful of header combinations (issue 15: ~1 µs a call); values are at most
# CACHED_HEADERS bytes together, so the cache holds at most 64 such triples
_cached_version = functools.lru_cache(maxsize=64)(_served_version)


class Plain(NamedTuple):
    """A tool's plain answer and its text block (see :meth:`DirectCalls._run`)."""

    text: str
    answer: dict[str, Any]


def _plain_wire(version: str, plain: Plain) -> dict[str, Any]:
    """The wire form at ``version`` of the successful result with ``plain``'s text block and structured content."""
    return _shaped(version, False, plain.text, plain.answer)


def _wire(version: str, result: CallToolResult) -> dict[str, Any]:
    """``result`` shaped for the wire at ``version`` by the SDK's surface.

    A hub tool's result is one text block and, unless it failed, its answer
    as structured content (see :class:`coordhub.mcp.server.CoordTool`). The
    surface's dump of such a result depends only on the version, on whether
    it failed and on whether it has structured content; the text and the
    answer (JSON already) pass through it unchanged. So the surface shapes one
    such result per case, once, and each answer is put into a copy of that
    shape (issue 15: the surface's validation and dump of every answer cost
    as much as the rest of the MCP-only work). Any other result is shaped by
    the surface itself.
    """
    structured = result.structured_content
    block = result.content[0] if len(result.content) == 1 else None
    if not isinstance(block, TextContent) or block.annotations is not None or block.meta is not None \
            or result.meta is not None or result.result_type != _PLAIN_RESULT_TYPE \
            or not (structured is None or type(structured) is dict):
        return _surface(version, result)
    return _shaped(version, result.is_error, block.text, structured)


def _shaped(version: str, is_error: bool, text: str, structured: dict[str, Any] | None) -> dict[str, Any]:
    """A one-text-block result at ``version``: a copy of the surface's shape for the case, holding ``text`` and
    ``structured`` (see :func:`_wire`)."""
    shape = _plain_shape(version, is_error, structured is not None)
    wire = {**shape, "content": [{**shape["content"][0], "text": text}]}
    if structured is not None and "structuredContent" in wire:
        wire["structuredContent"] = structured
    return wire


_PLAIN_RESULT_TYPE = CallToolResult.model_fields["result_type"].default


@functools.cache
def _plain_shape(version: str, is_error: bool, structured: bool) -> dict[str, Any]:
    """The surface's dump at ``version`` of a one-text-block result (empty text; empty structured content if any)."""
    return _surface(version, CallToolResult(content=[TextContent(type="text", text="")], is_error=is_error,
                                            structured_content={} if structured else None))


def _surface(version: str, result: CallToolResult) -> dict[str, Any]:
    """The SDK's per-version dump of ``result`` (:func:`mcp_types.methods.serialize_server_result`)."""
    return serialize_server_result(METHOD, version, result.model_dump(by_alias=True, mode="json", exclude_none=True))


def _modern_route_ok(message: dict[str, Any], raw: list[tuple[bytes, bytes]]) -> bool:
    """Whether a 2026 request passes the SDK's routing ladder with no ``Mcp-Param-*`` header to check.

    ``raw`` are the request's headers as sent (lower-case names).
    """
    pairs = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in raw]
    first: dict[str, str] = {}
    for key, value in pairs:  # the first of a repeated header counts, as Starlette's Headers.get
        first.setdefault(key, value)
    if any(key.startswith("mcp-param-") for key in first):
        return False
    if find_duplicated_routing_header(pairs) is not None:
        return False
    return isinstance(classify_inbound_request(message, headers=first), InboundModernRoute)


def _json(status: int, payload: dict[str, Any]) -> Response:
    """``payload`` as the JSON answer the SDK sends (``content-type: application/json``, compact)."""
    return Response(orjson.dumps(payload), status, media_type="application/json")
