"""The CLI's exit codes, and the error envelopes and lines it prints (standard library only).

Shared by the Typer commands (:mod:`coordhub.cli.common`) and the fast path
(:mod:`coordhub.cli.fast`), so a refusal reads and exits the same whichever
path served the command. Exit codes (also in ``docs/cli.md``):

====  ==========================================================
0     success, or a write queued for later (hub unreachable)
1     the hub refused the request (bad input, not found, …)
2     usage error (unknown command, bad flag or argument)
3     the hub is unreachable (reads cannot be queued)
4     conflict: a lease is held by another session, or a stale fence
5     halted or paused: a halt covers you (fleet, machine, project), or a resume paused you (`coord engage`)
6     authentication or permission: missing/unknown token, not yours
124   a wait ran out: ``coord wait --timeout``, ``coord watch ID --timeout`` (as timeout(1) exits)
====  ==========================================================
"""

from __future__ import annotations

from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CONFLICT, EXIT_HALTED, EXIT_AUTH = range(7)
# A wait for an assignment to end ran out before it did (`coord wait`, `coord watch ID`): not 3, which says the hub
# could not be asked, so a script can tell "still running" from "cannot tell"; 124 as timeout(1) exits.
EXIT_TIMEOUT = 124

ERROR_CODES = {EXIT_REFUSED: "refused", EXIT_USAGE: "usage", EXIT_UNREACHABLE: "unreachable",
               EXIT_CONFLICT: "conflict", EXIT_HALTED: "halted", EXIT_AUTH: "auth"}


def error_envelope(code: int, message: str) -> dict[str, Any]:
    """The JSON error envelope of a CLI-side error with exit ``code`` (``--json``, issue 7 point 19)."""
    return {"error": {"code": ERROR_CODES.get(code, "error"), "message": message}}


def exit_code(status: int) -> int:
    """The exit code of a hub refusal with HTTP ``status``: 409 → 4, 423 → 5, 401/403 → 6, else 1."""
    if status == 409:
        return EXIT_CONFLICT
    if status == 423:
        return EXIT_HALTED
    if status in (401, 403):
        return EXIT_AUTH
    return EXIT_REFUSED


def refusal(message: str, status: int, code: str) -> str:
    """The one line (after ``coord: ``) that reports a hub refusal."""
    return f"{message} [{status} {code}]"


def no_session_hint(status: int, token: str | None, session: str | None) -> str:
    """What the line of a hub refusal with HTTP ``status`` adds for a client with neither ``token`` nor ``session``.

    Only a ``--no-auth`` hub answers such a client (one that needs tokens was
    refused before anything was sent), and its 422 names the request's field
    and header, not the CLI's options.
    """
    return " (no session is named here: name yours with --session or COORD_SESSION)" if (
        status == 422 and not token and not session) else ""


def default_url_hint(url_source: str | None) -> str:
    """What a line about the hub adds when no hub URL was given (``url_source`` None): the default was asked.

    A newcomer whose hub runs on another port, in a shell without ``COORD_URL``,
    otherwise reads only "http://127.0.0.1:8001 is unreachable" (or that a token
    may not go there) and not why that URL was asked.
    """
    return "" if url_source else " (no hub URL is set, so the default was asked: name yours with --url or COORD_URL)"


def hub_envelope(status: int, code: str, message: str, body: Any) -> dict[str, Any]:
    """The hub's error envelope of a refusal (``{"error": {"code", "message", …}}``), with its HTTP ``status``.

    ``body`` is the decoded answer; the fields of its ``error`` object are
    kept (a lease conflict's holder, a halt), in the hub's order.
    """
    error = body.get("error") if isinstance(body, dict) else None
    return {"error": {"code": code, "message": message, **(error if isinstance(error, dict) else {}),
                      "status": status}}


def unreachable(url: str, reason: str) -> str:
    """The line (after ``coord: ``) that reports a hub that could not be reached for a read."""
    return f"hub at {url} is unreachable: {reason}"
