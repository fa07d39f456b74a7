"""GitHub through the ``gh`` CLI, for the coordinator side only (a host with capability ``github``, or the user's
``coord`` command): workers never get GitHub credentials.

Seed 003 wrapped ``gh`` thinly and let a missing binary escape as a traceback;
here every call has a timeout and a scrubbed, bounded environment, and every
failure is a :class:`GitHubError` carrying gh's exit code and its first
stderr line: 4 is :class:`NotAuthenticated`, a missing binary is
:class:`GhMissing`. ``--json`` answers are parsed; ``pr merge`` and ``pr
review`` print nothing on success (research orchestrator.md §6), so success
is the exit code alone. ``gh pr checks`` exits 8 while a check is pending:
:func:`checks` returns the rows with a ``pending`` flag instead of raising.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

GH_TIMEOUT = 60.0  # seconds per gh call (an API round trip, or a merge GitHub performs)
EXIT_AUTH = 4
EXIT_PENDING = 8
_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "GH_TOKEN", "GITHUB_TOKEN", "GH_HOST", "GH_CONFIG_DIR",
             "XDG_CONFIG_HOME", "FAKE_GH_STATE", "FAKE_GH_USER", "SSL_CERT_FILE", "HTTPS_PROXY", "NO_PROXY")


class GitHubError(Exception):
    """``gh`` failed: ``code`` is its exit code, ``message`` its stderr (first 500 characters)."""

    def __init__(self, code: int, message: str, args: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.argv = code, message, args or []


class NotAuthenticated(GitHubError):
    """``gh`` is not logged in (exit 4): run ``gh auth login`` on the coordinator-side machine."""


class GhMissing(GitHubError):
    """No ``gh`` binary on ``PATH``."""


@dataclass(frozen=True)
class Checks:
    """A PR's CI checks: ``rows`` as ``gh pr checks --json name,state,bucket`` gives them."""

    rows: list[dict[str, Any]]

    @property
    def pending(self) -> bool:
        return any(r.get("bucket") == "pending" for r in self.rows)

    @property
    def failed(self) -> list[str]:
        """Names of checks that failed or were cancelled."""
        return [str(r.get("name")) for r in self.rows if r.get("bucket") in ("fail", "cancel")]


class GitHub:
    """``gh`` for one repository (``owner/name``); ``binary`` is found on ``PATH`` unless given."""

    def __init__(self, repo: str, binary: str | None = None, timeout: float = GH_TIMEOUT,
                 env: dict[str, str] | None = None) -> None:
        self.repo = repo
        self.timeout = timeout
        source = env if env is not None else dict(os.environ)
        self.env = {k: v for k, v in source.items() if k in _KEEP_ENV}
        self.env["GH_PROMPT_DISABLED"] = "1"
        self.env["NO_COLOR"] = "1"
        self.binary = binary or shutil.which("gh", path=self.env.get("PATH"))

    def run(self, *args: str, ok: tuple[int, ...] = (0,), stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``gh ARGS -R repo`` (``stdin`` fed to it); the completed process when its exit code is in ``ok``, else
        :class:`GitHubError`."""
        if self.binary is None:
            raise GhMissing(127, "gh is not installed on this machine (the coordinator side needs an authenticated "
                                 "gh: https://cli.github.com)")
        argv = [self.binary, *args, "-R", self.repo]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=self.timeout,
                               input=stdin if stdin is not None else "")
        except subprocess.TimeoutExpired:
            raise GitHubError(124, f"gh {' '.join(args[:2])} timed out after {self.timeout:g} s", list(args)) from None
        except OSError as exc:
            raise GhMissing(127, f"cannot run gh: {exc}", list(args)) from None
        if p.returncode not in ok:
            message = (p.stderr or p.stdout).strip()[:500] or f"gh exited {p.returncode}"
            cls = NotAuthenticated if p.returncode == EXIT_AUTH else GitHubError
            raise cls(p.returncode, message, list(args))
        return p

    def json(self, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        """Run and parse stdout as JSON (``GitHubError`` when it is not)."""
        p = self.run(*args, ok=ok)
        try:
            return json.loads(p.stdout)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            if p.returncode != 0 and not p.stdout.strip():  # an accepted failure code that printed only its reason
                raise GitHubError(p.returncode, p.stderr.strip()[:500] or f"gh exited {p.returncode}",
                                  list(args)) from None
            raise GitHubError(p.returncode, f"gh {' '.join(args[:2])} printed no JSON: {p.stdout[:200]!r}") from None

    # -- issues -------------------------------------------------------------------------------

    def issue(self, number: int) -> dict[str, Any]:
        """``{number, title, state, labels: [names], body}`` of an issue."""
        data = self.json("issue", "view", str(number), "--json", "number,title,state,labels,body")
        labels = [str(x.get("name")) for x in data.get("labels") or [] if isinstance(x, dict)]
        return {**data, "labels": labels}

    def comment(self, number: int, body: str) -> str:
        """Post a comment on an issue or PR (the body on stdin: no argument-length limit); the comment's URL."""
        return self.run("issue", "comment", str(number), "--body-file", "-", stdin=body).stdout.strip()

    def comments(self, number: int) -> list[dict[str, Any]]:
        """The comments of an issue: ``[{id, body, url, createdAt, author}]``."""
        data = self.json("issue", "view", str(number), "--json", "comments")
        return [c for c in data.get("comments") or [] if isinstance(c, dict)]

    def close_issue(self, number: int, comment: str | None = None) -> None:
        """Close an issue as completed (an already closed one is not an error, as in gh)."""
        self.run("issue", "close", str(number), *(["--comment", comment] if comment else []))

    # -- pull requests --------------------------------------------------------------------------

    def pr_for(self, head: str, base: str) -> dict[str, Any] | None:
        """The newest PR (any state) from this repository's branch ``head`` into ``base``: ``{number, url, state,
        headRefOid}``, or None. ``--head`` matches the branch name in any fork, and branch names are guessable
        (``issue-<N>-<slug>``): a PR from a fork is never ours (it would be linked, checked and merged as ours)."""
        rows = self.json("pr", "list", "--head", head, "--base", base, "--state", "all", "--json",
                         "number,url,state,headRefOid,isCrossRepository")
        for row in rows:
            if row.get("isCrossRepository") is False:
                return {k: v for k, v in row.items() if k != "isCrossRepository"}
        return None

    def pr_create(self, head: str, base: str, title: str, body: str) -> str:
        """Open a PR; its URL. An existing open PR for the branch is returned, not an error."""
        try:
            return self.run("pr", "create", "--head", head, "--base", base, "--title", title, "--body",
                            body).stdout.strip()
        except GitHubError as exc:
            if "already exists" in exc.message:
                return exc.message.strip().splitlines()[-1].strip()
            raise

    def pr_view(self, number: int, fields: str) -> dict[str, Any]:
        """``gh pr view N --json fields``."""
        data = self.json("pr", "view", str(number), "--json", fields)
        return data if isinstance(data, dict) else {}

    def checks(self, number: int) -> Checks:
        """The PR's checks now (pending ones included: gh's exit 8 is not an error here); no checks → empty."""
        try:
            rows = self.json("pr", "checks", str(number), "--json", "name,state,bucket", ok=(0, 1, EXIT_PENDING))
        except GitHubError as exc:
            if "no checks reported" in exc.message:
                return Checks([])
            raise
        return Checks([r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else [])

    def merge(self, number: int, method: str, head_sha: str, delete_branch: bool = False) -> None:
        """Merge a PR (``method`` rebase, squash or merge) only if its head is still ``head_sha``; silent on success."""
        flag = {"rebase": "--rebase", "squash": "--squash", "merge": "--merge"}[method]
        self.run("pr", "merge", str(number), flag, "--match-head-commit", head_sha,
                 *(["--delete-branch"] if delete_branch else []))
