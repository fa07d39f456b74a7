"""The hooks and the git guard given the hub's admin token beside a session's name say they act as the admin.

``COORD_TOKEN=<the hub's admin.token>`` with ``COORD_SESSION`` (or identity.json ``session``) naming a session: the
token acts as ``admin`` whatever the name (coordhub.client.settings), so the agent's leases and messages are the
admin's and another agent sharing the token is never kept off its files. The CLI says so on every command
(``admin_token_note``); the hooks acted as the admin silently: the SessionStart briefing, an edit denied and the
guard's refusal now carry the same words, and each run logs them on stderr. Real hooks, git and hub.
"""

from __future__ import annotations

from tests.guard.conftest import Repo, init_repo
from tests.hooks.conftest import A, Fleet
from tests.hooks.test_hooks import edit

NOTE = f"is the hub's admin token: this acts as the admin, not as {A} (a session's own token: coord token create {A})"


def as_admin(fleet: Fleet) -> dict[str, str]:
    """Session A's hook environment with the hub's admin token in COORD_TOKEN beside A's name."""
    return {"COORD_TOKEN": fleet.hub.admin_token, "COORD_SESSION": A, "COORD_DATA_DIR": str(fleet.hub.data_dir)}


def test_the_session_start_briefing_and_a_denied_edit_say_the_admin_token_acts_as_the_admin(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    start = a.hook("session-start", env=as_admin(fleet), hook_event_name="SessionStart", source="startup")
    text = start.context("SessionStart")
    assert NOTE in text and "tell the user" in text.lower(), text
    assert text.index(NOTE) < text.index("coord: you are admin"), text  # first, before the briefing
    assert NOTE in start.err, start
    b.claim("src/app.py", "refactoring the app")
    out = a.hook("pre-tool-use", env=as_admin(fleet), **edit(a.project_dir / "src" / "app.py")).json()
    reason = out["hookSpecificOutput"]["permissionDecisionReason"]
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny" and b.session in reason and NOTE in reason, out
    free = a.hook("pre-tool-use", env=as_admin(fleet), **edit(a.project_dir / "src" / "free.py"))
    assert free.out == "" and NOTE in free.err, free  # allowed, and still said where Claude Code logs it
    # the session's own token: nothing of the kind
    own = a.hook("session-start", env={"COORD_SESSION": A}, hook_event_name="SessionStart", source="startup")
    assert "admin token" not in own.context("SessionStart") and "admin token" not in own.err, own


def test_the_git_guard_says_the_admin_token_acts_as_the_admin(fleet: Fleet) -> None:
    env = {**fleet.a.env, **as_admin(fleet)}
    repo: Repo = init_repo(fleet.a.project_dir.parent / "guarded", env)
    repo.change("src/app.py", "mine\n")
    done = repo.commit("as the admin")
    assert done.code == 0 and NOTE in done.err, done
