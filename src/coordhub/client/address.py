"""The caller's conversation address, ``<machine>.<project>`` (seed 004), worked out on the client.

Standard library only, but for the hub's name rule in :mod:`coordhub.core.identity` (the drop-in
``cross-agent-*`` commands start from it).

Seed 004 addresses a project on a machine as ``<machine>.<project>`` and
spells the caller's own machine ``local``. The hub keeps each session's
declared address (``PUT /api/coord/conversations/profile``, or on every turn
sent); this module decides what a client declares:

* **machine**: identity.json ``machine`` (seed 000's field), else the MACHINE
  part of the session id ``MACHINE/name``, else the short host name (what the
  seed compared ``<machine>`` with);
* **project**: ``COORD_PROJECT``, else identity.json ``project``, else the name
  of the git root's directory (the seed derived it from ``~/projects/<name>/``,
  which is the same directory for its users); every linked worktree of a
  repository counts as its main working tree, as the hooks' project key does.

A project's ``.claude/identity.json`` (not ``~/.claude``'s) names the
machine and project only when that file also chose the hub or the credential
the client uses (:meth:`~coordhub.client.settings.ClientSettings.chosen_by_project`,
which the user must trust first): the session is then the file's anyway. A file
beside the user's own token (``COORD_TOKEN``, ``~/.claude/identity.json``) may
have come with a cloned repository or an archive (untracked proves nothing),
and must not choose the address the user's session sends from and reads the
turns of: ``"project": "career"`` planted in any repository would have read
career's inbox into an agent working there and sent as career. Its fields are
then passed over (with a note), as the hooks never let such a file take the
repository's own key out of a check (:attr:`coordhub.hooks.project.Project.also`);
``COORD_PROJECT`` names the project for the user.

Both are lower-cased, and any character the hub does not take in an address
part (it takes ``[a-z0-9_-]``, at most 64, starting with a letter or digit) is
replaced by ``-``, and ``-`` and ``_`` are stripped from the ends: ``My.Project``
becomes ``my-project``, ``api_`` becomes ``api``
(:func:`coordhub.core.identity.address_part`, which ``coord halt --project`` uses too).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, NamedTuple

from coordhub.client import project as places
from coordhub.core.identity import ADDRESS_PART as _PART
from coordhub.core.identity import address_part

LOCAL = "local"  # seed 004: local.<project> is this machine
PROJECT_ENV = "COORD_PROJECT"


class Address(NamedTuple):
    """A ``machine.project`` pair, both parts lower case."""

    machine: str
    project: str

    def __str__(self) -> str:
        return f"{self.machine}.{self.project}"


def part(value: str) -> str:
    """``value`` as an address part: lower case, other characters ``-``, ``-``/``_`` stripped from the ends, at most
    64; ``ValueError`` if none is left."""
    return address_part(value)


def machine(identity: dict[str, Any], session: str | None = None, hostname: str | None = None) -> str:
    """This client's machine: identity.json ``machine``, else ``MACHINE`` of ``MACHINE/name``, else the host name;
    one without a letter or digit (``---``) is passed over. ``ValueError`` when the host name has none either."""
    for candidate in (identity.get("machine"), session.split("/", 1)[0] if session and "/" in session else None):
        if isinstance(candidate, str) and candidate.strip():
            with contextlib.suppress(ValueError):  # no letter or digit in it ("---"): the next one says
                return part(candidate)
    return part((hostname or socket.gethostname()).split(".", 1)[0])


def project_name(identity: dict[str, Any], start: Path | None = None) -> str | None:
    """This client's project: ``COORD_PROJECT``, else identity.json ``project``, else the git root's name; or None.
    One without a letter or digit (``---``) is passed over."""
    for candidate in (os.environ.get(PROJECT_ENV), identity.get("project")):
        if isinstance(candidate, str) and candidate.strip():
            with contextlib.suppress(ValueError):  # no letter or digit in it ("---"): the next one says
                return part(candidate)
    root = places.git_root(Path(os.path.abspath(start or Path.cwd())))
    if root is None:
        return None
    common = places.git_dir(root)  # a linked worktree counts as its repository's main tree, as for hooks
    name = root.name if common is None else common.parent.name if common.name == ".git" else \
        common.name.removesuffix(".git")
    try:
        return part(name or root.name)
    except ValueError:
        return None


def parse(text: str, local_machine: str) -> Address:
    """``machine.project`` as an :class:`Address`, ``local`` replaced by ``local_machine``.

    Raises ``ValueError`` (its message says what is wrong) for a text without
    a dot or with a part that cannot be an address part.
    """
    head, dot, tail = text.strip().partition(".")
    if not dot or not head or not tail:
        raise ValueError(f"destination must be <machine>.<project>; got {text!r}")
    m = local_machine if head.lower() == LOCAL else head
    if not _PART.fullmatch(m.lower()) or not _PART.fullmatch(tail.lower()):
        raise ValueError(f"{text!r} is not an address: each part is letters, digits, _ or - (at most 64)")
    return Address(m.lower(), tail.lower())


def of(settings: Any, session_id: str | None = None, start: Path | None = None,
       notes: list[str] | None = None) -> tuple[str, str | None]:
    """``(machine, project)`` of a client with these :class:`~coordhub.client.settings.ClientSettings`.

    ``session_id`` is the acting session when known (the hub's answer for a
    token); else the session the settings name. ``project`` is None outside
    any project (no ``COORD_PROJECT``, identity.json ``project`` or git root).
    A project's identity.json ``machine`` and ``project`` count only when that
    file chose the hub or the credential (see the module docstring); else the
    user's own ``~/.claude/identity.json`` gives them, and ``notes`` (when
    given) says which of the project file's were passed over and why.
    """
    from coordhub.client.settings import home_identity, load_identity

    path = settings.identity_file
    ident = load_identity(path) if path is not None else {}
    if path is not None and path != home_identity() and not settings.chosen_by_project():
        home = home_identity()
        own = load_identity(home) if home.is_file() else {}
        found = machine(own, session_id or settings.session), project_name(own, start)
        named = [f"{key} {value!r}" for key, value, used in (("machine", ident.get("machine"), found[0]),
                                                             ("project", ident.get("project"), found[1]))
                 if isinstance(value, str) and value.strip() and _folded(value) != used]
        if named and notes is not None:
            notes.append(f"ignoring {' and '.join(named)} of {path}: a repository's identity.json does not choose "
                         f"your conversation address unless its own token (or hub) is the one used; this "
                         f"session is {found[0]}.{found[1] or '(no project)'} (set {PROJECT_ENV} to name the "
                         "project)")
        return found
    return machine(ident, session_id or settings.session), project_name(ident, start)


def _folded(value: str) -> str | None:
    """``value`` as an address part, None when it has no letter or digit."""
    try:
        return part(value)
    except ValueError:
        return None
