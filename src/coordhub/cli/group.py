"""The root ``coord`` group: subcommands imported on first use, and two corrections to Typer's parameters.

Start-up is part of every command's cost (issue 7 point 18), and three things
dominated it before a single request was sent:

* every subcommand module (and what it imports: the server, MCP, Rich, the
  HTTP stack) was imported to build the command tree. Here the root group
  knows each subcommand by name and the ``module:attribute`` that defines it
  (:class:`LazyCommands`), and imports it only when it runs or ``--help``
  lists it;
* Typer 0.29 coerces every parameter value through a Pydantic ``TypeAdapter``,
  so any command imported Pydantic and built adapters (about 0.4 s here) even
  for ``--limit 100``. :class:`FastCoercion` returns at once the values whose
  coercion cannot change or reject them (a ``str`` for a ``str``, an integer
  literal within its bounds for an ``int``, a listed value of a ``Literal``
  choice …) and hands every other value to
  Typer's own coercion, so results and error messages are Typer's. It is
  installed as the way every Typer parameter gets its coercion, since click
  also creates parameters while parsing (``--help``);
* (not speed) Typer's help shows a value placeholder (``<bool>``) for boolean
  flags, which take none: :func:`_display_type` leaves it out, for every flag
  (``--help`` included).

These rely on Typer internals (``typer._coercion``, ``typer._typing``, ``get_runtime_param``,
``display_type_rich``), so the
dependency is pinned below the next minor version, and ``tests/cli/test_startup.py``
checks the coercion against Typer's own on the same values.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, get_args

import typer
import typer.main
from typer._click.exceptions import BadParameter, NoSuchOption, UsageError
from typer._coercion import RuntimeParam, build_runtime_param
from typer._typing import is_literal_type
from typer.core import TyperGroup, TyperOption, _TyperParameter

_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


@dataclass(frozen=True)
class FastCoercion(RuntimeParam):
    """Typer's coercion of one parameter, without Pydantic for values it would return unchanged.

    ``str`` values of ``str`` parameters, listed ``str`` values of ``Literal`` parameters (the choices of
    :mod:`coordhub.core.vocab`), and ``int``/``float`` values (or plain
    decimal literals) of number parameters within their ``min``/``max`` (and not
    clamped) are returned as Typer would return them; anything else (other
    types, other spellings, out of bounds) goes to Typer's Pydantic adapter,
    which gives the result or the error message. One difference from Typer: a
    ``float`` that is not finite (``nan``, ``inf``, ``1e400``) is a usage error
    (``BadParameter``, exit 2) instead of a value.
    """

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        fast = self._fast(value)
        if fast is not None:
            return fast
        result = build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)
        if isinstance(result, float) and not math.isfinite(result):
            # Pydantic's float takes 'nan', 'inf' and '1e400'; no option of coord means anything by them, and they
            # ended in a traceback (`lock claim --ttl nan`: the JSON body cannot hold it; `--timeout inf`: the socket)
            raise BadParameter(f"Input should be a finite number, not {value!r}", ctx=ctx, param=param)
        return result

    def _fast(self, value: Any) -> Any:
        info, kind = self.parameter_info, self.annotation
        if kind is str:
            return value if type(value) is str and info.parser is None else None
        if is_literal_type(kind):  # a choice (coordhub.core.vocab): a listed value is returned as typed
            return value if type(value) is str and value in get_args(kind) and info.case_sensitive else None
        if kind not in (int, float) or info.parser is not None or info.clamp:
            return None
        if type(value) is str:
            pattern = _INT if kind is int else _FLOAT
            value = kind(value) if pattern.fullmatch(value) else None
        if type(value) is not kind:
            return None
        if (info.min is not None and value < info.min) or (info.max is not None and value > info.max):
            return None
        return value


def _runtime_param(param: _TyperParameter) -> RuntimeParam:
    """Replaces ``_TyperParameter.get_runtime_param``: :class:`FastCoercion`, except for file parameters."""
    if param._runtime_param is None:
        d = param.type_descriptor
        param._runtime_param = (build_runtime_param(d) if d.file_annotation is not None else
                                FastCoercion(annotation=d.annotation, parameter_info=d.parameter_info))
    return param._runtime_param


# Every parameter Typer creates, the ones click adds while parsing (--help) included.
_TyperParameter.get_runtime_param = _runtime_param  # type: ignore[method-assign,assignment]


def _display_type(option: TyperOption, ctx: Any) -> str | None:
    """Replaces ``TyperOption.display_type_rich``: no value placeholder for a flag (issue 7 point 19)."""
    return None if option.is_flag and option.metavar is None else _TYPER_DISPLAY_TYPE(option, ctx)


_TYPER_DISPLAY_TYPE = TyperOption.display_type_rich
TyperOption.display_type_rich = _display_type  # type: ignore[method-assign,assignment]


ARGS_KEY = "coordhub.args"  # ctx.meta: the root group's command line, for json_usage_error


def json_usage_error(exc: UsageError, args: list[str], root: Any) -> None:
    """Print usage error ``exc`` as the CLI's JSON error envelope on stdout (``{"error": {"code": "usage",
    "message": …}}``, as :func:`coordhub.cli.common.fail` prints every other error) when the command line ``args``
    of the ``root`` group asks for JSON (:func:`asks_json`); Typer then prints its own error on stderr and exits 2,
    as without it.

    docs/cli.md promises JSON with ``--json`` whatever happens; a bad flag value (``lock claim … --ttl abc
    --json``) is found while the options are parsed, before the command's own ``--json`` is known, so the
    command line decides, wherever ``--json`` stands in it as that command's option.
    """
    from coordhub.cli import exits

    if exc.exit_code == exits.EXIT_USAGE and asks_json(root, args):
        from coordhub.cli.output import print_json

        print_json(exits.error_envelope(exits.EXIT_USAGE, exc.format_message()))


def asks_json(root: Any, args: list[str]) -> bool:
    """Whether ``--json`` stands in ``args`` (the ``root`` group's command line) as an option of the command it
    runs, read the way click reads the line, so even past the option that is in error.

    Each level (the root group, a subcommand group, the command) is read with its own options: one that takes a
    value takes the next word (``--type --json``: ``--json`` is the value) unless given as ``--opt=value``; the
    first other word of a group names its subcommand; ``--`` ends the options. An option click does not know is
    taken for a flag. ``--json`` counts only where the command being run (the last level reached) has it as a
    flag: ``msg send X -- --json`` (a body), ``msg send X S --type --json`` (a value) or ``--json`` given to a
    command without it is no request for JSON. A line whose subcommand names no command (``coord todo lst
    --json``) is read as before this rule: ``--json`` anywhere before a ``--``.
    """
    command, i, wants = root, 0, False
    while True:
        takes_value = _option_table(command)
        is_group = isinstance(getattr(command, "commands", None), Mapping)
        name: str | None = None
        wants = False
        while i < len(args):
            word = args[i]
            i += 1
            if word == "--":
                if not is_group:
                    return wants  # the rest are arguments
                name, i = (args[i], i + 1) if i < len(args) else (None, i)
                break
            if word.startswith("--"):
                option, eq, _ = word.partition("=")
                if option == "--json" and not eq and takes_value.get(option) is False:
                    wants = True
                if takes_value.get(option) and not eq:
                    i += 1
            elif word.startswith("-") and len(word) > 1:
                if takes_value.get(word[:2]) and len(word) == 2:  # -f VALUE; -fVALUE and flags take no word
                    i += 1
            elif is_group:
                name = word
                break
        if name is None:  # the line ends here: this level is the command being run
            return wants
        found = command.commands.get(name)
        if found is None:
            words = args[:args.index("--")] if "--" in args else args
            return "--json" in words
        command = found


def _option_table(command: Any) -> dict[str, bool]:
    """Every option name of click ``command`` (``--x``, ``-x``, ``--no-x``) → whether it takes a value."""
    table: dict[str, bool] = {}
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", None) != "option":
            continue
        flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
        for opt in (*param.opts, *getattr(param, "secondary_opts", ())):
            table[opt] = not flag
    return table


def load(name: str, target: str, root: typer.Typer) -> Any:
    """The click command of ``target`` (``module:attribute``, a function or a Typer app), named ``name``.

    Built as Typer builds a command registered with ``root.command(name)`` or a
    group added with ``root.add_typer(app, name=name)``.
    """
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if isinstance(obj, typer.Typer):
        group = typer.main.get_group(obj)
        group.name = name
        return group
    return typer.main.get_command_from_info(typer.models.CommandInfo(name=name, callback=obj),
                                           pretty_exceptions_short=root.pretty_exceptions_short,
                                           rich_markup_mode=root.rich_markup_mode)


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands: every name known up front, a lazy one built (and its module imported) on first lookup.

    ``first`` and ``last`` map names to ``module:attribute`` targets; commands
    registered on the Typer app itself (``eager``) come between them in --help.
    """

    def __init__(self, eager: dict[str, Any], first: dict[str, str], last: dict[str, str],
                 build: Callable[[str, str], Any]) -> None:
        self._lazy = {**first, **last}
        self._order = [*first, *(n for n in eager if n not in self._lazy), *last]
        self._loaded = dict(eager)
        self._build = build

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in self._lazy:
                raise KeyError(name)
            self._loaded[name] = self._build(name, self._lazy[name])
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._order:
            self._order.append(name)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._loaded.pop(name, None)
        self._lazy.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)


def lazy_group(root: Callable[[], typer.Typer], first: dict[str, str], last: dict[str, str],
               misnamed: dict[str, str] | None = None, front: tuple[str, ...] = ()) -> type[TyperGroup]:
    """A ``TyperGroup`` class (for ``typer.Typer(cls=…)``) whose commands are :class:`LazyCommands`.

    ``root`` returns the Typer app the group belongs to (called when a lazy
    command is built, so the app may be defined after the class). ``misnamed``
    maps a name that is no command to what the error says instead of Typer's
    spelling suggestions (``hooks`` → where the hooks are). ``front``: the
    names ``--help`` lists first, in that order (a newcomer's commands); the
    rest follow in the order they were given.
    """
    hints = misnamed or {}

    class CoordGroup(TyperGroup):
        """The root ``coord`` group; listing its command names imports nothing."""

        def __init__(self, *args: Any, commands: dict[str, Any] | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands = LazyCommands(dict(commands or {}), first, last,
                                         lambda name, target: load(name, target, root()))

        def list_commands(self, ctx: Any) -> list[str]:
            """Every command name, in --help order (``front`` first), without importing any module."""
            names = list(self.commands)
            first = [n for n in front if n in names]
            return first + [n for n in names if n not in first]

        def resolve_command(self, ctx: Any, args: list[str]) -> Any:
            """Typer's, with the ``misnamed`` hint for a name newcomers guess (``coord hooks``, ``coord message``)."""
            try:
                return super().resolve_command(ctx, args)
            except UsageError as exc:
                if args and args[0] in hints:
                    exc.message = f"No such command {args[0]!r}. {hints[args[0]]}"
                raise

        def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
            """Typer's, keeping the command line for :meth:`invoke`; a usage error in the global options (``coord
            --timeout abc status --json``) is also printed as JSON when asked (:func:`json_usage_error`)."""
            try:
                ctx = super().make_context(info_name, args, parent, **extra)
            except UsageError as exc:
                json_usage_error(exc, args, self)
                raise
            ctx.meta[ARGS_KEY] = list(args)
            return ctx

        def invoke(self, ctx: Any) -> Any:
            """Run the command; a global option given after it (``coord status --url …``) is a usage error that
            says where it goes, rather than a bare "No such option". A usage error on a command line that asks
            for ``--json`` is also printed as JSON (:func:`json_usage_error`)."""
            try:
                try:
                    return super().invoke(ctx)
                except NoSuchOption as exc:
                    if exc.option_name in {name for param in self.params for name in param.opts}:
                        where = exc.ctx.command_path.removeprefix(ctx.command_path).strip() if exc.ctx else "COMMAND"
                        exc.message = (f"{exc.option_name} is a global option: give it before the command "
                                       f"({ctx.command_path} {exc.option_name} … {where})")
                        exc.possibilities = None
                    raise
            except UsageError as exc:
                json_usage_error(exc, ctx.meta.get(ARGS_KEY, []), self)
                raise

    return CoordGroup
