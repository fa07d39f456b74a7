"""What every client command shares: global options, the client, and errors → exit codes.

The exit codes, envelopes and error lines are :mod:`coordhub.cli.exits`'
(shared with the fast path of :mod:`coordhub.cli.fast`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer

from coordhub.cli import exits
from coordhub.cli.exits import (
    ERROR_CODES,
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_HALTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from coordhub.cli.output import console, print_json
from coordhub.client import CoordClient, HubError, Queued, Unreachable, resolve
from coordhub.client.outcomes import BadArgument
from coordhub.client.queue import MAX_FAILED_REPLAYS, QueueUnusable
from coordhub.client.settings import admin_token_note
from coordhub.core.identity import is_broadcast, main_session, validate_session_id
from coordhub.errors import CoordError, Invalid
from coordhub.hooks.untrusted import one_line

__all__ = ["ERROR_CODES", "EXIT_AUTH", "EXIT_CONFLICT", "EXIT_HALTED", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNREACHABLE",
           "EXIT_USAGE"]


@dataclass
class Options:
    """The global options given before the command (``coord --url … msg inbox``)."""

    url: str | None = None
    token: str | None = None
    session: str | None = None
    queue_file: str | None = None
    timeout: float | None = None
    admin: bool = False
    url_hinted: bool = False  # the default-URL hint was printed in this invocation (see url_hint)


def options(ctx: typer.Context) -> Options:
    """The global options of this invocation."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Options) else Options()


def url_hint(ctx: typer.Context, url_source: str | None) -> str:
    """:func:`exits.default_url_hint` once per command invocation: for the first line about the hub, empty after.

    Every line that reports the hub (unreachable, a token it may not get, a
    write queued for it) takes its hint from here, so a command that reports
    it more than once (a :func:`call` per request it makes) says why that URL
    was asked once; later lines name the URL anyway.
    """
    o = options(ctx)
    hint = "" if o.url_hinted else exits.default_url_hint(url_source)
    o.url_hinted = o.url_hinted or bool(hint)
    return hint


@contextmanager
def client(ctx: typer.Context, admin: bool = False) -> Iterator[CoordClient]:
    """A client configured from the global options, environment and identity.json.

    ``admin`` marks an admin command (``token …``, ``halt``, ``resume``,
    force-release): without a token of its own it uses the local hub's admin
    token. Any command uses it with the global ``--admin``. Issue 7 point 1:
    never otherwise. A bad URL, identity.json or flag is a usage error (2); a
    credential that is missing or may not be sent here is exit 6.
    """
    o = options(ctx)
    try:
        settings = resolve(o.url, o.token, o.session, o.queue_file, o.timeout,
                           admin="always" if o.admin else "fallback" if admin else "never")
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)
    except CoordError as exc:
        fail(exc.message, EXIT_AUTH)
    notes = list(settings.notes)
    if o.session and settings.token and not settings.session_claimed:  # else sent with the token: the hub checks it
        notes.append(f"--session {o.session} is not used: " + ("the hub's admin token acts as the admin"
                     if settings.token_is_admin else "an admin command acts as its token's session"))
    elif settings.token_is_admin and settings.admin_hub_id is None:
        notes.append(admin_token_note(settings))
    for note in notes:  # notes name paths of the repository, which may hold terminal escapes
        typer.echo(f"coord: warning: {one_line(note)}", err=True)
    with CoordClient(settings, heartbeat=True) as c:  # the command counts as its session's activity
        try:
            yield c
        except QueueUnusable as exc:  # the softfail queue file cannot be used: a local file, not a credential
            fail(exc.message, EXIT_REFUSED)
        except CoordError as exc:  # no credential, or a URL the token may not go to: nothing was sent
            fail(exc.message + url_hint(ctx, settings.url_source), EXIT_AUTH)


def fail(message: str, code: int, envelope: dict[str, Any] | None = None) -> NoReturn:
    """Print one error line on stderr and exit with ``code``.

    With ``--json`` the error is also printed on stdout as the JSON error
    envelope (issue 7 point 19): ``envelope`` when given (the hub's own), else
    ``{"error": {"code": <ERROR_CODES name>, "message": message}}``.
    """
    if wants_json():
        print_json(envelope or exits.error_envelope(code, message))
    typer.echo(f"coord: {message}", err=True)
    raise typer.Exit(code)


def wants_json() -> bool:
    """Whether the running command was given ``--json`` (its ``as_json`` parameter)."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return bool(ctx is not None and ctx.params.get("as_json"))


def hub_envelope(err: HubError) -> dict[str, Any]:
    """The hub's error envelope of a refusal (``{"error": {"code", "message", …}}``), with its HTTP status."""
    return exits.hub_envelope(err.status, err.code, err.message, err.body)


def call(ctx: typer.Context, fn: Callable[[CoordClient], Any], admin: bool = False) -> Any:
    """Run ``fn`` with a client (``admin``: see :func:`client`); turn hub errors into one line and an exit code.

    A :class:`~coordhub.client.outcomes.BadArgument` (an argument the client refused before sending or queueing
    anything, e.g. a lease id that is no id: :func:`coordhub.client.calls.record_id`) is a usage error, exit 2.
    A :class:`Queued` result is reported and the command exits 0 (seed 001
    softfail: coordination must never block work); with ``--json`` the report
    goes to stderr and stdout gets ``{"queued": true, …}`` (a script reads JSON
    whatever happens: docs/cli.md).
    """
    with client(ctx, admin) as c:
        try:
            result = fn(c)
        except BadArgument as err:  # an id that is no id, found before anything was sent or queued: a usage error
            fail(err.message, EXIT_USAGE)
        except HubError as err:
            hint = (" (to act as the hub's admin on its machine, add --admin)"
                    if admin and err.status == 403 and not c.settings.admin_hub_id
                    else exits.no_session_hint(err.status, c.settings.token, c.settings.session))
            fail(exits.refusal(err.message, err.status, err.code) + hint, exits.exit_code(err.status),
                 hub_envelope(err))
        except Unreachable as err:
            fail(exits.unreachable(c.settings.url, str(err)) + url_hint(ctx, c.settings.url_source), EXIT_UNREACHABLE)
        _report_drain(c)
        if isinstance(result, Queued):
            note = (f"hub unreachable ({result.reason}); {result.method} {result.path} queued in "
                    f"{c.settings.queue_file} ({result.pending} pending). It is sent by `coord sync` "
                    "or the next command that reaches the hub." + url_hint(ctx, c.settings.url_source))
            if wants_json():
                typer.echo(f"coord: {note}", err=True)
                print_json({"queued": True, "method": result.method, "path": result.path,
                            "idempotency_key": result.idempotency_key, "pending": result.pending,
                            "queue_file": str(c.settings.queue_file), "reason": result.reason})
            else:
                console.print(note)
            raise typer.Exit(EXIT_OK)
        return result


def _report_drain(c: CoordClient) -> None:
    """Say on stderr what a drain of the softfail queue before this command did, and what it left alone."""
    if c.last_drain is None:
        return
    d = c.last_drain
    if d.applied or d.rejected:
        typer.echo(f"coord: sent {d.applied} queued write(s) first" + (
            f"; {d.rejected} refused by the hub, kept in {c.queue.rejected}" if d.rejected else "") + (
            f"; {d.left} still queued" if d.left else ""), err=True)
    if d.foreign:
        typer.echo(foreign_note(c, d.foreign), err=True)
    if d.expired:
        typer.echo(expired_note(c, d.expired), err=True)
    if d.gave_up:
        typer.echo(gave_up_note(c, d.gave_up), err=True)


def gave_up_note(c: CoordClient, count: int) -> str:
    """The line that reports queued writes given up after the hub answered 5xx to every replay of them."""
    return (f"coord: {count} queued write(s) the hub answered 5xx to {MAX_FAILED_REPLAYS} times not sent again: "
            f"moved to {c.queue.rejected} (see its gave_up note); check whether each took effect and redo those "
            "that did not")


def expired_note(c: CoordClient, count: int) -> str:
    """The line that reports queued writes set aside unsent because the hub no longer knows their keys."""
    return (f"coord: {count} queued write(s) older than the hub keeps idempotency keys not sent (a replay could "
            f"apply one twice): moved to {c.queue.expired}; check whether each took effect and redo those that "
            "did not")


def foreign_note(c: CoordClient, count: int) -> str:
    """The line that reports queue entries this client did not write."""
    return (f"coord: {count} entr{'y' if count == 1 else 'ies'} in {c.queue.path} not queued by you (unsigned or "
            "signed by someone else) left alone: see them with `coord sync --review-foreign`")


def show(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON or through ``human``."""
    if as_json:
        print_json(data)
    else:
        human(data)


def expand_recipient(to: str) -> str | None:
    """Seed 000 addressing: ALL/fleet/broadcast → None (broadcast); MACHINE → MACHINE/claude-main.

    A ``to`` that names no session by the hub's rule (:func:`coordhub.core.identity.validate_session_id`: empty,
    a space, a trailing ``/`` …) is a usage error (exit 2) before anything is sent or queued: the hub answered
    about ``'/claude-main'``, which the user never typed, and a send queued while the hub was down was refused
    only at its replay.
    """
    if is_broadcast(to):
        return None
    session = to if "/" in to else main_session(to)
    try:
        return validate_session_id(session)
    except Invalid:
        fail(f"{to!r} names no recipient: give ALL, fleet or broadcast for the whole fleet, a machine name "
             "(HOWARD-HOME means HOWARD-HOME/claude-main) or a session id MACHINE/name (letters, digits, _ . @ + -; "
             "at most 3 parts and 200 characters)", EXIT_USAGE)


def read_text_arg(text: str | None, path: Path | None, what: str) -> str:
    """The text given inline or, with ``--{what}-file``, read from a file (``-`` is stdin)."""
    if path is not None and text is not None:
        fail(f"give the {what} inline or with --{what}-file, not both", EXIT_USAGE)
    if path is None:
        if text is None:
            fail(f"missing {what}: give it as an argument or with --{what}-file", EXIT_USAGE)
        return text
    try:
        return typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", EXIT_USAGE)


JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
