"""The ``coord`` console script: start the CLI, paying only for what the command runs.

Agents run ``coord`` many times an hour, so start-up is part of every command's
cost (issue 7 point 18; ``coord bench cli`` measures it against a bare
interpreter). Typer alone costs several times a bare ``python -c pass``, so
``coord --version`` (the whole command line, nothing else) is answered here
before Typer is imported, and the read commands agents run in loops (``msg
inbox``, ``lock list``) are served by the standard-library fast
path of :mod:`coordhub.cli.fast` when it can reproduce the Typer CLI's run
exactly. Anything else, ``--version`` among other options included, goes
through the Typer app in :mod:`coordhub.cli.main`, which prints the same.

A closed stdout (``coord msg inbox | head -1``) ends the command quietly: no
traceback, exit code :data:`EXIT_BROKEN_PIPE` (128 + SIGPIPE, what a shell
shows for a process the signal ended); only ``--help``, which Typer prints
with its own Rich console, ends with 1 there.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec

from coordhub import __version__

EXIT_BROKEN_PIPE = 141
P = ParamSpec("P")


def version_line() -> str:
    """What ``coord --version`` prints."""
    return f"coord {__version__}"


def main(fast: bool = True) -> None:
    """Console-script entry point; ``fast=False`` leaves every command line to the Typer CLI (tests compare)."""
    code = _run(fast)
    if code:
        raise SystemExit(code)


def _fast(argv: list[str]) -> int | None:
    """The exit code of the fast path's run, or None when the Typer CLI must run the command line.

    Ctrl-C ends it as click ends a command: ``Aborted!`` on stderr, exit 1.
    """
    from coordhub.cli.fast import run

    try:
        return run(argv)
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted!\n")
        raise SystemExit(1) from None


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone: click already saw EPIPE (it swaps stdout), or the last flush fails."""
    if "typer" in sys.modules:
        from typer._click.utils import PacifyFlushWrapper

        if isinstance(sys.stdout, PacifyFlushWrapper):
            return True
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    return False


def _quiet_exit() -> NoReturn:
    """Point stdout at /dev/null (so the interpreter's final flush cannot fail) and exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    raise SystemExit(EXIT_BROKEN_PIPE)


def quiet_on_closed_stdout(main: Callable[P, int]) -> Callable[P, int]:
    """``main`` (a console script's entry point answering its exit code) ending as ``coord`` does when its stdout's
    reader has gone: quietly, exit :data:`EXIT_BROKEN_PIPE`. The seed-004 drop-ins (``cross-agent-recv FILE | head
    -2``) printed a ``BrokenPipeError`` traceback (review, seed-004 user run)."""
    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()  # here, not at the interpreter's exit, where the error could only be printed
            return code
        except BrokenPipeError:
            _quiet_exit()
        except SystemExit:
            if _stdout_closed():
                _quiet_exit()
            raise

    return run


@quiet_on_closed_stdout
def _run(fast: bool) -> int:
    """One command line's exit code: ``--version``, the fast path's run, or the Typer CLI's (which exits itself)."""
    argv = sys.argv[1:]
    if argv == ["--version"]:
        sys.stdout.write(version_line() + "\n")
        return 0
    code = _fast(argv) if fast else None
    if code is None:
        from coordhub.cli.main import app

        app()
        return 0
    return code
