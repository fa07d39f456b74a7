"""The git guard in a project holding more live leases of other sessions than it ever read: it asks only about
the changed paths (``POST /locks/conflicts``), so a clean commit passes and a conflicting lease among the many is
still found (review: it listed every live lease of the project, refused every commit past 20,000 — 21 sessions of
1,000 — in either fail mode, and before that accepted them all unchecked under ``COORD_HOOK_FAIL_MODE=open``).
Also the one bound left: the committer's own live leases in the project (``run.MAX_OWN``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from coordhub.core import leases
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.guard import run
from coordhub.store import open_store
from coordhub.store.tx import Tx
from tests.conftest import LiveHub
from tests.coordcli import isolated_env
from tests.guard.conftest import PROJECT, A, Fleet, Repo, auth, init_repo

OLD_BOUND = 20_000  # the live leases of a project the guard read before it refused every commit
CROWD = OLD_BOUND + 1
HOLDERS = 25  # sessions the leases are spread over: 801 each, under the 1,000 one session may hold
LEASED = "lib/pkg0/file0.py"  # the first lease
BATCH = 100  # paths the guard names per POST /locks/conflicts (check.BATCH)
LAST = f"lib/pkg{(CROWD - 1) % 100}/file{CROWD - 1}.py"  # the last lease granted, far past any first page


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
    """A hub whose project holds CROWD live leases of other sessions (filled once for the module)."""
    root = tmp_path_factory.mktemp("crowded")
    fill(root / "hub", CROWD)
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


def _holder(path: str, hub: LiveHub) -> list[str]:
    held = httpx2.get(hub.url + "/api/coord/locks", params={"project_key": PROJECT, "resource": path},
                      headers=auth(hub.admin_token), timeout=10).json()
    return [x["session_id"] for x in held]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_clean_commit_passes_whatever_other_sessions_hold_elsewhere(crowded: tuple[LiveHub, Path],
                                                                       mode: str) -> None:
    hub, root = crowded
    repo = repo_of_a(hub, root, f"clean-{mode}")
    for i in range(2 * BATCH + 5):  # three requests' worth of paths, none leased
        repo.change(f"lib/pkg{i % 100}/new{i}.py")
    before = repo.head()
    r = repo.commit(env={"COORD_HOOK_FAIL_MODE": mode})
    assert r.code == 0 and repo.head() != before, r
    assert "refused" not in r.err and "unchecked" not in r.err, r.err


@pytest.mark.parametrize("leased", [LEASED, LAST])
def test_a_conflicting_lease_among_many_is_found(crowded: tuple[LiveHub, Path], leased: str) -> None:
    hub, root = crowded
    holder = _holder(leased, hub)
    assert len(holder) == 1, holder
    repo = repo_of_a(hub, root, "conflict-" + leased.rsplit("/", 1)[1].removesuffix(".py"))
    for i in range(2 * BATCH + 5):  # the leased file comes last: in the third request
        repo.change(f"lib/pkg{i % 100}/new{i}.py")
    repo.change(leased)
    before = repo.head()
    r = repo.commit(env={"COORD_HOOK_FAIL_MODE": "open"})
    assert r.code == 1 and repo.head() == before, r
    assert f"{leased}: leased by {holder[0]}" in r.err, r.err
    assert "new0.py" not in r.err and "live leases" not in r.err, r.err


def test_a_bypass_in_a_crowded_project_is_checked(crowded: tuple[LiveHub, Path]) -> None:
    hub, root = crowded
    repo = repo_of_a(hub, root, "bypass")
    repo.change(LEASED)
    before = repo.head()
    r = repo.commit(env={"COORD_GUARD_BYPASS": "1", "COORD_GUARD_BYPASS_REASON": "crowded"})
    assert r.code == 0 and repo.head() != before, r
    assert "accepted despite 1 problem(s)" in r.err and f"{LEASED}: leased by FLEET/holder00" in r.err, r.err
    assert "bypass recorded on the hub" in r.err, r.err


def _guard_in_process(repo: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                      mode: str) -> tuple[int, str]:
    """``run.main`` for pre-commit in ``repo``, in this process (so that a bound can be patched)."""
    for name, value in {**repo.env, "COORD_HOOK_FAIL_MODE": mode}.items():
        monkeypatch.setenv(name, value)
    for name in ("CLAUDE_PROJECT_DIR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(repo.path)
    capsys.readouterr()
    code = run.main("git-pre-commit", [])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_past_the_own_leases_the_guard_reads_a_commit_is_refused_in_either_fail_mode(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], mode: str) -> None:
    # The hub lets a session hold 1,000 live leases, the guard's bound; a smaller bound stands for a hub that
    # lets a session hold more. Other sessions' leases never count against it.
    monkeypatch.setattr(run, "MAX_OWN", 3)
    for i in range(4):
        fleet.claim(fleet.b, f"theirs/f{i}.py", "theirs")
    for i in range(3):
        fleet.claim(fleet.a, f"mine/f{i}.py", "mine")
    fleet.repo.change("lib/free.py")
    assert _guard_in_process(fleet.repo, monkeypatch, capsys, mode) == (0, "")
    fleet.claim(fleet.a, "mine/f3.py", "mine")
    code, err = _guard_in_process(fleet.repo, monkeypatch, capsys, mode)
    assert code == 1, err
    assert (f"commit refused: session {A} holds more than 3 live leases in project {PROJECT}, the most the guard "
            "reads, so the paths could not be checked against leases. The hub is up") in err, err
    assert "coord lock release" in err and "COORD_GUARD_BYPASS=1" in err and "accepted unchecked" not in err, err
