"""One run of a hook: its payload, settings, identity, project and hub connection, each loaded on first use.

Nothing is loaded up front, so a handler that decides from the payload alone
(a file outside the project, ``stop_hook_active``) never reads identity.json
or opens a connection.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from coordhub.client.credentials import check_url
from coordhub.client.settings import ClientSettings, admin_token_note, find_identity, home_identity, load_identity
from coordhub.client.settings import resolve as resolve_client
from coordhub.errors import CoordError
from coordhub.hooks import output, project
from coordhub.hooks.hub import Hub, NotConfigured
from coordhub.hooks.project import Project
from coordhub.hooks.settings import HookSettings
from coordhub.hooks.untrusted import one_line


class Invocation:
    """Everything one hook run needs; ``payload`` is the JSON object Claude Code sent (``{}`` for git hooks).

    ``cwd`` defaults to the payload's ``cwd``, else the process's;
    ``claude_project_dir`` says whether ``$CLAUDE_PROJECT_DIR`` picks the
    project (see :func:`coordhub.hooks.project.resolve`).
    """

    def __init__(self, event: str, payload: dict[str, Any], settings: HookSettings,
                 cwd: Path | None = None, *, claude_project_dir: bool = True) -> None:
        self.event = event
        self.claude_project_dir = claude_project_dir
        self.payload = payload
        self.settings = settings
        given = payload.get("cwd")
        if not isinstance(given, str) or not given or "\x00" in given:  # no path can hold a NUL byte
            given = os.getcwd()
        self.cwd = cwd or Path(given)
        self.start = project.start_dir(self.cwd, claude_project_dir=claude_project_dir)

    @cached_property
    def identity_file(self) -> Path | None:
        """The trusted identity.json for :attr:`start`, or None (the rules of :mod:`coordhub.client.settings`:
        inside the git root, untracked, else ``~/.claude``); each file passed over is logged on stderr.

        Looked for from ``$CLAUDE_PROJECT_DIR`` (where the project root comes
        from), not from the payload's ``cwd``, which follows the agent's ``cd``:
        an identity.json in a repository the agent moved into must not choose
        the key (or the hub, token or session) for the session's own files.
        """
        return self._identity_file(self.start)

    def _identity_file(self, start: Path) -> Path | None:
        notes: list[str] = []
        found = find_identity(start, notes)
        for note in notes:  # notes name the repository's paths, which may hold terminal escapes
            output.log(self.event, one_line(note))
        return found

    @cached_property
    def identity(self) -> dict[str, Any]:
        """identity.json's fields; ``{}`` without one. Raises ``NotConfigured`` if it is not a JSON object."""
        if self.identity_file is None:
            return {}
        try:
            return load_identity(self.identity_file)
        except CoordError as exc:
            raise NotConfigured(exc.message) from None

    @cached_property
    def client(self) -> ClientSettings:
        """Hub URL, token and session, by the precedence of :mod:`coordhub.client.settings`."""
        self.identity  # noqa: B018 - raises NotConfigured before resolve() reports it less clearly
        try:
            return resolve_client(timeout=self.settings.timeout, identity_file=self.identity_file, start=self.start)
        except CoordError as exc:
            raise NotConfigured(exc.message) from None

    @cached_property
    def project(self) -> Project:
        """The project the hook works in (see :mod:`coordhub.hooks.project`)."""
        try:
            identity = self.identity
        except NotConfigured:
            identity = {}
        return project.resolve(self.cwd, identity, claude_project_dir=self.claude_project_dir,
                               own_identity=self.identity_file == home_identity())

    def project_of(self, path: str) -> tuple[Project, list[str]] | None:
        """The project an edited file is checked in, and its names there (see :meth:`Project.names`); None if none.

        A file inside :attr:`project`'s root is checked there. A file outside
        it but inside another git working tree is checked in that tree: under
        the session's key when it is a worktree of the session's repository,
        else under the key a session or guard started in that tree would use
        (``COORD_PROJECT``, the project of its own trusted identity.json, its
        repository name). A file in no git tree outside the root has no
        project. The root itself (``"."``) is nothing to check. Raises
        ``NotConfigured`` when the other tree's identity.json is unreadable.
        """
        names = [n for n in self.project.names(path, self.cwd) if n != "."]
        if names:
            return self.project, names
        full = Path(path)
        full = full if full.is_absolute() else self.cwd / full
        tree = project.repository_of(full)
        if tree is None:
            return None
        if project.same_repository(tree, self.project.root):
            other = Project(self.project.key, tree, self.project.also)
        else:
            found = self._identity_file(tree)
            try:
                identity = load_identity(found) if found else {}
            except CoordError as exc:
                raise NotConfigured(exc.message) from None
            other = project.resolve(tree, identity, claude_project_dir=False, own_identity=found == home_identity())
        names = [n for n in other.names(path, self.cwd) if n != "."]
        return (other, names) if names else None

    def admin_note(self) -> str | None:
        """What the agent is told when this run acted as the hub's admin, or None (also when the run never resolved
        its client settings, so nothing was asked of the hub).

        The hub's ``admin.token`` given as the session's token (``COORD_TOKEN``, identity.json ``token``) beside a
        session's name acts as ``admin`` whatever the name (:func:`coordhub.client.settings.resolve`), as it does
        for the CLI, which says so on every command (:func:`~coordhub.client.settings.admin_token_note`): its
        leases and messages are the admin's, and another agent sharing the token is never kept off its files.
        """
        c = self.__dict__.get("client")
        if not isinstance(c, ClientSettings) or not c.token_is_admin:
            return None
        return (f"coord: WARNING: {one_line(admin_token_note(c))}. The leases and messages of this session are the "
                "admin's, and an agent sharing this token is never kept off the files you lease; tell the user.")

    @cached_property
    def hub(self) -> Hub:
        """A connection to the hub as this session (opened lazily by the first request).

        Raises ``NotConfigured`` when this session may not ask this URL: the
        token was first used with another, or a project's identity.json named
        a hub the user never trusted (:func:`coordhub.client.credentials.check_url`).
        """
        c = self.client
        try:
            check_url(c)
        except CoordError as exc:
            raise NotConfigured(exc.message) from None
        return Hub(c.url, c.token, c.session, self.settings.timeout, claimed=c.session_claimed)

    def close(self) -> None:
        """Close the hub connection if one was opened."""
        if "hub" in self.__dict__:
            self.hub.close()

