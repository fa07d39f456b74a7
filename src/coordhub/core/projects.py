"""Project keys: the ``project_key`` of leases, messages, todos, workflows, work items, components and events.

The rule: a project key compares case-insensitively, and the hub keeps it in
lower case (:func:`fold`), so ``GuruRMM`` and ``gururmm`` are one project.
Why: seed 001's keys are lower-case slugs typed by hand (``gururmm``), while
the edit hook and the git guard derive a key from the repository's directory
name (``GuruRMM``: :func:`coordhub.hooks.project.resolve`), and the same
repository may be cloned under names differing only in case (GitHub, macOS
and Windows treat its name case-insensitively). Compared exactly, a lease
claimed under one spelling was invisible to a check under the other. Halt
scopes and declared projects already compare so (:mod:`coordhub.core.scope`).

Only case is folded: seed 001 says keys are free-form, so ``dataforth-dos``
or ``my.project`` keep every other character. Only the ASCII letters: that is
what both stores' SQL folds alike (SQLite's ``lower()``; PostgreSQL's
``lower()`` under the ``C`` collation), which migration 0028 used on the keys
stored before the rule, and full Unicode case folding depends on the locale
(Turkish dotted I). Repository names and seed slugs are ASCII.

Every core function that takes a project key from a caller folds it on entry,
so each front end (REST, ``/mcp``, the CLI, hooks, the orchestrator) gets the
rule from the core; what the store holds is always folded and compared exactly.
"""

from __future__ import annotations

import string
from typing import overload

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@overload
def fold(key: str) -> str: ...


@overload
def fold(key: None) -> None: ...


def fold(key: str | None) -> str | None:
    """The project key as the hub stores and compares it: ``key`` with its ASCII letters in lower case.

    None (no project, or no filter) stays None. Idempotent.
    """
    if key is None:
        return None
    # On an ASCII key lower() changes exactly its ASCII letters, in one C pass: ~1.5k instructions where the
    # translation table took ~9k for a 15-character key (a lookup per character; every claim, release and send
    # folds one to three keys: issue 15). Any other key keeps its other letters as they are, through the table.
    return key.lower() if key.isascii() else key.translate(_LOWER)
