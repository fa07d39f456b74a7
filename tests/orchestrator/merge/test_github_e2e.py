"""GitHub end to end with the fake ``gh`` (backed by the same bare origin): the merge queue opens the PR, waits
for its CI checks (pending, then passed), lands it with ``gh pr merge --match-head-commit``; the audit trail posts
the briefing, completion and merged comments on the issue exactly once each (markers), and closes it. The host
with capability ``github`` does all of it; the worker's environment has no GitHub state."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.fakes.ghstore import FakeGitHub
from tests.orchestrator.host.conftest import run
from tests.orchestrator.merge.conftest import API, MergeFleet


def _trail(mfleet: MergeFleet, aid: str) -> list[dict[str, Any]]:
    r = httpx2.get(mfleet.hub.url + f"{API}/assignments/{aid}/trail", headers=mfleet.admin)
    assert r.status_code == 200, r.text
    return list(r.json()["posts"])


def test_pr_checks_merge_and_comments_exactly_once(mfleet: MergeFleet, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", mfleet.repo.origin, checks=[{"name": "ci", "conclusion": "success", "polls": 2}])
    issue = fake.add_issue("acme/app", "Add the widget", number=30)
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(fake.root))
    mfleet.set_merge(github="acme/app", capabilities=["github"], close_issues=True)
    mfleet.start("m1")
    (aid,) = mfleet.done([issue], lambda n: "fake: success file=widget.txt")
    (entry,) = mfleet.enter([aid])["entered"]
    e = mfleet.wait_entry(entry, ("merged", "needs_input"), timeout=120)
    assert e["state"] == "merged", e
    assert e["pr_number"] == 31 and e["pr_url"] == "https://github.com/acme/app/pull/31"
    pr = fake.item("acme/app", 31)
    assert pr["state"] == "MERGED" and pr["mergeCommit"] == e["merged_sha"]
    assert run(mfleet.repo.origin, "git", "rev-parse", "main") == e["merged_sha"]
    checks = [c for c in fake.calls() if c[:2] == ["pr", "checks"]]
    assert len(checks) >= 2  # polled while pending
    merge_calls = [c for c in fake.calls() if c[:2] == ["pr", "merge"]]
    assert len(merge_calls) == 1 and "--match-head-commit" in merge_calls[0] and "--rebase" in merge_calls[0]
    deadline = time.time() + 60
    while not (len(_trail(mfleet, aid)) >= 4 and all(p["state"] == "posted" for p in _trail(mfleet, aid))):
        assert time.time() < deadline, _trail(mfleet, aid)
        time.sleep(0.2)
    posts = _trail(mfleet, aid)
    assert sorted(p["event"] for p in posts) == ["briefing", "closed", "completion", "merged"]
    for _ in range(3):  # a forced pass changes nothing: every event already has its post
        r = httpx2.post(mfleet.hub.url + f"{API}/notify", headers=mfleet.admin)
        assert r.status_code == 200 and r.json()["made"] == 0
    comments = fake.item("acme/app", issue)["comments"]
    keys = [p["key"] for p in posts if p["kind"] == "comment"]
    for key in keys:
        assert sum(f"<!-- coord:post key={key} -->" in c["body"] for c in comments) == 1
    assert len(comments) == 3 and fake.item("acme/app", issue)["state"] == "CLOSED"
    assert all(p["url"].startswith(f"https://github.com/acme/app/issues/{issue}#issuecomment-")
               for p in posts if p["kind"] == "comment")
    # the worker never saw GitHub state: its environment had neither the fake's store nor gh's config
    envs = [r["env"] for r in mfleet.runs()]
    assert envs and not any("FAKE_GH_STATE" in env or "GH_TOKEN" in env for env in envs)


def test_a_batch_on_github_gates_once_then_lands_each_pr_pinned_in_order(mfleet: MergeFleet, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", mfleet.repo.origin, checks=[{"name": "ci", "conclusion": "success", "polls": 1}])
    issues = [fake.add_issue("acme/app", f"Part {n}", number=40 + n) for n in range(3)]
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(fake.root))
    gate = tmp_path / "gate.log"
    mfleet.set_merge(github="acme/app", capabilities=["github"], batch=3, close_issues=False,
                     gate_command=f"ls b*.txt >> {gate}; echo >> {gate}")
    mfleet.start("m1")
    ids = mfleet.done(issues, lambda n: f"fake: success file=b{n}.txt")
    before = len(mfleet.main_subjects())
    entries = mfleet.enter(ids)["entered"]  # one transaction: the first run takes the three
    finals = [mfleet.wait_entry(e, ("merged", "needs_input"), timeout=180) for e in entries]
    assert [e["state"] for e in finals] == ["merged"] * 3, finals
    # one gate, at the tip of all three stacked
    assert gate.read_text().split() == ["b40.txt", "b41.txt", "b42.txt"]
    merges = [c for c in fake.calls() if c[:2] == ["pr", "merge"]]
    assert len(merges) == 3 and all("--match-head-commit" in c for c in merges)
    assert [int(c[2]) for c in merges] == [e["pr_number"] for e in finals]  # in queue order
    for e in finals:
        assert fake.item("acme/app", e["pr_number"])["state"] == "MERGED"
    assert len(mfleet.main_subjects()) == before + 3
    assert [f for f in mfleet.main_files() if f.startswith("b")] == ["b40.txt", "b41.txt", "b42.txt"]
    assert finals[-1]["merged_sha"] == run(mfleet.repo.origin, "git", "rev-parse", "main")
    assert len({e["batch_id"] for e in finals}) == 1


def test_a_github_batch_whose_target_moves_between_prs_is_gated_again(mfleet: MergeFleet, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", mfleet.repo.origin, checks=[{"name": "ci", "conclusion": "success", "polls": 1}])
    issues = [fake.add_issue("acme/app", f"Part {n}", number=50 + n) for n in range(3)]
    # someone else lands a commit on main right after the first PR of the batch merged
    other = tmp_path / "other"
    run(tmp_path, "git", "clone", "-q", str(mfleet.repo.origin), str(other))
    run(other, "git", "config", "user.email", "other@example.com")
    run(other, "git", "config", "user.name", "other")
    mark = tmp_path / "moved"
    wrap = tmp_path / "ghwrap"
    wrap.mkdir()
    (wrap / "gh").write_text(f'#!/bin/sh\n"{fake.bin}/gh" "$@"\nrc=$?\n'
                             f'if [ "$1 $2" = "pr merge" ] && [ $rc -eq 0 ] && [ ! -e "{mark}" ]; then\n'
                             f'  touch "{mark}"; cd "{other}" && git pull -q origin main && echo x > intruder.txt && '
                             f'git add intruder.txt && git commit -qm intruder && git push -q origin HEAD:main\n'
                             f'fi\nexit $rc\n')
    (wrap / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrap}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(fake.root))
    gate = tmp_path / "gate.log"
    mfleet.set_merge(github="acme/app", capabilities=["github"], batch=3, close_issues=False,
                     gate_command=f"echo $(ls b*.txt intruder.txt 2>/dev/null) >> {gate}")
    mfleet.start("m1")
    ids = mfleet.done(issues, lambda n: f"fake: success file=b{n}.txt")
    entries = mfleet.enter(ids)["entered"]
    finals = [mfleet.wait_entry(e, ("merged", "needs_input"), timeout=180) for e in entries]
    assert [e["state"] for e in finals] == ["merged"] * 3, [(e["state"], e["reason"]) for e in finals]
    # the first gate saw the three; the code of the second PR then differed from what it passed (main moved), so
    # the rest of the batch went back to the queue and was gated again with the intruder's commit in it
    assert gate.read_text().splitlines() == ["b50.txt b51.txt b52.txt", "b50.txt b51.txt b52.txt intruder.txt"]
    assert len([c for c in fake.calls() if c[:2] == ["pr", "merge"]]) == 3
    files = mfleet.main_files()
    assert [f for f in files if f.startswith(("b", "intruder"))] == ["b50.txt", "intruder.txt", "b51.txt", "b52.txt"]
