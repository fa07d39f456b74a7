"""The fake ``gh`` answers and refuses as the real CLI does (research orchestrator.md §6): a fake that accepts
anything tests nothing (STYLE 18). These pin what the orchestrator relies on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.ghstore import FakeGitHub
from tests.orchestrator.host.conftest import Repo, make_repo, run


@pytest.fixture
def gh(tmp_path: Path) -> Any:
    repo = make_repo(tmp_path, "app")
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", repo.origin, labels={"documentation": "docs"},
                    checks=[{"name": "ci", "conclusion": "success", "polls": 2}])
    env = {**os.environ, **fake.env, "PATH": f"{fake.bin}{os.pathsep}{os.environ['PATH']}"}

    def call(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gh", *args], cwd=cwd or tmp_path, env=env, capture_output=True, text=True, timeout=60)
    call.fake = fake  # type: ignore[attr-defined]
    call.repo = repo  # type: ignore[attr-defined]
    return call


def push_branch(repo: Repo, branch: str, file: str, text: str, base: str = "main") -> str:
    run(repo.path, "git", "checkout", "-q", "-B", branch, f"origin/{base}" if base != "main" else "main")
    (repo.path / file).write_text(text)
    run(repo.path, "git", "add", file)
    run(repo.path, "git", "commit", "-q", "-m", f"change {file} on {branch}")
    run(repo.path, "git", "push", "-q", "-f", "origin", branch)
    run(repo.path, "git", "checkout", "-q", "main")
    return run(repo.path, "git", "rev-parse", branch)


def test_json_fields_filtered_sorted_compact_and_unknown_field(gh: Any) -> None:
    n = gh.fake.add_issue("acme/app", "Fix the docs", "body text", labels=["documentation"])
    p = gh("issue", "view", str(n), "-R", "acme/app", "--json", "title,number,labels")
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert "\n" not in line and line.startswith('{"labels":[{"color"')
    data = json.loads(line)
    assert list(data) == ["labels", "number", "title"]
    assert data["labels"][0]["name"] == "documentation" and data["number"] == n
    p = gh("issue", "view", str(n), "-R", "acme/app", "--json", "title,nope")
    assert p.returncode == 1 and p.stderr.startswith('Unknown JSON field: "nope"\nAvailable fields:\n  assignees')
    p = gh("issue", "list", "-R", "acme/app", "--json", "number", "--jq", ".[].number")
    assert p.stdout.split() == [str(n)]


def test_missing_issue_auth_and_exit_codes(gh: Any) -> None:
    p = gh("issue", "view", "99", "-R", "acme/app", "--json", "title")
    assert p.returncode == 1
    assert p.stderr.strip() == ("GraphQL: Could not resolve to an issue or pull request with the number of 99. "
                                "(repository.issue)")
    gh.fake.set_auth(False)
    p = gh("issue", "list", "-R", "acme/app", "--json", "number")
    assert p.returncode == 4 and "gh auth login" in p.stderr and p.stdout == ""


def test_comment_prints_its_url_once_per_call(gh: Any) -> None:
    n = gh.fake.add_issue("acme/app", "A bug")
    p = gh("issue", "comment", str(n), "-R", "acme/app", "-b", "hello <!-- coord:x -->")
    assert p.returncode == 0 and p.stdout.startswith(f"https://github.com/acme/app/issues/{n}#issuecomment-")
    comments = json.loads(gh("issue", "view", str(n), "-R", "acme/app", "--json", "comments").stdout)["comments"]
    assert [c["body"] for c in comments] == ["hello <!-- coord:x -->"]
    assert gh("issue", "comment", str(n), "-R", "acme/app", "-b", " ").returncode == 1


def test_pr_create_view_polls_mergeable_and_checks_then_merges_silently(gh: Any) -> None:
    repo = gh.repo
    head = push_branch(repo, "issue-1-x", "x.txt", "x\n")
    p = gh("pr", "create", "-R", "acme/app", "-B", "main", "-H", "issue-1-x", "-t", "Add x", "-b", "Closes #1")
    assert p.returncode == 0 and p.stdout.strip() == "https://github.com/acme/app/pull/1" and p.stderr == ""
    again = gh("pr", "create", "-R", "acme/app", "-B", "main", "-H", "issue-1-x", "-t", "Add x", "-b", "b")
    assert again.returncode == 1 and again.stderr.startswith(
        'a pull request for branch "issue-1-x" into branch "main" already exists:\nhttps://github.com/acme/app/pull/1')
    views = [json.loads(gh("pr", "view", "1", "-R", "acme/app", "--json", "mergeable,headRefOid").stdout)
             for _ in range(2)]
    assert [v["mergeable"] for v in views] == ["UNKNOWN", "MERGEABLE"] and views[0]["headRefOid"] == head
    codes = [gh("pr", "checks", "1", "-R", "acme/app", "--json", "name,bucket").returncode for _ in range(3)]
    assert codes == [8, 0, 0]
    m = gh("pr", "merge", "1", "-R", "acme/app", "-r", "--match-head-commit", head)
    assert (m.returncode, m.stdout, m.stderr) == (0, "", "")
    v = json.loads(gh("pr", "view", "1", "-R", "acme/app", "--json", "state,mergeCommit").stdout)
    assert v["state"] == "MERGED"
    assert run(repo.origin, "git", "rev-parse", "main") == v["mergeCommit"]["oid"]
    assert run(repo.origin, "git", "show", "-s", "--format=%s", "main") == "change x.txt on issue-1-x"
    m = gh("pr", "merge", "1", "-R", "acme/app", "-r")
    assert m.returncode == 1 and "was already merged" in m.stderr


def test_conflicts_wrong_head_and_policy_refuse_the_merge(gh: Any) -> None:
    repo = gh.repo
    push_branch(repo, "a", "same.txt", "one\n")
    push_branch(repo, "b", "same.txt", "two\n")
    for head in ("a", "b"):
        assert gh("pr", "create", "-R", "acme/app", "-H", head, "-t", head, "-b", "").returncode == 0
    assert gh("pr", "merge", "1", "-R", "acme/app", "--squash").returncode == 0
    views = [json.loads(gh("pr", "view", "2", "-R", "acme/app", "--json", "mergeable").stdout)["mergeable"]
             for _ in range(2)]
    assert views == ["UNKNOWN", "CONFLICTING"]
    m = gh("pr", "merge", "2", "-R", "acme/app", "--squash")
    assert m.returncode == 1 and m.stderr.strip() == ("X Pull request acme/app#2 is not mergeable: the merge commit "
                                                      "cannot be cleanly created.")
    push_branch(repo, "c", "c.txt", "c\n")
    assert gh("pr", "create", "-R", "acme/app", "-H", "c", "-t", "c", "-b", "").returncode == 0
    m = gh("pr", "merge", "3", "-R", "acme/app", "-m", "--match-head-commit", "0" * 40)
    assert m.returncode == 1 and "Head branch was modified" in m.stderr
    gh.fake.setup_repo("acme/prot", repo.origin, protection={"main": {"required_reviews": 1}})
    assert gh("pr", "create", "-R", "acme/prot", "-H", "c", "-t", "c", "-b", "").returncode == 0
    m = gh("pr", "merge", "1", "-R", "acme/prot", "-m")
    assert m.returncode == 1 and "the base branch policy prohibits the merge" in m.stderr
    r = gh("pr", "review", "1", "-R", "acme/prot", "--approve")
    assert (r.returncode, r.stdout) == (0, "")
    assert gh("pr", "merge", "1", "-R", "acme/prot", "-m").returncode == 0
    assert json.loads(gh("pr", "view", "1", "-R", "acme/prot", "--json", "reviewDecision").stdout) == {
        "reviewDecision": "APPROVED"}


def test_merge_needs_exactly_one_method_and_a_failing_check_exits_1(gh: Any) -> None:
    push_branch(gh.repo, "d", "d.txt", "d\n")
    gh.fake.setup_repo("acme/red", gh.repo.origin, checks=[{"name": "ci", "conclusion": "failure", "polls": 2}])
    assert gh("pr", "create", "-R", "acme/red", "-H", "d", "-t", "d", "-b", "").returncode == 0
    m = gh("pr", "merge", "1", "-R", "acme/red")
    assert m.returncode == 1 and "--merge, --rebase, or --squash required" in m.stderr
    assert gh("pr", "checks", "1", "-R", "acme/red").returncode == 8
    c = gh("pr", "checks", "1", "-R", "acme/red", "--json", "name,state,bucket")
    assert c.returncode == 1 and json.loads(c.stdout) == [{"bucket": "fail", "name": "ci", "state": "FAILURE"}]


def test_issue_create_needs_title_and_body_and_prints_the_url(gh: Any) -> None:
    """What ``coord split`` relies on: non-interactive ``gh issue create`` needs both --title and --body (an empty
    body is fine), reads ``--body-file -`` from stdin, and prints only the new issue's URL."""
    p = gh("issue", "create", "-R", "acme/app", "--title", "Part A")
    assert p.returncode == 1 and "must provide `--title` and `--body`" in p.stderr and p.stdout == ""
    p = subprocess.run(["gh", "issue", "create", "-R", "acme/app", "--title", "Part A", "--body-file", "-",
                        "--label", "documentation"], input="the body\n", capture_output=True, text=True, timeout=60,
                       env={**os.environ, **gh.fake.env, "PATH": f"{gh.fake.bin}{os.pathsep}{os.environ['PATH']}"})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "https://github.com/acme/app/issues/1\n"
    item = gh.fake.item("acme/app", 1)
    assert (item["title"], item["body"], item["labels"]) == ("Part A", "the body\n", ["documentation"])
    p = gh("issue", "create", "-R", "acme/app", "--title", "Part C", "--body", "x", "--label", "nope")
    assert p.returncode == 1 and p.stderr.strip() == "could not add label: 'nope' not found"
    p = gh("issue", "create", "-R", "acme/app", "--title", "Part B", "--body", "")
    assert p.returncode == 0 and p.stdout.strip().endswith("/issues/2")  # the refused one took no number


def test_a_pr_with_no_checks_has_empty_checks_not_an_error(tmp_path: Path) -> None:
    """``gh pr checks`` on a PR with no CI exits 1 with "no checks reported" on stderr and nothing on stdout: the
    queue must read that as no checks (exit 1 is accepted there because it also means a failed check)."""
    from coordhub.orchestrator.github import GitHub

    repo = make_repo(tmp_path, "app")
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", repo.origin)
    run(repo.path, "git", "checkout", "-q", "-b", "issue-7")
    (repo.path / "y.txt").write_text("y\n")
    run(repo.path, "git", "add", "y.txt")
    run(repo.path, "git", "commit", "-q", "-m", "y")
    run(repo.path, "git", "push", "-q", "origin", "issue-7")
    env = {**os.environ, **fake.env, "PATH": f"{fake.bin}{os.pathsep}{os.environ['PATH']}"}
    gh = GitHub("acme/app", binary=str(fake.bin / "gh"), env=env)
    url = gh.pr_create("issue-7", "main", "Y", "Closes nothing")
    number = int(url.rstrip("/").rsplit("/", 1)[1])
    checks = gh.checks(number)
    assert checks.rows == [] and not checks.pending and checks.failed == []
