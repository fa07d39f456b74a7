"""Where a client finds its hub, its credential, its identity file and its softfail queue.

Standard library only: the edit hook resolves its settings here.

Precedence, highest first: explicit arguments (CLI flags), ``COORD_URL`` /
``COORD_TOKEN`` / ``COORD_SESSION`` / ``COORD_QUEUE_FILE`` /
``COORD_TIMEOUT``, then ``.claude/identity.json`` (seed 000: ``coord_api``,
``machine``, ``user``; ours may also carry ``token`` and ``session``), and for
the hub and token a project's file does not name, ``~/.claude/identity.json``.
With no URL anywhere the hub is ``http://127.0.0.1:8001``.

**Which session name** (issue 10): ``--session``, ``COORD_SESSION``,
identity.json ``session``, ``<identity.json machine>/claude-main``, and last
seed 002's ``CLAUDE_INSTANCE_ID`` (``backend``, ``orchestrator``; its
``unknown`` placeholder is ignored, as seed 002 ignored it), so a seed-002
agent keeps its instance id where nothing else names it. A name is a claim,
not a credential: with a token, the token's session acts, and a name given
explicitly (the first three: :attr:`ClientSettings.session_claimed`) is sent
beside a session token as ``X-Coord-Session``, so the hub refuses the request
(403 ``session_mismatch``) when the token is another session's (a stale
``COORD_TOKEN`` beside an identity naming someone else) instead of acting as
the token's session unnoticed. Not beside the hub's admin token, for any
command: it is no session's token, and acts as ``admin`` whatever the name; a
token given with ``--token``, ``COORD_TOKEN`` or identity.json is known for it
when it equals the ``admin.token`` of the data dir (:func:`is_local_admin_token`).

**Which identity.json is trusted** (issue 7 point 7: a repository's files
never act with the user's credentials): the nearest
``.claude/identity.json`` from the working directory up to, and not above,
the root of its git working tree, and only if git does not track it (seed
000 says to keep it out of git); else ``~/.claude/identity.json``. Outside a
git repository only the home one is read. Files passed over are named in
:attr:`ClientSettings.notes`.

**Which credential** (issue 7 point 1): the session's own token (``--token``,
``COORD_TOKEN``, identity.json ``token``). The hub's ``admin.token`` (in
``COORD_DATA_DIR``, else the default data dir) is used only when the caller
asks for it (``admin="fallback"``: admin commands without a token of their
own; ``admin="always"``: the CLI's ``--admin``). The client sends it only to
a URL the user chose (``--url``, ``COORD_URL``, ``~/.claude/identity.json`` or
the default), never to one a project's identity.json names unless the user
trusted that URL for it (``coord --admin trust URL``), and only to the hub
whose id is written beside it (``hub.id``, checked against ``/health``, which
is public: the id guards against the wrong hub, it authenticates nothing;
:func:`coordhub.client.credentials.check_admin_url`). Without a token, a
session named by ``--session`` / ``COORD_SESSION`` / identity.json is the
identity on a ``--no-auth`` hub and refused on a hub that needs tokens (the
client checks ``/health``).

**Where the softfail queue lives** (issue 7 point 17):
``<project root>/.claude/coord-queue.jsonl``, the project root being the
directory holding the trusted identity.json, else the git root, else the
user's state directory (:func:`coordhub.client.project.state_dir`). So an agent
that ``cd``s into ``src/deep`` keeps using the project's queue.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from coordhub import config
from coordhub.client import project
from coordhub.core.identity import main_session
from coordhub.errors import CoordError, Invalid

ADMIN_TOKEN_FILE = "admin.token"
HUB_ID_FILE = "hub.id"
QUEUE_NAME = "coord-queue.jsonl"
MAX_IDENTITY_BYTES = 1024 * 1024  # an identity.json larger than this is refused, not read
MAX_ADMIN_TOKEN_BYTES = 4096  # bytes of admin.token read to compare a given token with it (one is ~90)
MAX_QUEUE_BYTES = 64 * 1024 * 1024  # bytes: the softfail queue's bound (32 entries of the longest line, thousands
# of ordinary ones); defined here, where the hooks find it without importing coordhub.client.queue
ADMIN_MODES = ("never", "fallback", "always")
DEFAULT_URL = f"http://127.0.0.1:{config.DEFAULT_PORT}"  # the hub asked when no setting names one
IDENTITY_TEXT = ("coord_api", "token", "session", "machine", "user", "project")  # identity.json's text fields
MAX_TIMEOUT = 86400.0  # seconds (a day): the longest --timeout / COORD_TIMEOUT; sockets overflow near 9.2e9 s
INSTANCE_ENV = "CLAUDE_INSTANCE_ID"  # seed 002's instance id: the session name where nothing else names one


class NoCredential(CoordError):
    """The command needs a credential this client does not have (or may not use here); the message says how."""

    status, code = 401, "no_credential"


class ClientSettings(NamedTuple):
    """Resolved client settings.

    ``token`` is the credential sent as the bearer token; ``token_source``
    says where it came from (``--token``, ``COORD_TOKEN``, an identity.json
    path, or ``admin.token`` for the hub's admin token, which is then bound to
    ``admin_hub_id``). ``session_named`` is true when the session was named
    explicitly by ``--session`` or ``COORD_SESSION``; ``session_claimed`` when
    it was named by those or identity.json ``session`` (not derived from
    ``machine`` or ``CLAUDE_INSTANCE_ID``) for a session command (``admin``
    ``never`` in :func:`resolve`; an admin command's token acts as an admin,
    whatever session the user names) with a token that is not the hub's
    admin token (``token_is_admin``: that one acts as ``admin`` whatever the
    name, as a session command's token too): such a name goes beside a session
    token as ``X-Coord-Session`` (:func:`coordhub.client.wire.credential_headers`),
    and the hub refuses a token of another session (contract §2.2: the token
    decides who acts, and a request may not name someone else). ``notes`` are
    warnings about identity files passed over.
    """

    url: str
    token: str | None
    session: str | None
    user: str | None
    machine: str | None
    queue_file: Path
    timeout: float
    identity_file: Path | None = None
    token_source: str | None = None
    session_named: bool = False
    session_claimed: bool = False
    admin_hub_id: str | None = None
    data_dir: Path | None = None
    project_root: Path | None = None  # None: not in a project (the queue is the user's own)
    notes: tuple[str, ...] = ()
    url_source: str | None = None  # --url, COORD_URL, an identity.json path; None: the default URL
    user_url: str | None = None  # the hub the user's own settings name (~/.claude/identity.json, else the default)
    # the token is the hub's admin.token: read from the data dir (admin_hub_id is then set), or given with --token,
    # COORD_TOKEN or identity.json "token" and equal to the data dir's (is_local_admin_token)
    token_is_admin: bool = False
    session_source: str | None = None  # --session, COORD_SESSION, an identity.json path, CLAUDE_INSTANCE_ID; None: none

    def url_from_project(self) -> bool:
        """Whether the URL was named by a project's identity.json and is not the user's own hub.

        The user's own hub is the one ``~/.claude/identity.json`` names, else
        the default local one (:attr:`user_url`). Such a URL is never trusted
        on its first use (:func:`coordhub.client.trust.check` ``record=False``),
        whatever the credential and wherever it came from: the file may have
        come with a repository (an archive brings its own ``.git``, so
        "untracked" proves nothing), with a token of the repository's own
        hub beside the URL, or with none for a ``--no-auth`` one. A hub a
        repository chose would see the session's edits and messages, and put
        its own text in the agent's context, until the user trusts it once.
        """
        from coordhub.client.trust import origin

        return (self.url_source not in (None, "--url", "COORD_URL", str(home_identity()))
                and origin(self.url) != origin(self.user_url or DEFAULT_URL))

    def token_from_project(self) -> bool:
        """Whether the token came from a project's identity.json: one the repository's author may have put there
        (a colleague's token on the user's own hub would make the user's agent act as that colleague, reading
        that session's inbox into its context), so it too is used only once the user trusts it for the URL."""
        return (self.identity_file is not None and self.identity_file != home_identity()
                and self.token_source == str(self.identity_file))

    def session_from_project(self) -> bool:
        """Whether a project's identity.json named the session (its ``session``, or ``machine`` for
        ``<machine>/claude-main``) of a client without a token: on a ``--no-auth`` hub that name is who the client
        acts as, so a file that came with a repository would make the user's agent act as any session it chose
        (read and ack that session's messages, release its leases). It too is used only once the user trusts
        it for the URL (:meth:`trust_key`). Beside a token the name is only a claim the hub checks."""
        return (self.token is None and self.identity_file is not None and self.identity_file != home_identity()
                and self.session_source == str(self.identity_file))

    def chosen_by_project(self) -> bool:
        """Whether a project's identity.json chose the hub, the credential or the tokenless session
        (:meth:`url_from_project`, :meth:`token_from_project`, :meth:`session_from_project`): such a client asks
        nothing of the hub, ``/health`` included, until the user trusted the URL for it (``coord trust URL``;
        :func:`coordhub.client.credentials.check_may_ask`)."""
        return self.url_from_project() or self.token_from_project() or self.session_from_project()

    def trust_key(self) -> str:
        """What a trusted URL is recorded under (:mod:`coordhub.client.trust`): the token; without one, the session
        a project's identity.json named (:func:`coordhub.client.trust.session_key`), else ``""``."""
        from coordhub.client.trust import session_key

        if self.token:
            return self.token
        return session_key(self.session or "") if self.session_from_project() else ""


def home_identity() -> Path:
    """``~/.claude/identity.json`` (the user's own; may not exist)."""
    return Path.home() / ".claude" / "identity.json"


def find_identity(start: Path | None = None, notes: list[str] | None = None) -> Path | None:
    """The trusted identity.json for a client working in ``start`` (see the module docstring), or None.

    Each file passed over (tracked by git, above the git root, or git could
    not say) is described in ``notes`` when given.
    """
    here = Path(os.path.abspath(start or Path.cwd()))
    root = project.git_root(here)
    home = home_identity()
    if root is None:
        own = here / ".claude" / "identity.json"
        if own.is_file() and own != home:
            _note(notes, f"ignoring {own}: not in a git repository; identity.json is trusted only inside a git "
                         "repository (untracked) or in ~/.claude")
        return home if home.is_file() else None
    for folder in (here, *here.parents):
        candidate = folder / ".claude" / "identity.json"
        if candidate == home:
            break
        if candidate.is_file():
            state = project.tracked(root, candidate)
            if state is False:
                return candidate
            _note(notes, f"ignoring {candidate}: " + (
                "git tracks it (a repository's files never choose your hub or credentials; keep it out of "
                "git, seed 000)" if state else "git cannot say whether it is tracked"))
            break
        if folder == root:
            _above_root(root, notes)
            break
    return home if home.is_file() else None


def _above_root(root: Path, notes: list[str] | None) -> None:
    """Note an identity.json above the git root, which is never read (only for the explanation)."""
    if notes is None:
        return
    for folder in root.parents:
        candidate = folder / ".claude" / "identity.json"
        if candidate.is_file() and candidate != home_identity():
            _note(notes, f"ignoring {candidate}: it is above the git repository {root}; identity.json is trusted "
                         "only inside the repository or in ~/.claude")
            return


def _seed000_identity(notes: list[str]) -> None:
    """Note seed 000's identity.json, ``$CLAUDETOOLS_ROOT/.claude/identity.json``, when it exists: asked only when
    no identity.json was read and no hub URL named. The seed's script read that file from wherever it ran; this
    client reads it only inside its repository (or ~/.claude), so a seed user's first command elsewhere asked the
    default hub with no token, with nothing said of the file they had pointed at the hub."""
    root = os.environ.get("CLAUDETOOLS_ROOT")
    seed = Path(root).expanduser() / ".claude" / "identity.json" if root else None
    if seed is not None and seed.is_file():
        _note(notes, f"not reading {seed} (seed 000's identity.json, under CLAUDETOOLS_ROOT): an identity.json is "
                     "read only inside its own git repository or from ~/.claude; to use it from every repository, "
                     "copy it there: mkdir -p ~/.claude && cp \"$CLAUDETOOLS_ROOT/.claude/identity.json\" ~/.claude/")


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)


def load_identity(path: Path) -> dict[str, Any]:
    """Read an identity.json; raise ``Invalid`` with the file name when it is not a JSON object.

    Also when it is not a regular file or is over :data:`MAX_IDENTITY_BYTES`
    (never read without end: a FIFO, a symlink to ``/dev/zero``), and when a
    field of :data:`IDENTITY_TEXT` is there but not a string.
    """
    problem = project.unusable_file(path.resolve(), MAX_IDENTITY_BYTES)
    if problem is not None and problem != "another user owns it":  # a shared machine's identity is fine to read
        raise Invalid(f"{path}: not used: {problem}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_IDENTITY_BYTES + 1)
        if len(raw) > MAX_IDENTITY_BYTES:
            raise Invalid(f"{path}: not used: it is larger than {MAX_IDENTITY_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid(f"{path}: not readable JSON ({exc})") from exc
    except RecursionError:  # '[' x 5,000: json raises this, not a JSONDecodeError
        raise Invalid(f"{path}: not readable JSON (nested too deep)") from None
    if not isinstance(data, dict):
        raise Invalid(f"{path}: expected a JSON object")
    wrong = next((k for k in IDENTITY_TEXT if data.get(k) is not None and not isinstance(data[k], str)), None)
    if wrong is not None:  # {"coord_api": 8001} would end in a traceback wherever the value is used as text
        raise Invalid(f"{path}: \"{wrong}\" must be a string")
    return data


def hub_url(url: str) -> str:
    """The server root of a hub URL, checked; ``Invalid`` (a usage error) when it is not ``http(s)://host[:port]``.

    Seed 000's ``coord_api`` is the server root; one that already ends in
    ``/api/coord`` is tolerated.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise Invalid(f"hub URL {url!r} is not valid: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise Invalid(f"hub URL {url!r} is not valid: expected http(s)://HOST[:PORT], e.g. http://127.0.0.1:8001")
    return url.strip().rstrip("/").removesuffix("/api/coord")


def data_dir() -> Path:
    """Where the local hub keeps ``admin.token``: ``COORD_DATA_DIR``, else the default data dir."""
    value = config.env_value("data_dir")
    return Path(value).expanduser() if value else config.default_data_dir()


def local_admin(directory: Path) -> tuple[str, str]:
    """``(admin token, hub id)`` written by the hub whose data dir is ``directory``; ``NoCredential`` if absent."""
    try:
        token = (directory / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        token = ""
    if not token:
        raise NoCredential(
            f"no admin token in {directory / ADMIN_TOKEN_FILE}: run this as the user who started the hub, with "
            "COORD_DATA_DIR set to the hub's --data-dir if it is not the default, or pass an admin token with "
            "--token / COORD_TOKEN")
    try:
        hub_id = (directory / HUB_ID_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        hub_id = ""
    if not hub_id:
        raise NoCredential(f"{directory / ADMIN_TOKEN_FILE} has no {HUB_ID_FILE} beside it, so the hub it belongs "
                           "to is unknown: restart that hub once (it writes the file), or pass the token with --token")
    return token, hub_id


def is_local_admin_token(token: str, directory: Path) -> bool:
    """Whether ``token`` is the admin token the hub whose data dir is ``directory`` wrote (``admin.token``).

    False when that file cannot be read (another user's hub, no hub on this machine): the token is then taken for
    a session's. Compared in constant time; at most :data:`MAX_ADMIN_TOKEN_BYTES` of the file are read.
    """
    import hmac

    try:
        with open(directory / ADMIN_TOKEN_FILE, "rb") as f:
            written = f.read(MAX_ADMIN_TOKEN_BYTES).strip()
    except OSError:
        return False
    return bool(written) and hmac.compare_digest(written, token.encode("ascii", "replace"))


def instance_id() -> str | None:
    """Seed 002's ``CLAUDE_INSTANCE_ID``, or None when unset, empty or its placeholder ``unknown``."""
    value = os.environ.get(INSTANCE_ENV, "").strip()
    return value if value and value.lower() != "unknown" else None


def project_root(identity_file: Path | None, start: Path | None = None) -> Path | None:
    """The project's root: the directory holding the trusted identity.json, else the git root, else None."""
    if identity_file is not None and identity_file != home_identity():
        return identity_file.parent.parent
    return project.git_root(Path(os.path.abspath(start or Path.cwd())))


def queue_path(root: Path | None, notes: list[str] | None = None) -> Path:
    """The softfail queue of a project (``<root>/.claude/coord-queue.jsonl``), else the user's state directory's.

    The user's state directory's too when the project's cannot be the
    user's own file: ``.claude`` a symlink (``.claude -> ~`` would put the
    queue, and the directory's mode, outside the repository) or not a
    directory, or the queue or a file kept beside it (rejected, the drain's
    journal ``.done``, expired) a symlink, not a regular file, another
    user's or over :data:`MAX_QUEUE_BYTES` (what a repository can commit).
    Why is added to ``notes``.
    """
    fallback = project.state_dir() / QUEUE_NAME
    if root is None:
        return fallback
    folder = root / ".claude"
    path = folder / QUEUE_NAME
    problem: str | None = None
    if not project.real_dir(folder):
        problem = f"{folder} is a symlink or not a directory"
    else:
        beside = (path.with_name(path.stem + f".{kind}" + path.suffix) for kind in ("rejected", "done", "expired"))
        problem = next((f"{p}: {why}" for p in (path, *beside)
                        if (why := project.unusable_file(p, MAX_QUEUE_BYTES)) is not None), None)
    if problem is None:
        return path
    _note(notes, f"not keeping the softfail queue in {folder}: {problem} (a repository may have put it there); "
                 f"using {fallback}")
    return fallback


def resolve(url: str | None = None, token: str | None = None, session: str | None = None,
            queue_file: str | None = None, timeout: float | None = None,
            identity_file: Path | None = None, *, admin: str = "never", start: Path | None = None) -> ClientSettings:
    """Resolve every client setting by the rules in the module docstring.

    ``admin`` is ``never`` (a session command), ``fallback`` (an admin
    command: the local admin token when no token is given) or ``always``
    (``--admin``: the local admin token, and an explicit ``--token`` is a
    usage error). Raises ``Invalid`` for a bad URL, identity.json, token (not
    printable ASCII) or flag combination and :class:`NoCredential` when the
    admin token is wanted and not found.
    """
    if admin not in ADMIN_MODES:
        raise ValueError(f"admin must be one of {ADMIN_MODES}")
    notes: list[str] = []
    ident_path = identity_file or find_identity(start, notes)
    ident = load_identity(ident_path) if ident_path else {}
    home_path = home_identity()
    # A project's file that names no hub or token leaves the user's own to ~/.claude/identity.json (a file of
    # machine, user and project alone used to hide them: the default hub was asked, with no token).
    home = _home_fields(notes) if ident_path is not None and ident_path != home_path else {}
    machine = ident.get("machine")
    url_source, named_url = next(((s, u) for s, u in (("--url", url), ("COORD_URL", config.env_value("url")),
                                                      (str(ident_path), ident.get("coord_api")),
                                                      (str(home_path), home.get("coord_api"))) if u),
                                 (None, DEFAULT_URL))
    if ident_path is None and url_source is None:
        _seed000_identity(notes)
    base = hub_url(named_url)
    user_url = _user_url(home) if url_source == str(ident_path) and ident_path != home_path else None
    named = session or config.env_value("session")
    session_source, session = next(((w, n) for w, n in (
        ("--session" if session else "COORD_SESSION", named), (str(ident_path), ident.get("session")),
        (str(ident_path), main_session(machine) if machine else None), (INSTANCE_ENV, instance_id())) if n),
        (None, None))
    source, chosen = next(((s, t) for s, t in (("--token", token), ("COORD_TOKEN", config.env_value("token")),
                                               (str(ident_path), ident.get("token")),
                                               (str(home_path), home.get("token"))) if t), (None, None))
    if isinstance(chosen, str) and not (chosen.isascii() and chosen.isprintable()):
        # it goes in the Authorization header, which is ASCII: a mistyped one is a usage error, not a traceback
        raise Invalid(f"the token from {source} is not a token: tokens are printable ASCII")
    directory = data_dir()
    hub_id = None
    if admin == "always" and token:
        raise Invalid("give --admin or --token, not both")
    if admin == "always" or (admin == "fallback" and chosen is None):
        chosen, hub_id = local_admin(directory)
        source = str(directory / ADMIN_TOKEN_FILE)
    claimed = bool(named or ident.get("session")) and admin == "never"
    # Only a session token has a session a name could claim. The hub's admin.token acts as 'admin' whatever the
    # identity names, so the name beside it was refused (403 session_mismatch, exit 6: `COORD_TOKEN=<admin token>
    # coord whoami` in a project whose identity.json names the user's session); an admin command already left it
    # out, a session command could not tell the token was the admin's. Asked only when a name would be sent.
    is_admin = hub_id is not None or (claimed and isinstance(chosen, str) and is_local_admin_token(chosen, directory))
    root = project_root(ident_path, start)
    queue = queue_file or config.env_value("queue_file")
    queue_at = Path(queue) if queue else queue_path(root, notes)
    return ClientSettings(
        url=base, token=chosen if isinstance(chosen, str) else None, session=session, user=ident.get("user"),
        machine=machine, queue_file=queue_at,
        timeout=request_timeout(timeout),
        identity_file=ident_path, token_source=source, session_named=bool(named), admin_hub_id=hub_id,
        # an admin command acts as whichever admin its token is (the hub's admin.token given with --token or
        # COORD_TOKEN acts as 'admin'): the user's session name is no claim about that token, and sent beside it
        # refused every admin command of a user whose identity.json names their session (403 session_mismatch)
        session_claimed=claimed and not is_admin,
        data_dir=directory, project_root=root, notes=tuple(notes), url_source=url_source, user_url=user_url,
        token_is_admin=is_admin, session_source=session_source,
    )


def admin_token_note(settings: ClientSettings) -> str:
    """The warning for a session command given the hub's admin token (``settings.token_is_admin``) while a session
    is named (identity.json, ``COORD_SESSION``): it acts as the admin, so its leases and messages are the admin's,
    and two agents sharing that token never conflict; said on every such command, since nothing else shows it."""
    return (f"the token from {settings.token_source} is the hub's admin token: this acts as the admin, not as "
            f"{settings.session} (a session's own token: coord token create {settings.session})")


def request_timeout(flag: float | None) -> float:
    """The seconds a request waits for the hub: ``flag`` (``--timeout``), else ``COORD_TIMEOUT``, else the default.

    Raises :class:`Invalid` naming where the value came from unless it is a number of seconds above 0 and at
    most :data:`MAX_TIMEOUT`: ``COORD_TIMEOUT=abc``, ``nan``, ``-1`` or ``1e12`` ended in a traceback (``float()``,
    or the socket's timeout), and ``--timeout 0`` quietly meant the default.
    """
    source, raw = ("--timeout", flag) if flag is not None else (config.setting("timeout").env,
                                                               config.env_value("timeout"))
    if raw is None:
        return float(config.setting("timeout").default)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT):
        shown = repr(raw) if isinstance(raw, str) else f"{raw:g}"
        raise Invalid(f"{source} must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, not {shown}")
    return seconds


def _home_fields(notes: list[str]) -> dict[str, Any]:
    """``~/.claude/identity.json``'s fields beside a project's file, or ``{}`` (none there; unreadable: noted)."""
    home = home_identity()
    if not home.is_file():
        return {}
    try:
        return load_identity(home)
    except CoordError as exc:
        _note(notes, f"ignoring {exc.message}")
        return {}


def _user_url(home: dict[str, Any]) -> str:
    """The hub the user's own ``~/.claude/identity.json`` (its fields: ``home``) names, else :data:`DEFAULT_URL`:
    a project's identity.json naming it chooses nothing the user had not chosen."""
    named = home.get("coord_api")
    try:
        return hub_url(named) if named else DEFAULT_URL
    except CoordError:
        return DEFAULT_URL
