"""Reviews on the hub's side: what a reviewer is given, and the check of what it answered (issue 12 point 3).

A review is a fresh Claude session on the branch under review (the host's
:mod:`coordhub.orchestrator.review` runs it read-only). The hub gives it the
issue (number, title, the worker's briefing) and the checklist:
``reviews.checklist`` plus ``reviews.repo_overrides[<repo>]``; the host adds
the diff against the base and the repo's CLAUDE.md, which live in the
repository. The verdict's shape is :mod:`coordhub.core.verdict`'s,
checked again here: the hub never trusts a host's reading of it.
"""

from __future__ import annotations

from typing import Any

from coordhub.core import verdict as review_verdict
from coordhub.core.orchestrator_config import Config
from coordhub.store.base import Row

READ_ONLY_TOOLS = ("Read", "Grep", "Glob", "Bash(git diff *)", "Bash(git log *)", "Bash(git show *)",
                   "Bash(git status *)", "Bash(ls *)", "Bash(cat *)", "Bash(grep *)", "Bash(wc *)")
DENIED_TOOLS = ("Edit", "Write", "NotebookEdit", "MultiEdit", "AskUserQuestion", "WebFetch", "Task",
                "Bash(git push *)", "Bash(git commit *)", "Bash(git checkout *)", "Bash(git reset *)",
                "Bash(rm *)", "Bash(gh *)",
                # git log/show/diff write their output to any path with --output=<file> (a commit message of the
                # branch's author, with --format=%B): the allowed read-only git rules must not reach it
                "Bash(git *--out*)")


def checklist(config: Config, repo: str) -> list[str]:
    """``reviews.checklist`` followed by the repo's ``reviews.repo_overrides`` items."""
    return [*config.reviews.checklist, *config.reviews.repo_overrides.get(repo, [])]


def model(config: Config) -> str:
    """The reviewer's model: ``reviews.model``, else ``models.default`` (the same for every round)."""
    return config.reviews.model or config.models.default


def payload(config: Config, row: Row) -> dict[str, Any]:
    """The review part of a run's dispatch payload: the issue, the checklist, the tools it may use."""
    return {"issue": row["issue"], "title": row["title"], "briefing": row["briefing"],
            "checklist": checklist(config, row["repo"]), "allowed_tools": list(READ_ONLY_TOOLS),
            "disallowed_tools": list(DENIED_TOOLS), "schema": review_verdict.SCHEMA}


def check_verdict(verdict: Any, summary: Any, findings: Any) -> dict[str, Any] | None:
    """A host-reported verdict checked and bounded (:func:`coordhub.core.verdict.normalize`), or None."""
    return review_verdict.normalize(verdict, summary, findings)
