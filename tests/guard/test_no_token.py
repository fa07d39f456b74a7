"""The git guard without a token: its warning says how to give it one (the commit is still accepted, fail-open).

It warned with the hub's own line, "missing bearer token: send 'Authorization:
Bearer <token>'", a header nobody committing writes; the guard's token comes
from ``COORD_TOKEN`` in git's environment or identity.json, as the CLI's own
no-token error says for the CLI.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LiveHub
from tests.coordcli import isolated_env
from tests.guard.conftest import Repo, init_repo

HOW = ("needs a token: ask its admin for one (`coord token create NAME`) and pass it with COORD_TOKEN in git's "
       "environment or identity.json \"token\" (the repository's .claude/identity.json, kept out of git, or "
       "~/.claude/identity.json)")


def _repo(tmp_path: Path, **env: str) -> Repo:
    """A repository with the guard, committing with ``env`` (and no outer git or Claude Code settings)."""
    settings = isolated_env(tmp_path / "a", **env)
    for name in ("CLAUDE_PROJECT_DIR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        settings.pop(name, None)
    return init_repo(tmp_path / "work" / "gururmm", settings)


def test_a_commit_without_a_token_is_accepted_with_a_warning_that_says_how_to_give_the_guard_one(
        live_hub: LiveHub, tmp_path: Path) -> None:
    repo = _repo(tmp_path, COORD_URL=live_hub.url)
    repo.change("lib/new.py")
    r = repo.commit()
    assert r.code == 0, r  # fail-open, as documented
    assert r.err.splitlines() == [
        f"coord guard: warning: the hub could not be asked without a token (the hub at {live_hub.url} {HOW}); "
        "commit accepted unchecked (COORD_HOOK_FAIL_MODE=open)."], r
    repo.change("lib/other.py")
    closed = repo.commit(env={"COORD_HOOK_FAIL_MODE": "closed"})
    assert closed.code == 1 and f"commit refused: the hub could not be asked without a token (the hub at " \
        f"{live_hub.url} {HOW}), and COORD_HOOK_FAIL_MODE=closed" in closed.err, closed


def test_an_unknown_token_is_still_named_by_the_hubs_own_words(live_hub: LiveHub, tmp_path: Path) -> None:
    repo = _repo(tmp_path, COORD_URL=live_hub.url, COORD_TOKEN="not-a-token")
    repo.change("lib/new.py")
    r = repo.commit()
    assert r.code == 0 and "warning: the hub could not be asked (unknown or revoked token" in r.err, r
    assert "needs a token" not in r.err
