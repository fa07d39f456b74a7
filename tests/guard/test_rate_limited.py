"""The git guard on a hub that answers 429: it waits the Retry-After within its budget, then refuses in either fail
mode (review: a rate-limited check counted as "hub unreachable", so ``COORD_HOOK_FAIL_MODE=open`` accepted a
commit touching a file another session leased)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.coordcli import isolated_env
from tests.guard.conftest import PROJECT, A, B, Repo, auth, init_repo


def setup(tmp_path: Path, rate: str) -> tuple[LiveHub, Repo, dict[str, str]]:
    """A hub allowing each token ``rate`` requests a second after a burst of 10, A's guarded repository with
    ``lib/old.py`` changed and staged, and B's lease on it; A's token is spent to its first 429."""
    hub = LiveHub(tmp_path / "hub", args=("--rate-limit", rate, "--rate-burst", "10")).start()
    token_a = hub.token(A)
    env = isolated_env(tmp_path / "a", COORD_URL=hub.url, COORD_TOKEN=token_a)
    for name in ("CLAUDE_PROJECT_DIR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    repo = init_repo(tmp_path / "work" / PROJECT, env)
    r = httpx2.post(hub.url + "/api/coord/locks", headers=auth(hub.token(B)), json={
        "project_key": PROJECT, "resource": "lib/old.py", "description": "hands off", "ttl_hours": 1})
    assert r.status_code == 201, r.text
    repo.change("lib/old.py")
    spend(hub, token_a)
    return hub, repo, {**r.json(), "token_a": token_a}


def spend(hub: LiveHub, token: str) -> None:
    """Spend ``token`` to its first 429."""
    with httpx2.Client(base_url=hub.url, headers=auth(token), timeout=10) as c:
        codes = [c.get("/api/coord/whoami").status_code for _ in range(40)]
    assert 429 in codes, codes


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_rate_limited_check_refuses_the_commit_in_either_fail_mode(tmp_path: Path, mode: str) -> None:
    hub, repo, _ = setup(tmp_path, "0.05")  # a Retry-After of up to 20 s: past the guard's budget
    try:
        before = repo.head()
        r = repo.commit(env={"COORD_HOOK_FAIL_MODE": mode})
        assert r.code == 1 and repo.head() == before, r
        assert "commit refused: the hub is rate-limiting this session's token (429 rate_limited" in r.err, r.err
        assert "Retry-After" in r.err and "accepted unchecked" not in r.err and "asking again" not in r.err, r.err
    finally:
        hub.stop()


def test_a_rate_limited_check_waits_the_retry_after_and_asks_again(tmp_path: Path) -> None:
    hub, repo, lease = setup(tmp_path, "1")  # a Retry-After of 1 s per request: within the guard's budget
    try:
        for _ in range(3):  # a guard that started after the bucket refilled (a loaded machine) met no 429: again
            r = repo.commit()
            assert r.code == 1, r
            assert f"lib/old.py: leased by {B}" in r.err and lease["id"] in r.err, r.err
            if "asking again" in r.err:
                break
            spend(hub, lease["token_a"])
        assert "the hub is rate-limiting this session" in r.err and "asking again in 1 s" in r.err, r.err
    finally:
        hub.stop()
