"""The host side of the GitHub audit trail: a ``coord agent`` with capability ``github`` makes the posts the hub
queued (:mod:`coordhub.core.ghtrail`) with its own logged-in ``gh``; workers never see GitHub credentials.

Exactly once: before a comment is posted, the issue's comments made by this
``gh`` account (``viewerDidAuthor``: anyone else may paste a marker) are
searched for the post's marker (``<!-- coord:post key=… -->``), so a post made by a
host that died before reporting it is found and recorded, not posted again;
a PR is looked up by its head and base before one is opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from coordhub.client import Unreachable
from coordhub.core.ghtrail import marker
from coordhub.orchestrator.github import GitHub, GitHubError
from coordhub.orchestrator.link import HubLink, Refused

log = logging.getLogger("coordhub.agent.github")
POLL_SECONDS = 2.0


class GitHubPoster:
    """Polls for posts every ``poll`` seconds while ``enabled()`` (the host has capability ``github``)."""

    def __init__(self, link: HubLink, env: dict[str, str], stopping: threading.Event,
                 incarnation: Callable[[], int | None], enabled: Callable[[], bool],
                 poll: float = POLL_SECONDS) -> None:
        self.link, self.env, self.stopping = link, env, stopping
        self.incarnation, self.enabled, self.poll = incarnation, enabled, poll

    def loop(self) -> None:
        """Poll and post until stopped (the thread's target)."""
        while not self.stopping.wait(self.poll):
            inc = self.incarnation()
            if inc is None or not self.enabled():
                continue
            try:
                posts = self.link.github_next(inc)
            except (Unreachable, Refused) as exc:
                log.warning("github/next: %s", exc)
                continue
            for post in posts:
                self.make(post, inc)

    def make(self, post: dict[str, Any], inc: int) -> None:
        """Make one post and report it (errors are reported, never raised)."""
        gh = GitHub(str(post["github"]), env=self.env)
        try:
            url = self._make(gh, post)
            body: dict[str, Any] = {"key": post["key"], "ok": True, "url": url}
        except GitHubError as exc:
            log.warning("post %s: %s", post["key"], exc.message)
            body = {"key": post["key"], "ok": False, "error": f"gh exit {exc.code}: {exc.message}"[:2000]}
        try:
            self.link.github_report(inc, body)
        except (Unreachable, Refused) as exc:  # the hub offers it again; the marker keeps it single
            log.warning("post %s: report not delivered: %s", post["key"], exc)

    @staticmethod
    def _make(gh: GitHub, post: dict[str, Any]) -> str | None:
        issue = int(post["issue"])
        if post["kind"] == "close":
            gh.close_issue(issue)
            return None
        if post["kind"] == "pr":
            found = gh.pr_for(str(post["branch"]), str(post["base"]))
            if found and found.get("state") in ("OPEN", "MERGED"):
                return str(found.get("url"))
            title, _, rest = str(post["body"]).partition("\n\n")
            return gh.pr_create(str(post["branch"]), str(post["base"]), title[:250], rest)
        mark = marker(str(post["key"]))
        for c in gh.comments(issue):  # only our own: anyone may paste a marker into a public issue's comments
            # and the marker ends the post: one quoted inside another post's text is not that post
            if c.get("viewerDidAuthor") is True and str(c.get("body") or "").rstrip().endswith(mark):
                return str(c.get("url") or "") or None
        return gh.comment(issue, str(post["body"]))
