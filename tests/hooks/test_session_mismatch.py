"""The edit hook and the git guard when the hub refuses their session's name (403 ``session_mismatch``).

Since 5b0658b a session named explicitly (``COORD_SESSION``, identity.json ``session``) goes beside the token,
and the hub refuses the request when it is another session's. The hooks took that refusal for a hub that could
not be asked, which ``COORD_HOOK_FAIL_MODE=open`` (the default) lets through unchecked: a ``COORD_SESSION`` that
is not the token's (stale, or set by a repository's ``.claude/settings.json`` ``env``) let edits and commits past
other sessions' leases and through a halt, which the same configuration was refused for before (the name was
ignored and the token's session was checked). The hub is up and answered, as for a 429: refused in either mode.
Real hooks and git, a real hub.
"""

from __future__ import annotations

from tests.hooks.conftest import PROJECT, B, Fleet
from tests.hooks.test_hooks import edit


def test_an_edit_under_a_name_the_hub_refuses_is_denied_not_let_through(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    b.claim("src/app.py", "refactoring the app")
    misnamed = {"COORD_SESSION": B}  # a's token, b's name
    out = a.hook("pre-tool-use", env=misnamed, **edit(a.project_dir / "src" / "app.py")).json()["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny", out
    reason = out["permissionDecisionReason"]
    assert "session_mismatch" in reason and B in reason and "COORD_SESSION" in reason, reason
    fleet.admin_api("POST", "/halt", json={"reason": "incident", "scope": f"project:{PROJECT}"})
    out = a.hook("pre-tool-use", env=misnamed, **edit(a.project_dir / "src" / "free.py")).json()["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny", out
    # the same name as the token's is no problem
    fleet.admin_api("POST", "/resume", json={"scope": f"project:{PROJECT}", "engage_all": True})
    a.hook("pre-tool-use", env={"COORD_SESSION": a.session.lower()}, **edit(a.project_dir / "src" / "free.py")).silent()
