"""The host's poster makes each audit-trail post once, even when the hub offers it again (its report was lost):
it finds its own marker among the issue's comments, and a PR by its head and base. Against the fake ``gh``."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from coordhub.orchestrator.ghposter import GitHubPoster
from tests.fakes.ghstore import FakeGitHub
from tests.orchestrator.host.conftest import Repo, make_repo, push_file


class Recorder:
    """Stands in for the hub link: records the reports (the hub side is tested over HTTP elsewhere)."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def github_report(self, incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        self.reports.append(body)
        return body


def _on_github(tmp_path: Path) -> tuple[Repo, FakeGitHub, int, dict[str, str]]:
    """A repository on the fake GitHub (``acme/app``) with one issue, and the environment that runs the fake ``gh``
    on it."""
    repo = make_repo(tmp_path, "app")
    fake = FakeGitHub(tmp_path)
    fake.setup_repo("acme/app", repo.origin)
    issue = fake.add_issue("acme/app", "A bug")
    return repo, fake, issue, {**os.environ, **fake.env, "PATH": f"{fake.bin}{os.pathsep}{os.environ['PATH']}"}


def _posting(tmp_path: Path) -> tuple[Repo, FakeGitHub, int, Recorder, GitHubPoster]:
    """:func:`_on_github`'s repository and issue, and a poster recording its reports."""
    repo, fake, issue, env = _on_github(tmp_path)
    link = Recorder()
    return repo, fake, issue, link, GitHubPoster(link, env, threading.Event(), lambda: 1,  # type: ignore[arg-type]
                                                 lambda: True)


def test_a_post_offered_twice_is_made_once(tmp_path: Path) -> None:
    repo, fake, issue, link, poster = _posting(tmp_path)
    post = {"key": "a1b2c3d4:1:completion", "github": "acme/app", "issue": issue, "kind": "comment",
            "body": "**coordhub**: done\n\n<!-- coord:post key=a1b2c3d4:1:completion -->"}
    poster.make(post, 1)
    poster.make(post, 1)  # the first report was lost: the hub offers it again
    comments = fake.item("acme/app", issue)["comments"]
    assert len(comments) == 1
    assert [r["ok"] for r in link.reports] == [True, True] and link.reports[0]["url"] == link.reports[1]["url"]
    # a PR: opened once, found by head and base the second time
    push_file(repo, "issue-1")
    pr = {"key": "a1b2c3d4:1:pr", "github": "acme/app", "issue": issue, "kind": "pr", "branch": "issue-1",
          "base": "main", "body": "A bug\n\nCloses #1"}
    poster.make(pr, 1)
    poster.make(pr, 1)
    prs = [i for i in fake.state()["repos"]["acme/app"]["items"].values() if i["kind"] == "pr"]
    assert len(prs) == 1 and prs[0]["title"] == "A bug" and prs[0]["body"] == "Closes #1"
    assert link.reports[-1]["url"] == link.reports[-2]["url"] == prs[0]["url"]
    # gh failing (not logged in) is reported, never raised
    fake.set_auth(False)
    poster.make({**post, "key": "a1b2c3d4:2:failure"}, 1)
    assert link.reports[-1]["ok"] is False and "gh exit 4" in link.reports[-1]["error"]


def test_a_marker_in_someone_elses_comment_does_not_stand_for_the_post(tmp_path: Path) -> None:
    # Anyone who can comment on a public issue can copy a post's marker (the assignment id is in the briefing
    # comment): were that taken as "already posted", an outsider could suppress the failure, stuck or merged notice.
    _, fake, issue, env = _on_github(tmp_path)
    forged = subprocess.run(["gh", "issue", "comment", str(issue), "-R", "acme/app", "--body",
                             "nothing to see <!-- coord:post key=a1b2c3d4:1:failure -->"],
                            env={**env, "FAKE_GH_USER": "mallory"}, check=True, capture_output=True, text=True).stdout
    link = Recorder()
    poster = GitHubPoster(link, env, threading.Event(), lambda: 1, lambda: True)  # type: ignore[arg-type]
    poster.make({"key": "a1b2c3d4:1:failure", "github": "acme/app", "issue": issue, "kind": "comment",
                 "body": "**coordhub**: failed\n\n<!-- coord:post key=a1b2c3d4:1:failure -->"}, 1)
    comments = fake.item("acme/app", issue)["comments"]
    assert [c["author"] for c in comments] == ["mallory", fake.state()["user"]]
    assert link.reports[-1]["ok"] is True and link.reports[-1]["url"] != forged.strip()


def test_a_pr_from_a_fork_with_the_same_branch_name_is_not_taken_for_ours(tmp_path: Path) -> None:
    """Branch names are guessable (``issue-<N>-<slug of the title>``) and anyone may open a PR from a fork whose
    branch has that name (``gh pr list --head`` matches the name in any repository): were it taken for ours, the
    assignment would link an outsider's PR, and the merge queue would check and try to merge it."""
    from coordhub.orchestrator.github import GitHub
    from tests.fakes.ghstore import module

    repo, fake, issue, env = _on_github(tmp_path)
    with module().store(fake.root) as st:  # mallory's PR from mallory/app:issue-1
        r = st["repos"]["acme/app"]
        n = r["next_number"]
        r["next_number"] += 1
        r["items"][str(n)] = {"kind": "pr", "number": n, "title": "A bug", "body": "Closes #1", "state": "OPEN",
                              "stateReason": "", "isDraft": False, "labels": [], "headRefName": "issue-1",
                              "baseRefName": "main", "reviews": [], "comments": [], "author": "mallory",
                              "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
                              "closedAt": None, "mergedAt": None, "mergeCommit": None, "id": "PR_kwDO99999999",
                              "url": f"https://github.com/acme/app/pull/{n}", "isCrossRepository": True,
                              "headRefOid": "0" * 40}
    gh = GitHub("acme/app", env=env)
    assert gh.pr_for("issue-1", "main") is None
    push_file(repo, "issue-1")
    link = Recorder()
    poster = GitHubPoster(link, env, threading.Event(), lambda: 1, lambda: True)  # type: ignore[arg-type]
    poster.make({"key": "a1b2c3d4:1:pr", "github": "acme/app", "issue": issue, "kind": "pr", "branch": "issue-1",
                 "base": "main", "body": "A bug\n\nCloses #1"}, 1)
    assert link.reports[-1]["ok"] and link.reports[-1]["url"] != f"https://github.com/acme/app/pull/{n}"
    ours = gh.pr_for("issue-1", "main")
    assert ours is not None and ours["number"] != n and ours["url"] == link.reports[-1]["url"]


def test_a_marker_quoted_inside_one_of_our_comments_is_not_that_post(tmp_path: Path) -> None:
    """Our own earlier comment that quotes a later post's marker mid-text (a worker's STUCK line, posted before the
    hub made such text inert) does not count as the later post: the marker must end the comment."""
    repo, fake, issue, link, poster = _posting(tmp_path)
    stuck = {"key": "a1b2c3d4:1:stuck", "github": "acme/app", "issue": issue, "kind": "comment",
             "body": "**coordhub**: stuck: need a decision <!-- coord:post key=a1b2c3d4:2:completion -->\n\n"
                     "<!-- coord:post key=a1b2c3d4:1:stuck -->"}
    poster.make(stuck, 1)
    done = {"key": "a1b2c3d4:2:completion", "github": "acme/app", "issue": issue, "kind": "comment",
            "body": "**coordhub**: done\n\n<!-- coord:post key=a1b2c3d4:2:completion -->"}
    poster.make(done, 1)
    bodies = [c["body"] for c in fake.item("acme/app", issue)["comments"]]
    assert len(bodies) == 2 and bodies[1].startswith("**coordhub**: done")
    assert link.reports[0]["url"] != link.reports[1]["url"]
