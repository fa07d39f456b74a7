"""Which hub each token may be sent to: the URL it was first used with, and those the user trusted since.

Issue 7 point 7: a URL taken from a file the user did not write (a cloned
repository's identity.json) must never receive the user's token. So the
first time a client sends a token it records the hub's origin for that
token; afterwards the token goes only to a recorded origin, and any other is
refused until the user runs ``coord trust URL`` once. Records live in
``<config dir>/trusted-urls.json`` (0600, in a 0700 directory), keyed by a
fingerprint of the token (a SHA-256, never the token itself):
``{"<fingerprint>": ["http://127.0.0.1:8001", …]}``. A hub that a project's
identity.json names, other than the user's own, is asked only once trusted
(:meth:`coordhub.client.settings.ClientSettings.url_from_project`), with
whatever token or none: sessions without a token are recorded under the
fingerprint of ``""``.

Standard library only: the edit hook checks every request it makes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from coordhub.client import project
from coordhub.errors import CoordError

TRUST_FILE = "trusted-urls.json"
MAX_URLS_PER_TOKEN = 100  # a bound on the file; far more hubs than one token ever meets


class Untrusted(CoordError):
    """A token would go to a URL the user has not trusted for it; the message says how to trust it."""

    status, code = 403, "untrusted_url"


def fingerprint(token: str) -> str:
    """A SHA-256 of the token (domain-separated from the hub's own token hash), as hex."""
    return hashlib.sha256(b"coordhub-trust\0" + token.encode()).hexdigest()


def origin(url: str) -> str:
    """``scheme://host:port/path`` of a hub URL, lower-cased, with the default port written out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def session_key(session: str) -> str:
    """What a session without a token that a project's identity.json named is recorded under, in place of a token
    (:meth:`coordhub.client.settings.ClientSettings.session_from_project`): trusting a URL for one such name trusts
    no other. A NUL starts it: no token holds one (tokens are printable ASCII)."""
    return f"\0session {session}"


def _path() -> Path:
    return project.config_dir() / TRUST_FILE


def check(token: str, url: str, source: str | None = None, *, record: bool = True,
          chosen: str | None = None, token_chosen: bool = False) -> None:
    """Allow sending ``token`` to ``url`` or raise :class:`Untrusted`; the first use records ``url``.

    ``token`` ``""`` stands for a session without a token (a ``--no-auth``
    hub): only :func:`trust` records a URL for it. ``source`` names where the
    token came from, for the message. With
    ``record=False`` a first use records nothing and is refused like any
    other URL: for a URL or a token the user did not choose (``chosen`` says
    which and where it came from, e.g. "that URL comes from …/identity.json";
    ``token_chosen``: the token is one of them; see
    :meth:`coordhub.client.settings.ClientSettings.chosen_by_project`).
    Concurrent clients are serialised by a lock on the config directory, so
    two first uses cannot record two different URLs.
    """
    key, here = fingerprint(token), origin(url)
    path = _path()
    known = project.read_json_object(path).get(key)
    if isinstance(known, list) and here in known:
        return  # the common case, without taking the lock
    if not record:
        raise Untrusted(
            f"not asking {here} " + (f"as session {token.removeprefix(session_key(''))!r} (no token)"
                                     if token.startswith(session_key("")) else
                                     f"with the token{f' from {source}' if source else ''}" if token else
                                     "(no token)") +
            f": {chosen or 'that URL comes from a file you may not have written'}, and a repository's files never "
            f"choose your hub or who you act as (it would see your session's edits and messages). If {here} is "
            f"your hub{' and that token yours' if token_chosen else ''}, run `coord trust {url}` once")
    with project.locked(project.private_dir(path.parent)):
        data = project.read_json_object(path)
        known = data.get(key)
        if isinstance(known, list) and known:
            if here in known:
                return
            raise Untrusted(
                f"not sending the token{f' from {source}' if source else ''} to {here}: it is used with "
                f"{', '.join(str(u) for u in known[:3])}. If {here} is your hub, run `coord trust {url}` once")
        data[key] = [here]
        project.write_private(path, json.dumps(data, indent=1, sort_keys=True))


def trust(token: str, url: str) -> bool:
    """Record that ``token`` may be sent to ``url``; False if it already could."""
    key, here = fingerprint(token), origin(url)
    path = _path()
    with project.locked(project.private_dir(path.parent)):
        data = project.read_json_object(path)
        known = [u for u in data.get(key, []) if isinstance(u, str)] if isinstance(data.get(key), list) else []
        if here in known:
            return False
        data[key] = [*known, here][-MAX_URLS_PER_TOKEN:]
        project.write_private(path, json.dumps(data, indent=1, sort_keys=True))
        return True


def forget(token: str) -> bool:
    """Drop every URL recorded for ``token`` (a worker's token, which dies with its assignment); False if none was."""
    key = fingerprint(token)
    path = _path()
    if key not in project.read_json_object(path):
        return False
    with project.locked(project.private_dir(path.parent)):
        data = project.read_json_object(path)
        if data.pop(key, None) is None:
            return False
        project.write_private(path, json.dumps(data, indent=1, sort_keys=True))
        return True
