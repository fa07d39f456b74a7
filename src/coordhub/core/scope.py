"""What a halt covers: the fleet, one machine or one project (contract §2.8, issue 9 point 8).

A scope is written ``fleet``, ``machine:<m>`` or ``project:<p>``; names
compare case-insensitively and are kept in lower case. A session is in a
scope by where it acts from:

* its **machine** is the machine it declared (``sessions.machine``, seed
  004's ``<machine>.<project>`` address), else the MACHINE part of its id
  (``MACHINE/name``, seed 000); a bare id (seed 002) that declared none has
  no machine;
* its **project** is the project it declared (``sessions.project``); none
  when undeclared.

A project scope names a project as sessions declare it (seed 004's address
part, :data:`~coordhub.core.identity.ADDRESS_PART`: letters, digits, ``_``
and ``-``, no dots); :func:`parse` refuses any other name, which no session
could ever declare, and says which name the client would have made of it
(``coord.hub`` → ``coord-hub``, :func:`~coordhub.core.identity.address_part`).
The orchestrator's repositories are projects by that same rule
(:func:`project_of`). Hubs before this rule stored project scopes with the
machine rule below (dots and all); such a standing row still reads, covers
the project its name makes and can be lifted by its old spelling.

Who may halt or resume a scope (:func:`may_act_on`) is a separate question
from who is in it: that right comes from the credential only.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from coordhub.core.identity import ADDRESS_PART, Actor, address_part, machine_of, orchestrator_role
from coordhub.errors import Forbidden, Invalid
from coordhub.store.base import Row

FLEET_KEY = "*"  # the key migration 0001 gave the fleet halt's row
KINDS = ("fleet", "machine", "project")
# A machine name: a session id's MACHINE part (seed 000) or a seed-004 address part; also a project scope's
# name as hubs before ADDRESS_PART stored it (parse(..., stored=True)).
_NAME = re.compile(r"[a-z0-9_.@+-]{1,100}")


class Scope(NamedTuple):
    """One scope: ``kind`` is one of :data:`KINDS`; ``name`` the machine or project (lower case), None for the fleet."""

    kind: str
    name: str | None = None

    @property
    def key(self) -> str:
        """The ``halts.scope`` value: ``*`` for the fleet, else the label."""
        return FLEET_KEY if self.kind == "fleet" else self.label

    @property
    def label(self) -> str:
        """The scope as the API and CLI write it: ``fleet``, ``machine:<m>`` or ``project:<p>``."""
        return "fleet" if self.kind == "fleet" else f"{self.kind}:{self.name}"

    @property
    def words(self) -> str:
        """The scope in a sentence: ``the fleet``, ``machine m``, ``project p``."""
        return "the fleet" if self.kind == "fleet" else f"{self.kind} {self.name}"

    def covers(self, session_id: str, row: Row | None) -> bool:
        """Whether the session (its id and ``sessions`` row, None when unknown) acts inside this scope."""
        if self.kind == "fleet":
            return True
        if self.kind == "machine":
            return machine_in(session_id, row) == self.name
        project = row.get("project") if row is not None else None
        return isinstance(project, str) and project_of(project) == project_of(self.name or "")

    def holds_project(self, project_key: str) -> bool:
        """Whether this is the scope of the project that work under ``project_key`` (a lease's key, the edit hook's
        and the git guard's repository name) is in: a project scope whose name and the key make one project."""
        return self.kind == "project" and project_of(project_key) == project_of(self.name or "")


FLEET = Scope("fleet")


def parse(text: str | None, *, stored: bool = False) -> Scope:
    """The scope written ``text`` (None: the fleet); ``Invalid`` (422) for anything else.

    A project's name must be one a session can declare (module docstring);
    ``stored``: also one an older hub stored, to read its rows and lift them.
    """
    if text is None or text.strip().lower() == "fleet":
        return FLEET
    kind, sep, name = text.strip().partition(":")
    kind, name = kind.lower(), name.strip().lower()
    if not sep or kind not in ("machine", "project") or not _NAME.fullmatch(name):
        raise Invalid(f"scope {text[:120]!r} is not a scope: use fleet, machine:<name> or project:<name> "
                      "(names of letters, digits and _ . @ + -, at most 100)", field="scope")
    if kind == "project" and not ADDRESS_PART.fullmatch(name) and not stored:
        raise Invalid(_never_declared(name), field="scope")
    return Scope(kind, name)


def _never_declared(name: str) -> str:
    try:
        hint = f": the project a client makes of {name!r} is {address_part(name)!r}, halt project:{address_part(name)}"
    except ValueError:
        hint = ""
    return (f"no session can declare project {name!r}, so a halt of it would cover nobody: a project is letters, "
            f"digits, _ and -, starting with a letter or digit, at most 64, no dots{hint}")


def from_key(key: str) -> Scope:
    """The scope of a stored ``halts.scope`` value, or of a pause's ``paused_scope`` (a label)."""
    return FLEET if key == FLEET_KEY else parse(key, stored=True)


def project_of(name: str) -> str:
    """The project a repository's, directory's or project scope's name stands for, lower case.

    :func:`~coordhub.core.identity.address_part` of it, as a client declares
    the project of a git root so named; the name itself (lower case) when no
    letter or digit is in it. Applied to what it made it makes the same (a
    name cut at 64 right after a ``-`` loses it), so a repository, a halt's
    name and a session's declared project (``api_`` from a client that kept
    it) compare alike whichever was normalised before.
    """
    try:
        return address_part(address_part(name))
    except ValueError:
        return name.strip().lower()


def machine_in(session_id: str, row: Row | None) -> str | None:
    """The machine a session acts from, lower case: declared, else its id's MACHINE part, else None."""
    declared = row.get("machine") if row is not None else None
    machine = declared if isinstance(declared, str) and declared else machine_of(session_id)
    return machine.lower() if machine else None


def may_act_on(actor: Actor, scope: Scope, verb: str) -> None:
    """Refuse (403) unless ``actor`` may halt or resume ``scope`` (``verb``: ``halt`` or ``resume``).

    An admin token may act on any scope. Any other session only on its own
    machine, and its own machine is the MACHINE part of its session id: the
    id is what the admin minted the token for, so the right comes from the
    credential (contract §2.2), never from a declaration. (``PUT /profile``
    lets a session declare no machine but its id's anyway; checking the id
    keeps this rule from resting on that one.) The orchestrator's own
    sessions, its hosts and workers (:func:`~coordhub.core.identity.orchestrator_role`),
    may halt their machine (a pause; ``kill`` is refused them elsewhere) but
    resume nothing: a halt stops them, so they may not lift one.
    """
    if actor.is_admin:
        return
    role = orchestrator_role(actor.session_id) if verb == "resume" else None
    if role is not None:
        # The brake is pulled on the orchestrator's workers: were their tokens (or the host's, which runs them)
        # able to lift it, a prompt-injected worker would release the halt stopping it. Pulling it stays allowed.
        raise Forbidden(f"{verb} of {scope.label} needs a person's session or an admin token; "
                        f"{actor.session_id!r} is an orchestrator {role}", scope=scope.label)
    own = machine_of(actor.session_id)
    if scope.kind == "machine" and own is not None and own.lower() == scope.name:
        return
    mine = f"only machine:{own.lower()} (the machine part of its id)" if own else \
        "no scope (its id names no machine)"
    raise Forbidden(f"{verb} of {scope.label} needs an admin token; {actor.session_id!r} may {verb} {mine}",
                    scope=scope.label)
