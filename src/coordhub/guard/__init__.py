"""The git guard: pre-commit, pre-merge-commit and pre-push checks against leases held by other sessions (stdlib only).

Run by ``coord-hook git-pre-commit`` / ``git-pre-merge-commit`` / ``git-pre-push`` (see
:mod:`coordhub.guard.run`), installed by ``coord install-git-hook`` (see :mod:`coordhub.guard.install`).
"""
