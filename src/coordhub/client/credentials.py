"""Which headers identify a client to its hub: the credential rules of issue 7 points 1, 2 and 7, in one place.

Standard library only: the full client (:class:`coordhub.client.client.CoordClient`)
and the CLI's fast path (:mod:`coordhub.cli.fast`) both settle their identity
here, so the rules cannot drift apart:

* a session token (``--token``, ``COORD_TOKEN``, identity.json) goes only to a
  URL trusted for it (:func:`coordhub.client.trust.check`), and a URL named by
  a project's identity.json, unless it is the user's own hub, or a token a
  project's identity.json holds, is never trusted on first use, with a token
  from anywhere or with none; nothing at all, ``/health`` included, is asked
  of such a hub until the user trusts it (:func:`check_url`, :func:`check_may_ask`);
* the hub's admin token found on disk (only when the caller asked for it,
  see :func:`coordhub.client.settings.resolve`) goes only to a URL the user
  chose (``--url``, ``COORD_URL``, ``~/.claude/identity.json``, or the default
  local one), never to one a project's identity.json named unless the user
  trusted it for that token (``coord --admin trust URL``), and then only to the
  hub whose id is written beside it, checked against that URL's ``/health``.
  The id is a check against the wrong hub, not authentication: ``/health`` is
  public, so any listener can repeat it (:func:`check_admin_url`);
* with no token, ``/health`` says whether the hub needs one (then
  :class:`~coordhub.client.settings.NoCredential` says how to get one) or is
  a ``--no-auth`` hub (then the session, if any, is sent as ``X-Coord-Session``);
* with a session token, a session named explicitly (``--session``,
  ``COORD_SESSION``, identity.json ``session``) goes beside it as
  ``X-Coord-Session``, which the hub refuses (403 ``session_mismatch``) when
  it is not the token's session; never beside the hub's admin token, which
  the caller chose to act as the admin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordhub.client import trust
from coordhub.client.settings import ClientSettings, NoCredential
from coordhub.client.wire import credential_headers
from coordhub.headers import SESSION_HEADER

__all__ = ["CLI_TOKEN", "ask_admin", "check_admin_url", "check_may_ask", "check_url", "identity_headers",
           "needs_token"]

CLI_TOKEN = "--token, COORD_TOKEN or identity.json \"token\" (or act as the hub's admin with --admin)"
"""How the CLI is given a token, as :func:`needs_token` says it."""


def needs_token(url: str, ways: str) -> str:
    """The line (after ``coord: ``, ``coord guard:``, an MCP error's code) that says the hub at ``url`` needs a
    token and how to get one and give it to this client: ``ways``, e.g. :data:`CLI_TOKEN`.

    The one wording of every client (the CLI, the MCP server, the git guard): each names its own ways and never
    the HTTP header a user of it does not send.
    """
    return f"the hub at {url} needs a token: {ask_admin(ways)}"


def ask_admin(ways: str, token: str = "one") -> str:
    """How to get ``token`` (``"one"``, ``"a new one"``) from the hub's admin and give it to a client (``ways``)."""
    return f"ask its admin for {token} (`coord token create NAME`) and pass it with {ways}"


def check_url(settings: ClientSettings) -> None:
    """Raise :class:`~coordhub.client.trust.Untrusted` unless this client may ask ``settings.url`` as its session.

    A URL a project's identity.json named, other than the user's own hub
    (:meth:`ClientSettings.url_from_project`), or a token it holds
    (:meth:`ClientSettings.token_from_project`), must have been trusted by
    the user (``coord trust URL``) for this token, or, without a token, for
    tokenless use: a first use records nothing. Any other URL is recorded on
    a token's first use, and nothing is checked for it without a token.
    """
    s = settings
    if s.chosen_by_project():
        _check_project_choice(s)
    elif s.token:
        trust.check(s.token, s.url, s.token_source)


def check_may_ask(settings: ClientSettings) -> None:
    """Raise unless this client may send ``settings.url`` any request at all, ``/health`` included: not when a
    project's identity.json chose the hub or the credential and the user has not trusted the URL for it
    (:meth:`ClientSettings.chosen_by_project`), nor with the admin token where :func:`check_admin_url` refuses.
    Records nothing: a token's first use is recorded when it is sent (:func:`check_url`)."""
    s = settings
    if s.token and s.admin_hub_id:
        check_admin_url(s)
    elif s.chosen_by_project():
        _check_project_choice(s)


def _check_project_choice(s: ClientSettings) -> None:
    url, token = s.url_from_project(), s.token_from_project()
    chosen = (f"that URL and the token come from {s.url_source}" if url and token
              else f"that URL comes from {s.url_source}" if url
              else f"the token comes from {s.token_source}" if token
              else f"the session name comes from {s.session_source}")
    trust.check(s.trust_key(), s.url, s.token_source, record=False, chosen=chosen, token_chosen=token)


def check_admin_url(settings: ClientSettings) -> None:
    """Raise :class:`NoCredential` unless the local admin token in ``settings`` may go to ``settings.url``.

    It may not when a project's identity.json named the URL
    (:meth:`ClientSettings.url_from_project`), unless the user trusted it
    for this admin token (``coord --admin trust URL``); a first use records
    nothing. Nothing to check for any other token. Asks nothing of the
    network, and the hub id that ``/health`` answers cannot stand in for
    this check: ``/health`` needs no token, so a listener a repository named
    repeats the real hub's id.
    """
    s = settings
    if not (s.token and s.admin_hub_id and s.url_from_project()):
        return
    try:
        trust.check(s.token, s.url, s.token_source, record=False, chosen=f"that URL comes from {s.url_source}")
    except trust.Untrusted:
        raise NoCredential(
            f"not sending the admin token of {s.token_source} to {s.url}: that URL comes from {s.url_source}, "
            "and a repository's files never choose where the hub's admin token goes. Name the hub yourself with "
            f"--url or COORD_URL, or, if {s.url} is the hub whose data dir is {s.data_dir}, run "
            f"`coord --admin trust {s.url}` once") from None


def identity_headers(settings: ClientSettings, health: Callable[[], dict[str, Any]]) -> dict[str, str]:
    """The headers that identify a client with ``settings`` (see the module docstring).

    ``health`` returns the hub's ``/health`` answer, asked without any
    credential; it is called only when the rules need it (an admin token
    found on disk, or no token at all) and whatever it raises propagates.
    Raises :class:`NoCredential` or :class:`~coordhub.client.trust.Untrusted`
    when nothing may be sent (no credential was sent then), and
    :class:`NoCredential` for a session that is no header value (not ASCII).
    """
    s = settings
    if s.token and s.admin_hub_id:
        check_admin_url(s)  # before /health: a URL the user did not choose gets no request at all
        found = health().get("hub_id")
        if found != s.admin_hub_id:
            raise NoCredential(
                f"not sending the admin token of {s.token_source} to {s.url}: it belongs to hub {s.admin_hub_id}, "
                f"and {s.url} is " + (f"hub {found}" if found else "a hub that does not say its id") +
                ". Point --url at the hub that wrote it, or COORD_DATA_DIR at the data dir of the hub at "
                f"{s.url}")
        return {"Authorization": f"Bearer {s.token}"}
    if s.token:
        check_url(s)
        if s.session_claimed and s.session and not (s.session.isascii() and s.session.isprintable()):
            raise NoCredential(f"session {s.session!r} is named but is no session id (those are ASCII), so it cannot "
                               "be this token's session: fix --session, COORD_SESSION or identity.json \"session\"")
        return credential_headers(s.token, s.session, claimed=s.session_claimed)
    check_url(s)  # before /health: a hub a repository named gets no request until the user trusts it
    if health().get("auth", True):
        named = f"session {s.session!r} is named but " if s.session else ""
        raise NoCredential(named + needs_token(s.url, CLI_TOKEN))
    if s.session and not (s.session.isascii() and s.session.isprintable()):  # a header value is ASCII
        raise NoCredential(f"session {s.session!r} cannot be sent to the --no-auth hub at {s.url}: a session id is "
                           "ASCII (letters, digits, _ . @ + - and /); name one with --session or COORD_SESSION")
    return {SESSION_HEADER: s.session} if s.session else {}
