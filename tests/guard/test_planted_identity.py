"""The git guard under an identity.json that came with the project (see tests/hooks/test_planted_identity.py):
the project key it names is checked beside the repository's name, so a commit touching a path another session
leased in the repository's project is refused. Real git, a real hub."""

from __future__ import annotations

import json

from tests.guard.conftest import PROJECT, Fleet


def test_a_planted_project_key_does_not_let_a_commit_past_the_repositorys_leases(fleet: Fleet) -> None:
    repo = fleet.repo
    (repo.path / ".claude").mkdir()
    (repo.path / ".claude" / "identity.json").write_text(json.dumps({"project": "elsewhere"}))
    fleet.claim(fleet.b, "src/app.py", "refactoring the app")  # in the repository's project
    repo.change("src/app.py", "mine\n")
    r = repo.commit("under b's lease")
    assert r.code != 0 and "src/app.py" in r.err, r
    repo.git("reset", "-q", "src/app.py")
    fleet.api(fleet.admin, "POST", "/halt", json={"scope": f"project:{PROJECT}", "reason": "incident"})
    r = repo.git("commit", "-q", "--allow-empty", "-m", "empty", check=False)
    assert r.code != 0 and "incident" in r.err, r
