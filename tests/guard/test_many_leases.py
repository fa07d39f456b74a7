"""The git guard in a project holding more live leases than it reads (``run.MAX_LIVE``): it refuses in either fail
mode, naming the bound (review: past 20,000 live leases — 21 sessions of 1,000 — ``COORD_HOOK_FAIL_MODE=open``
accepted every commit unchecked, one touching a file another session leased among them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from coordhub.core import leases
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.guard.run import MAX_LIVE
from coordhub.store import open_store
from coordhub.store.tx import Tx
from tests.conftest import LiveHub
from tests.coordcli import isolated_env
from tests.guard.conftest import PROJECT, A, Repo, auth, init_repo

HOLDERS = 25  # sessions the leases are spread over: 841 each, under the 1,000 one session may hold
LEASED = "lib/pkg0/file0.py"  # the first lease: the file A commits


def _file(i: int) -> str:
    return f"lib/pkg{i % 100}/file{i}.py"


def fill(data_dir: Path, n: int) -> None:
    """Grant ``n`` file leases in PROJECT through the core's own claim, in large units of work (as the
    ``lease-scale`` bench fills a hub): a minute of HTTP claims in a few seconds, indexed as a live claim is."""
    data_dir.mkdir(parents=True)
    store = open_store(f"sqlite:///{data_dir / 'coord.db'}")
    store.open()
    step = 2000

    def chunk(first: int) -> Callable[[Tx, float], None]:
        def op(tx: Tx, now: float) -> None:
            for k in range(first, min(first + step, n)):
                leases.claim(tx, Actor(f"FLEET/holder{k % HOLDERS:02d}"), project_key=PROJECT, resource=_file(k),
                             description="held", ttl_hours=0, now=now)
        return op

    try:
        for first in range(0, n, step):
            Hub(store).mutate_sync(Actor("FLEET/filler", is_admin=True), chunk(first))
    finally:
        store.close()


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveHub, Path]]:
    """A hub whose project holds MAX_LIVE + 1 live leases of other sessions (filled once for the module)."""
    root = tmp_path_factory.mktemp("crowded")
    fill(root / "hub", MAX_LIVE + 1)
    hub = LiveHub(root / "hub").start()
    try:
        yield hub, root
    finally:
        hub.stop()


def repo_of_a(hub: LiveHub, root: Path, name: str) -> Repo:
    env = isolated_env(root / name / "a", COORD_URL=hub.url, COORD_TOKEN=hub.token(A))
    for var in ("CLAUDE_PROJECT_DIR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)
    return init_repo(root / name / "work" / PROJECT, env)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_past_the_leases_the_guard_reads_a_commit_is_refused_in_either_fail_mode(
        crowded: tuple[LiveHub, Path], mode: str) -> None:
    hub, root = crowded
    repo = repo_of_a(hub, root, mode)
    held = httpx2.get(hub.url + "/api/coord/locks", params={"project_key": PROJECT, "resource": LEASED},
                      headers=auth(hub.admin_token), timeout=10).json()
    assert [x["session_id"] for x in held] == ["FLEET/holder00"], held  # on the first page the guard reads
    repo.change(LEASED)
    before = repo.head()
    r = repo.commit(env={"COORD_HOOK_FAIL_MODE": mode})
    assert r.code == 1 and repo.head() == before, r
    assert (f"commit refused: project {PROJECT} holds more than {MAX_LIVE} live leases, the most the guard reads, "
            "so the paths could not be checked against leases. The hub is up") in r.err, r.err
    assert "coord lock release" in r.err and "COORD_GUARD_BYPASS=1" in r.err, r.err
    assert "accepted unchecked" not in r.err, r.err


def test_past_the_leases_the_guard_reads_a_bypass_says_why_it_was_unchecked(crowded: tuple[LiveHub, Path]) -> None:
    hub, root = crowded
    repo = repo_of_a(hub, root, "bypass")
    repo.change("lib/new.py")
    before = repo.head()
    r = repo.commit(env={"COORD_GUARD_BYPASS": "1", "COORD_GUARD_BYPASS_REASON": "crowded"})
    assert r.code == 0 and repo.head() != before, r
    assert f"accepted unchecked (project {PROJECT} holds more than {MAX_LIVE} live leases" in r.err, r.err
    assert "bypass recorded on the hub" in r.err, r.err
