"""The git guard when the hub refuses its session's name (403 ``session_mismatch``): refused in either fail mode,
never accepted unchecked (see tests/hooks/test_session_mismatch.py for why). Real git, a real hub."""

from __future__ import annotations

from tests.guard.conftest import B, Fleet


def test_a_commit_under_a_name_the_hub_refuses_is_refused_not_accepted_unchecked(fleet: Fleet) -> None:
    repo = fleet.repo
    fleet.claim(fleet.b, "src/app.py", "refactoring the app")
    repo.change("src/app.py", "mine\n")
    r = repo.commit("under b's lease", env={"COORD_SESSION": B})
    assert r.code != 0, r
    assert "session_mismatch" in r.err and "COORD_HOOK_FAIL_MODE=open" in r.err and "accepted unchecked" not in r.err
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": "fleet", "reason": "incident"})
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", env={"COORD_SESSION": B}, check=False)
    assert r.code != 0 and "session_mismatch" in r.err, r
