"""The MCP server: one tool set per profile, served over any transport.

Profiles (``coord mcp --tools``, env ``COORD_MCP_TOOLS``):

* ``default``: the compact set of :mod:`coordhub.mcp.tools`; its
  ``tools/list`` must stay under 5,000 tokens (tested);
* ``seed002``: seed 002's eight ``coord_*`` tools only (:mod:`coordhub.mcp.seed002`);
* ``all``: both.

The caller's connection to the hub comes from ``connector``, an async
context manager factory entered once in the server's lifespan: stdio uses a
client built from ``COORD_URL``/``COORD_TOKEN``; ``/mcp`` uses the hub's own
app in-process with the HTTP caller's token.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import orjson
import pydantic_core
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from coordhub import __version__
from coordhub.errors import MAX_UNKNOWN_FIELDS, describe_problem, too_many_unknown
from coordhub.hooks.untrusted import HIDDEN
from coordhub.mcp import PROFILE_ENV, PROFILE_NAMES, seed002, tools
from coordhub.mcp.connect import Connector

__all__ = ["PROFILE_ENV", "PROFILES", "build_server", "profile_tools"]

PROFILES: dict[str, tuple[Callable[..., Any], ...]] = dict(
    zip(PROFILE_NAMES, (tools.DEFAULT, seed002.SEED002, tools.DEFAULT + seed002.SEED002), strict=True))
READ_ONLY = tools.READ_ONLY | seed002.READ_ONLY
INSTRUCTIONS = ("coordhub: the coordination hub of a fleet of coding agents (messages, leases, todos, work items, "
                "presence, status). You act as the session of your token: you are always the sender of what "
                "you send. Lease what you are about to change and release it when done.")


def build_server(profile: str, connector: Callable[[], AbstractAsyncContextManager[Connector]]) -> MCPServer:
    """An MCP server offering ``profile``'s tools; ``connector()`` is entered for the server's lifetime.

    Raises ``ValueError`` for an unknown profile.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown tool profile {profile!r}: use one of {', '.join(PROFILES)}")

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[Connector]:
        async with connector() as conn:
            yield conn

    return MCPServer("coordhub", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
                     tools=list(_tools(profile)), log_level="WARNING")


def profile_tools(profile: str) -> dict[str, Tool]:
    """The tools ``build_server(profile, …)`` serves, by name (the same objects)."""
    return {tool.name: tool for tool in _tools(profile)}


@functools.cache
def _tools(profile: str) -> tuple[Tool, ...]:
    """The profile's tools, built once per process (schemas come from the signatures; a server per hub
    app and profile would otherwise rebuild them)."""
    return tuple(_tool(fn) for fn in PROFILES[profile])


class CoordTool(Tool):
    """A tool whose argument errors read like every other refusal: ``invalid: <field>: <problem>``.

    The SDK reports arguments that do not match the input schema with
    pydantic's multi-line text; docs/mcp.md promises ``<code>: <message>``
    (issue 7 point 20), worded as the REST API words a 422
    (:func:`coordhub.errors.describe_problem`).

    Every hub tool returns ``dict[str, Any]`` built from the hub's decoded JSON
    answer. The SDK's result conversion validates such a dict against
    ``dict[str, Any]`` and dumps it to JSON-able values, a copy of the whole
    answer that changes nothing in it (its keys are strings, its values JSON
    already); :meth:`run` makes the same :class:`CallToolResult` (the same text
    block, the dict as structured content, dumped on the wire as the SDK's copy
    would be) without that copy (issue 15), and leaves every other result to
    the SDK. What :meth:`run` answers has its text blocks :func:`shown`.
    """

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        """Run as the SDK does; arguments that do not fit (checked once, by the SDK) are ``ToolError`` ``invalid:``."""
        result = await self.answer(arguments, context)
        return shown(self.convert(result)) if convert_result else result

    def convert(self, result: Any) -> Any:
        """``result`` converted as the SDK converts a tool's return value; ``UnexpectedToolError`` as it words a
        failure."""
        try:
            return self._converted(result)
        except Exception as exc:
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc

    async def answer(self, arguments: dict[str, Any], context: Any) -> Any:
        """The tool function's own return value (:meth:`run` unconverted), with the ``invalid:`` wording.

        An argument the tool does not take is refused as the REST API refuses an unknown field (docs/mcp.md: the
        validation rules are the REST ones), not dropped: the SDK dropped it, so ``inbox`` with
        ``{"session_id": "<another session>"}`` answered the caller's own inbox as if it were the other's, and
        ``send_message`` with ``from_session`` went out from the caller unsaid (contract §2.2: a field naming
        another session is refused).
        """
        unknown = [name for name in arguments if name not in self._declared]
        if len(unknown) > MAX_UNKNOWN_FIELDS:  # bounded as REST bodies are: not one problem per key of a flood
            raise ToolError(f"Error executing tool {self.name}: invalid: {too_many_unknown(unknown)}")
        if unknown:
            problems = "; ".join(describe_problem("extra_forbidden", name[:40], "") for name in sorted(unknown))
            raise ToolError(f"Error executing tool {self.name}: invalid: {problems}")
        try:
            return await super().run(arguments, context, convert_result=False)
        except UnexpectedToolError:  # a crash, whatever its cause: the SDK's generic text
            raise
        except ToolError as err:
            if not isinstance(err.__cause__, ValidationError):  # the tool's own refusal
                raise
            problems = "; ".join(describe_problem(e["type"], ".".join(str(p) for p in e["loc"]) or "arguments",
                                                  e["msg"], e.get("input")) for e in err.__cause__.errors())
            raise ToolError(f"Error executing tool {self.name}: invalid: {problems}") from None

    def plain(self, result: Any) -> bool:
        """Whether ``result`` is a plain answer: a dict with string keys from a tool whose output is
        ``dict[str, Any]``, so its converted result is :meth:`text` of it and the dict as structured content."""
        return type(result) is dict and self._dict_output and all(type(key) is str for key in result)

    @functools.cached_property
    def _declared(self) -> frozenset[str]:
        """The names of the arguments the tool takes (its input schema's properties)."""
        return frozenset(self.parameters.get("properties") or ())

    @functools.cached_property
    def _dict_output(self) -> bool:
        """Whether the tool's declared output is ``dict[str, Any]``, structured and unwrapped (read once: the
        metadata does not change, and reading it cost ~3 µs a call)."""
        meta = self.fn_metadata
        return not meta.wrap_output and meta.output_schema is not None and _any_dict(meta.output_model)

    @staticmethod
    def text(answer: dict[str, Any]) -> str:
        """The text block the SDK makes of a plain answer (its JSON, indented by two).

        orjson writes the same text as the SDK's ``pydantic_core.to_json`` for
        the JSON values a hub answer holds, in a third of the time; what it
        does not take (an integer past 64 bits) goes the SDK's way.
        """
        try:
            return orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()
        except TypeError:  # orjson.JSONEncodeError
            return pydantic_core.to_json(answer, fallback=str, indent=2).decode()

    def _converted(self, result: Any) -> Any:
        """The SDK's :meth:`FuncMetadata.convert_result` of ``result``, without re-dumping a plain answer dict."""
        if not self.plain(result):
            return self.fn_metadata.convert_result(result)
        return CallToolResult(content=[TextContent(type="text", text=self.text(result))], structured_content=result)


_HIDDEN = re.compile(f"[{HIDDEN}]")


def shown(result: Any) -> Any:
    """``result`` (a converted tool result) with every character of :data:`coordhub.hooks.untrusted.HIDDEN` in its
    text blocks written as a JSON ``\\uXXXX`` escape; the structured content is left as it is.

    The SDK (and :meth:`CoordTool.text`, its equal) writes C1 controls, line
    and paragraph separators, bidirectional controls and invisible characters
    into JSON strings as they are. In a subject, body or description another
    session wrote they would reach the model unseen by the user reviewing the
    transcript (tag characters spell ASCII no terminal draws), or reorder what
    the user sees. Escaped, a text block that is JSON is still JSON of the
    same answer. Every result a client gets passes here: the SDK's handler
    through :meth:`CoordTool.run`, the direct ``tools/call`` through
    :func:`shown_text`.
    """
    if not isinstance(result, CallToolResult) or all(
            not isinstance(b, TextContent) or b.text.isascii() for b in result.content):
        return result
    blocks = [b.model_copy(update={"text": shown_text(b.text)}) if isinstance(b, TextContent) else b
              for b in result.content]
    return result.model_copy(update={"content": blocks})


def shown_text(text: str) -> str:
    """``text`` with every :data:`~coordhub.hooks.untrusted.HIDDEN` character as a JSON string escape (RFC 8259 §7:
    a surrogate pair above U+FFFF); ``text`` itself when it is ASCII (the common case, decided in C)."""
    return text if text.isascii() else _HIDDEN.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


@functools.cache
def _any_dict(output_model: Any) -> bool:
    """Whether the SDK's output model is ``dict[str, Any]`` (it wraps that annotation in ``Annotated``)."""
    inner = get_args(output_model)[0] if get_origin(output_model) is Annotated else output_model
    return bool(inner == dict[str, Any])


class _Arguments(FuncMetadata):
    """The SDK's argument handling, with its JSON pre-parse kept to the arguments that are not text.

    Before validating, the SDK tries ``json.loads`` on every string argument
    whose field is not plainly ``str`` and keeps the result when it is a list,
    an object or ``null`` (clients that send a list as JSON inside a string).
    A text field that may be left out (``str | None``) is not plainly ``str``
    to it, so a note written as ``{"sha": "abc"}`` was refused and one written
    ``null`` was dropped (review): text fields keep what was written. Of the
    others, text whose first character past JSON's whitespace is none of
    ``[ { n t f`` cannot decode to a list, an object or null, and trying costs
    a raised ``JSONDecodeError`` per argument (issue 15); such arguments are
    left as they are, as the SDK would leave them.
    """

    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        """The SDK's :meth:`FuncMetadata.pre_parse_json` of the arguments of ``data`` whose field is not text."""
        texts = _text_fields(self.arg_model)
        others = {k: v for k, v in data.items() if k not in texts}
        for value in others.values():
            if isinstance(value, str) and value.lstrip(" \t\n\r")[:1] in _MAY_DECODE:
                return {**data, **super().pre_parse_json(others)}
        return dict(data)

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        """The SDK's :meth:`FuncMetadata.validate_arguments`: the validated model's fields one level deep, read
        off the model's ``__dict__`` when no field has an alias (the SDK's dump reads each field's value by
        name and keys it by alias, ~2 µs a call), else as the SDK dumps them."""
        model = self.arg_model.model_validate(self.pre_parse_json(arguments_to_validate))
        return model.model_dump_one_level() if _aliased(self.arg_model) else dict(model.__dict__)


@functools.cache
def _text_fields(arg_model: type[BaseModel]) -> frozenset[str]:
    """The names (and aliases) of a tool's arguments whose type admits text (``str``, ``str | None``, …)."""
    return frozenset(name for field_name, field in arg_model.model_fields.items() if _admits_text(field.annotation)
                     for name in (field_name, field.alias) if name)


def _admits_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if get_origin(annotation) is Annotated:
        return _admits_text(get_args(annotation)[0])
    return get_origin(annotation) in (Union, UnionType) and any(_admits_text(a) for a in get_args(annotation))


@functools.cache
def _aliased(arg_model: type[BaseModel]) -> bool:
    """Whether a tool's argument model has a field whose dumped name (its alias) is not its own."""
    return any(field.alias for field in arg_model.model_fields.values())


_MAY_DECODE = frozenset("[{ntf")  # first characters of JSON arrays, objects, null, true and false


def _tool(fn: Callable[..., Any]) -> Tool:
    read_only = ToolAnnotations(read_only_hint=True) if fn.__name__ in READ_ONLY else None
    tool = CoordTool.from_function(fn, annotations=read_only, structured_output=True)
    meta = tool.fn_metadata
    tool.fn_metadata = _Arguments.model_construct(**{name: getattr(meta, name) for name in FuncMetadata.model_fields})
    _compact(tool.parameters)
    if tool.output_schema is not None:
        _compact(tool.output_schema)
    return tool


def _compact(schema: Any) -> None:
    """Drop the generated ``title`` keywords from a JSON schema, in place (they repeat the names and cost
    context; a property *named* ``title`` is a dict and stays)."""
    if isinstance(schema, dict):
        if isinstance(schema.get("title"), str):
            del schema["title"]
        for value in schema.values():
            _compact(value)
    elif isinstance(schema, list):
        for item in schema:
            _compact(item)
