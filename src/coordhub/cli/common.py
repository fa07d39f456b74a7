"""What every client command shares: global options, the client, and errors → exit codes.

Exit codes (also in ``docs/cli.md``):

====  ==========================================================
0     success, or a write queued for later (hub unreachable)
1     the hub refused the request (bad input, not found, …)
2     usage error (unknown command, bad flag or argument)
3     the hub is unreachable (reads cannot be queued)
4     conflict: a lease is held by another session, or a stale fence
5     the fleet is halted
6     authentication or permission: missing/unknown token, not yours
====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from coordhub.cli.output import console, print_json
from coordhub.client import CoordClient, HubError, Queued, Unreachable, resolve
from coordhub.core.identity import is_broadcast
from coordhub.errors import CoordError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CONFLICT, EXIT_HALTED, EXIT_AUTH = range(7)


@dataclass
class Options:
    """The global options given before the command (``coord --url … msg inbox``)."""

    url: str | None = None
    token: str | None = None
    session: str | None = None
    queue_file: str | None = None
    timeout: float | None = None


def options(ctx: typer.Context) -> Options:
    """The global options of this invocation."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Options) else Options()


@contextmanager
def client(ctx: typer.Context) -> Iterator[CoordClient]:
    """A client configured from the global options, environment and identity.json."""
    o = options(ctx)
    try:
        settings = resolve(o.url, o.token, o.session, o.queue_file, o.timeout)
    except CoordError as exc:
        fail(exc.message, EXIT_USAGE)
    with CoordClient(settings) as c:
        yield c


def fail(message: str, code: int) -> None:
    """Print one error line on stderr and exit with ``code``."""
    typer.echo(f"coord: {message}", err=True)
    raise typer.Exit(code)


def _exit_code(err: HubError) -> int:
    if err.status == 409:
        return EXIT_CONFLICT
    if err.status == 423:
        return EXIT_HALTED
    if err.status in (401, 403):
        return EXIT_AUTH
    return EXIT_REFUSED


def call(ctx: typer.Context, fn: Callable[[CoordClient], Any]) -> Any:
    """Run ``fn`` with a client; turn hub errors into one line and an exit code.

    A :class:`Queued` result is reported and the command exits 0 (seed 001
    softfail: coordination must never block work).
    """
    with client(ctx) as c:
        try:
            result = fn(c)
        except HubError as err:
            fail(f"{err.message} [{err.status} {err.code}]", _exit_code(err))
        except Unreachable as err:
            fail(f"hub at {c.settings.url} is unreachable: {err}", EXIT_UNREACHABLE)
        _report_drain(c)
        if isinstance(result, Queued):
            console.print(f"hub unreachable ({result.reason}); {result.method} {result.path} queued in "
                          f"{c.settings.queue_file} ({result.pending} pending). It is sent by `coord sync` "
                          "or the next command that reaches the hub.")
            raise typer.Exit(EXIT_OK)
        return result


def _report_drain(c: CoordClient) -> None:
    """Say on stderr what a drain of the softfail queue before this command did."""
    if c.last_drain is None:
        return
    applied, rejected, left = c.last_drain
    if applied or rejected:
        typer.echo(f"coord: sent {applied} queued write(s) first" + (
            f"; {rejected} refused by the hub, kept in {c.queue.rejected}" if rejected else "") + (
            f"; {left} still queued" if left else ""), err=True)


def show(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON or through ``human``."""
    if as_json:
        print_json(data)
    else:
        human(data)


def expand_recipient(to: str) -> str | None:
    """Seed 000 addressing: ALL/fleet/broadcast → None (broadcast); MACHINE → MACHINE/claude-main."""
    if is_broadcast(to):
        return None
    return to if "/" in to else f"{to}/claude-main"


def read_text_arg(text: str | None, path: Path | None, what: str) -> str:
    """The text given inline or, with ``--{what}-file``, read from a file (``-`` is stdin)."""
    if path is not None and text is not None:
        fail(f"give the {what} inline or with --{what}-file, not both", EXIT_USAGE)
    if path is None:
        if text is None:
            fail(f"missing {what}: give it as an argument or with --{what}-file", EXIT_USAGE)
        return text  # type: ignore[return-value]
    try:
        return typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", EXIT_USAGE)
    raise AssertionError("unreachable")


JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
