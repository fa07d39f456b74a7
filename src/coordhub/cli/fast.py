"""The fast path: the read commands agents run in loops, served with the standard library only.

Importing Typer costs about 6× a bare interpreter and httpx2 about 9×, so no
command that imports them can meet issue 7 point 18's 6× for ``coord msg
inbox`` and ``coord lock list``. :func:`run` serves exactly these command
lines without either:

* ``coord [GLOBAL…] msg inbox [--all] [--limit N] [--json]``
* ``coord [GLOBAL…] lock list [--project P] [--json]``

where ``GLOBAL`` is ``--url``, ``--token``, ``--session``, ``--queue-file``,
``--timeout`` (each ``--opt VALUE`` or ``--opt=VALUE``) or ``--admin``, each
at most once. It settles the credential by the same rules
(:mod:`coordhub.client.credentials`, so issue 7 points 1, 2 and 7 hold), asks
the hub with :class:`coordhub.client.wire.Hub`, and prints through the same
functions as the Typer commands (:mod:`coordhub.cli.views`,
:mod:`coordhub.cli.output`, :mod:`coordhub.cli.exits`), so the output, the
error lines and the exit codes are the same byte for byte.

Anything it does not reproduce exactly is left to the Typer CLI, which runs
as if the fast path did not exist (:func:`run` returns None before printing
anything): any other command line (``--help``, an unknown or repeated
option, a value it would have to coerce differently, ``--resource``), an
``https`` hub (httpx2's trust store rules), proxy variables, macOS and
Windows (system proxy settings), a non-UTF-8 stdout or stderr, a softfail
queue to drain first, and any answer it does not expect: a lost or
unreadable answer, a 5xx (the full client waits out ``Retry-After`` once), a
body that is not JSON, an error without the hub's envelope, a list of leases
cut into pages (``Coord-Next-After-Fence``: the Typer CLI reads every page). A read asked
twice that way changes nothing but one more heartbeat. An answer that does not come within
``--timeout`` is reported here, as the Typer CLI reports it, instead of asked again.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, NamedTuple

GLOBAL_VALUES = ("--url", "--token", "--session", "--queue-file", "--timeout")
_COUNT = re.compile(r"[0-9]{1,18}")  # what Typer's own coercion reads as an int, as is (cli/group.py)
_SECONDS = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")
MAX_LIMIT = 500  # `msg inbox --limit`'s max (cli/messages.py)
# click strips these from what it echoes to a stream that is not a terminal (click's ``strip_ansi``)
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


class Command(NamedTuple):
    """A command line the fast path serves: ``name`` (``msg inbox`` or ``lock list``), its options and the
    global ones, as the Typer CLI would have parsed them."""

    name: str
    globals_: dict[str, str]
    admin: bool
    as_json: bool
    history: bool = False  # msg inbox --all
    limit: int = 100
    project: str | None = None


class FallThrough(Exception):
    """The fast path cannot reproduce this run exactly; the Typer CLI serves it."""


def parse(argv: list[str]) -> Command | None:
    """The :class:`Command` of ``argv`` (without the program name), or None when it is not a shape served here."""
    given: dict[str, str] = {}
    admin = False
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name, eq, value = argv[i].partition("=")
        if name == "--admin" and not eq and not admin:
            admin, i = True, i + 1
            continue
        if name not in GLOBAL_VALUES or name in given:
            return None
        if not eq:
            if i + 1 >= len(argv):
                return None
            value, i = argv[i + 1], i + 1
        if value.startswith("-"):
            return None
        given[name], i = value, i + 1
    if "--timeout" in given and not _SECONDS.fullmatch(given["--timeout"]):
        return None
    words = argv[i:i + 2]
    if words == ["msg", "inbox"]:
        return _options(Command("msg inbox", given, admin, False), argv[i + 2:], ("--all", "--json"), ("--limit",))
    if words == ["lock", "list"]:
        return _options(Command("lock list", given, admin, False), argv[i + 2:], ("--json",), ("--project",))
    return None  # `coord status` too: it also asks the orchestrator's endpoints (coordhub.cli.fleet)


def _options(command: Command, args: list[str], flags: tuple[str, ...], valued: tuple[str, ...]) -> Command | None:
    """``command`` with its own ``args`` applied; None for anything else (a repeated option included)."""
    seen: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name in seen:
            return None
        if name in flags and not eq:
            seen[name], i = None, i + 1
        elif name in valued:
            if not eq:
                if i + 1 >= len(args):
                    return None
                value, i = args[i + 1], i + 1
            if value.startswith("-"):
                return None
            seen[name], i = value, i + 1
        else:
            return None
    limit = seen.get("--limit")
    if limit is not None and not (_COUNT.fullmatch(limit) and 1 <= int(limit) <= MAX_LIMIT):
        return None
    return command._replace(as_json="--json" in seen, history="--all" in seen,
                            limit=int(limit) if limit is not None else command.limit, project=seen.get("--project"))


def plain_environment() -> bool:
    """Whether nothing around this process would make the Typer CLI's run differ (see the module docstring)."""
    if os.name != "posix" or sys.platform == "darwin":
        return False
    if any(k.lower() in ("http_proxy", "all_proxy") and v for k, v in os.environ.items()):
        return False
    streams = (sys.stdout, sys.stderr)
    return all(s is not None and (getattr(s, "encoding", None) or "").lower().replace("-", "") == "utf8"
               for s in streams)


def run(argv: list[str]) -> int | None:
    """Serve ``argv`` (without the program name) and return its exit code; None when the Typer CLI must run it.

    None is returned before anything is printed.
    """
    command = parse(argv)
    if command is None or not plain_environment():
        return None
    try:
        outcome = _ask(command)
    except FallThrough:
        return None
    except Exception:  # anything unforeseen: the Typer CLI shows what it shows
        return None
    return _show(command, *outcome)


def _ask(command: Command) -> tuple[list[str], Any, tuple[str, int, Any] | None]:
    """(warnings, the hub's answer, the error to report as (line, exit code, JSON envelope) or None).

    Raises :class:`FallThrough` when the Typer CLI must serve the command.
    """
    from coordhub.cli import exits
    from coordhub.client.credentials import identity_headers
    from coordhub.client.settings import admin_token_note, resolve
    from coordhub.errors import CoordError, Invalid
    from coordhub.headers import HEARTBEAT_HEADER  # as the full client sends it (coordhub.client.transport)

    g = command.globals_
    timeout = float(g["--timeout"]) if "--timeout" in g else None
    try:
        settings = resolve(g.get("--url"), g.get("--token"), g.get("--session"), g.get("--queue-file"), timeout,
                           admin="always" if command.admin else "never")
    except Invalid as exc:
        return [], None, (exc.message, exits.EXIT_USAGE, None)
    except CoordError as exc:
        return [], None, (exc.message, exits.EXIT_AUTH, None)
    from coordhub.hooks.untrusted import one_line  # notes name the repository's paths: escaped

    notes = [f"coord: warning: {one_line(note)}" for note in settings.notes]
    if g.get("--session") and settings.token_is_admin:  # a session token is sent with the name, which the hub checks
        notes.append(f"coord: warning: --session {g['--session']} is not used: the hub's admin token acts as the "
                     "admin")
    elif settings.token_is_admin and settings.admin_hub_id is None:
        notes.append(f"coord: warning: {one_line(admin_token_note(settings))}")
    if (not settings.url.lower().startswith("http://") or "@" in settings.url.partition("//")[2].partition("/")[0]
            or os.path.lexists(settings.queue_file)):
        raise FallThrough  # https (httpx2's trust store), credentials in the URL (httpx2 sends them), a queue
    hub = _Hub(settings.url, settings.timeout)
    try:
        headers = identity_headers(settings, hub.health)
        data = hub.get(_PATHS[command.name], _params(command), {**headers, HEARTBEAT_HEADER: "1"})
    except CoordError as exc:  # no credential, or a URL the token may not go to: nothing was sent
        return notes, None, (exc.message + exits.default_url_hint(settings.url_source), exits.EXIT_AUTH, None)
    except _Unreachable as exc:
        return notes, None, (exits.unreachable(settings.url, str(exc)) + exits.default_url_hint(settings.url_source),
                             exits.EXIT_UNREACHABLE, None)
    except _Refused as exc:
        line = exits.refusal(exc.message, exc.status, exc.code) + exits.no_session_hint(exc.status, settings.token,
                                                                                       settings.session)
        return notes, None, (line, exits.exit_code(exc.status),
                             exits.hub_envelope(exc.status, exc.code, exc.message, exc.body))
    if not command.as_json and not _SHAPES[command.name](data):
        raise FallThrough  # the Typer CLI fails on it its own way
    return notes, data, None


def _show(command: Command, notes: list[str], data: Any, error: tuple[str, int, Any] | None) -> int:
    """Print what the Typer command prints for this outcome (warnings, then the answer or the error); the exit code."""
    from coordhub.cli import exits, views
    from coordhub.cli.output import print_json

    for line in notes:
        _echo_err(line)
    if error is not None:
        line, code, envelope = error
        if command.as_json:
            print_json(envelope or exits.error_envelope(code, line))
        _echo_err(f"coord: {line}")
        return code
    if command.as_json:
        print_json(data)
    elif command.name == "msg inbox":
        views.inbox(data, history=command.history)
    else:
        views.leases(data)
    return 0


def _echo_err(line: str) -> None:
    """Write a line on stderr as ``typer.echo(line, err=True)`` does (escape sequences dropped off a terminal)."""
    if not sys.stderr.isatty():
        line = _ANSI.sub("", line)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


_PATHS = {"msg inbox": "/api/coord/messages", "lock list": "/api/coord/locks"}


def _params(command: Command) -> dict[str, Any]:
    """The query :class:`coordhub.client.client.CoordClient` sends for the command (None values left out)."""
    if command.name == "msg inbox":
        return {"unread_only": str(not command.history).lower(), "limit": command.limit}
    return {"project_key": command.project}


def _rows(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(row, dict) for row in data)


_SHAPES = {"msg inbox": _rows, "lock list": _rows}


class _Unreachable(Exception):
    """No answer, reported as the full client reports it (its text is the reason)."""


class _Refused(Exception):
    """A 4xx answer with the hub's error envelope."""

    def __init__(self, status: int, code: Any, message: str, body: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.body = status, code, message, body


class _Hub:
    """GET requests to the hub, with the full client's outcomes (``coordhub.client.transport``) or :class:`FallThrough`.

    httpx2 reports a connection that could not be made as ``ConnectError``
    and any timeout as one; those are the only failures reported here.
    """

    def __init__(self, url: str, timeout: float) -> None:
        from coordhub.client.wire import Hub

        self.url = url
        self._hub = Hub(url, None, None, timeout, agent="coordhub")

    def _exchange(self, path: str, params: dict[str, Any] | None, headers: dict[str, str] | None,
                  timed_out: str, unanswered: str) -> tuple[int, Any]:
        import json

        from coordhub.client.wire import NEXT_AFTER_FENCE, NEXT_AFTER_SEQ, Failed

        try:
            status, fields, body = self._hub.exchange("GET", path, params=params, headers=headers)
        except Failed as exc:
            if exc.phase == "read" and isinstance(exc.error, TimeoutError):
                # The full client would wait out the same timeout again to tell the same thing (review: a hung hub
                # took 2× --timeout): its words for it, at once.
                raise _Unreachable(unanswered) from None
            if exc.phase != "connect" or not isinstance(exc.error, OSError):
                raise FallThrough from None
            raise _Unreachable(timed_out if isinstance(exc.error, TimeoutError)
                               else f"cannot reach {self.url} (ConnectError)") from None
        if (fields.get("content-encoding", "identity").lower() != "identity" or NEXT_AFTER_FENCE in fields
                or NEXT_AFTER_SEQ in fields):
            raise FallThrough  # more than one page of leases, or unread messages left out: the Typer CLI says so
        try:
            data = json.loads(body)
            # a lone surrogate (a "\\ud800" escape) cannot be printed in UTF-8: the Typer CLI fails its own way
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except ValueError:  # UnicodeEncodeError included
            raise FallThrough from None
        return status, data

    def health(self) -> dict[str, Any]:
        """``GET /health`` without a credential (``CoordClient.hub_health``)."""
        status, data = self._exchange("/health", None, None, f"hub at {self.url} timed out",
                                      f"hub at {self.url} timed out")
        if status not in (200, 503) or not isinstance(data, dict) or "status" not in data:
            raise FallThrough
        return data

    def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
        """The decoded 2xx answer, or :class:`_Refused` for a 4xx with the hub's envelope."""
        status, data = self._exchange(path, params, headers, "timed out",
                                      f"the hub at {self.url} did not answer in time")
        if 200 <= status < 300:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if 400 <= status < 500 and isinstance(error, dict) and error.get("message"):
            raise _Refused(status, error.get("code", "error"), error["message"], data)
        raise FallThrough
