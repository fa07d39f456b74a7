"""``resume-stuck`` continues the same Claude session in the same worktree; files_likely are leased for real.

The lease tests run a real ``coord serve``: the worker's token is minted by
the admin as the hub does at dispatch, the worker's hooks (``coord-hook``,
through ``--settings``) ask that hub before every edit.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

from coordhub.orchestrator.worker import Context, Worker
from tests.conftest import LiveHub
from tests.orchestrator.host.conftest import Repo
from tests.orchestrator.host.fakehub import FakeHub


def test_resume_stuck_continues_the_same_session_in_the_same_worktree(run_worker: Callable[..., Worker],
                                                                      fake_hub: FakeHub, repo: Repo,
                                                                      host_env: dict[str, str]) -> None:
    first = run_worker(briefing="fake: stuck")
    stuck = fake_hub.final("a1b2c3d4")
    assert stuck["state"] == "stuck"
    sid = first.session_id
    second = run_worker(attempt=2, resume={"session_id": sid, "guidance": "The loader is config/legacy.py."},
                        worktree=stuck["worktree"])
    done = fake_hub.final("a1b2c3d4")
    assert done["state"] == "done", done
    assert done["worktree"] == stuck["worktree"] and done["telemetry"]["session_id"] == sid
    argv = json.loads((Path(host_env["CLAUDE_CONFIG_DIR"]) / "env" / f"{sid}.json").read_text())["argv"]
    assert argv[argv.index("--resume") + 1] == sid and "--session-id" not in argv
    assert argv[1].startswith("Guidance from the coordinator for assignment a1b2c3d4 (issue #7):")
    # the run's commits count from the first attempt's base: the wip of the stuck attempt and the new commit
    assert done["reason"].startswith("completed: 2 commit(s)")
    assert repo.log("issue-7-fix-it")[:2] == ["issue work (resumed, session " + sid[:8] + ")",
                                              "wip: assignment a1b2c3d4 attempt 1 (STUCK)"]
    assert second.ctx.state.get("a1b2c3d4") is None and not Path(done["worktree"]).exists()


def test_resume_without_the_worktree_fails_like_the_cli(run_worker: Callable[..., Worker], fake_hub: FakeHub,
                                                        host_env: dict[str, str], tmp_path: Path) -> None:
    """A resume from another directory finds no conversation (cc#28314): the host reports it, not a traceback."""
    first = run_worker(briefing="fake: stuck")
    fake_hub.final("a1b2c3d4")
    first.ctx.state.drop("a1b2c3d4")  # the host lost its record...
    shutil.rmtree(Path(host_env["CLAUDE_CONFIG_DIR"]) / "projects")  # ...and the transcript is gone
    run_worker(attempt=2, resume={"session_id": first.session_id, "guidance": "go on"})
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed"
    assert final["reason"] == (f"no_result: claude exited 1 without a result: No conversation found with session "
                               f"ID: {first.session_id}")


def test_files_likely_are_leased_as_the_worker_and_released(make_ctx: Callable[..., Context],
                                                            run_worker: Callable[..., Worker], fake_hub: FakeHub,
                                                            live_hub: LiveHub) -> None:
    token = live_hub.token("m1/worker-a1b2c3d4")
    ctx = make_ctx(url=live_hub.url)
    w = run_worker(ctx, wait=False, worker_token=token, files_likely=["src/parser.py", "docs/"],
                   briefing="fake: slow work=1.5 beat=0.2")
    admin = {"Authorization": f"Bearer {live_hub.admin_token}"}
    deadline = time.time() + 20
    while not w.leases.ids and time.time() < deadline:
        time.sleep(0.05)
    held = httpx2.get(live_hub.url + "/api/coord/locks", params={"project_key": "app"}, headers=admin).json()
    assert sorted((x["resource"], x["session_id"]) for x in held) == [("docs/", "m1/worker-a1b2c3d4"),
                                                                     ("src/parser.py", "m1/worker-a1b2c3d4")]
    assert w.finished.wait(60)
    assert fake_hub.final("a1b2c3d4")["state"] == "done"
    assert httpx2.get(live_hub.url + "/api/coord/locks", params={"project_key": "app"}, headers=admin).json() == []


def test_a_file_leased_by_another_session_fails_with_files_busy(make_ctx: Callable[..., Context],
                                                                run_worker: Callable[..., Worker],
                                                                fake_hub: FakeHub, live_hub: LiveHub,
                                                                tmp_path: Path) -> None:
    other = live_hub.token("m2/worker-99999999")
    r = httpx2.post(live_hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {other}"},
                    json={"project_key": "app", "resource": "src/", "description": "refactor"})
    assert r.status_code == 201, r.text
    token = live_hub.token("m1/worker-a1b2c3d4")
    run_worker(make_ctx(url=live_hub.url), worker_token=token, files_likely=["docs/a.md", "src/parser.py"])
    final = fake_hub.final("a1b2c3d4")
    assert (final["state"], final["reason"]) == ("failed", "files_busy: src/parser.py held by m2/worker-99999999")
    admin = {"Authorization": f"Bearer {live_hub.admin_token}"}
    mine = httpx2.get(live_hub.url + "/api/coord/locks", params={"project_key": "app"}, headers=admin).json()
    assert [x["session_id"] for x in mine] == ["m2/worker-99999999"]  # docs/a.md was given back
    assert not (tmp_path / "host" / "worktrees" / "a1b2c3d4").exists()  # claude never ran, no worktree left


def test_an_edit_of_a_file_leased_by_another_session_is_denied_by_the_hook(make_ctx: Callable[..., Context],
                                                                           run_worker: Callable[..., Worker],
                                                                           fake_hub: FakeHub,
                                                                           live_hub: LiveHub) -> None:
    other = live_hub.token("m2/worker-99999999")
    r = httpx2.post(live_hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {other}"},
                    json={"project_key": "app", "resource": "fake/", "description": "someone else's"})
    assert r.status_code == 201, r.text
    token = live_hub.token("m1/worker-a1b2c3d4")
    w = run_worker(make_ctx(url=live_hub.url), worker_token=token, briefing="fake: denied file=fake/locked.txt")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "stuck" and final["reason"].startswith("permission_denied: Write ")
    assert not (Path(final["worktree"]) / "fake" / "locked.txt").exists()
    assert "leased by m2/worker-99999999" in fake_hub.assignments["a1b2c3d4"].log  # the hook's reason, relayed
    assert w.telemetry.permission_denials[0]["tool_name"] == "Write"
