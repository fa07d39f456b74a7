"""The reviewer's tool rules, read the way Claude Code reads them: can a "read-only" reviewer write a file?

A review runs Claude on a branch anyone could push to, with its CLAUDE.md and
diff in the prompt (a prompt injection's way in). Its Bash is limited by
``--allowedTools``/``--disallowedTools`` rules. Claude Code's documented
matching: deny rules first, then allow; ``*`` matches any run of characters
(spaces included); a rule ``X *`` with its one trailing wildcard also matches
``X`` alone. ``git log``/``git show``/``git diff`` take ``--output=<file>``,
which writes the command's output — with ``git log --format=%B`` a commit
message of the attacker's choosing — to any path (``~/.bashrc``, the shared
clone's ``.git/config`` with a ``core.fsmonitor`` command the host then runs).
"""

from __future__ import annotations

import re

from coordhub.core import reviews
from coordhub.orchestrator import review

PAYLOAD = {"branch": "issue-1", "repo": "api", "issue": 1, "base": "main", "attempt": 1,
           "review": {"allowed_tools": list(reviews.READ_ONLY_TOOLS),
                      "disallowed_tools": list(reviews.DENIED_TOOLS)}}


def _rules(argv: list[str], flag: str) -> list[str]:
    return argv[argv.index(flag) + 1].split(",")


def _matches(rule: str, command: str) -> bool:
    m = re.fullmatch(r"Bash\((.*)\)", rule)
    if m is None:
        return rule == "Bash"
    spec = m.group(1)
    pattern = ".*".join(re.escape(part) for part in spec.split("*"))
    if spec.endswith(" *") and spec.count("*") == 1:
        pattern = re.escape(spec[:-2]) + "(?: .*)?"
    return re.fullmatch(pattern, command, flags=re.S) is not None


def allowed(argv: list[str], command: str) -> bool:
    """Whether the reviewer's command line lets Bash run ``command`` without asking (asking in -p is a denial)."""
    if any(_matches(r, command) for r in _rules(argv, "--disallowedTools")):
        return False
    return any(_matches(r, command) for r in _rules(argv, "--allowedTools"))


def test_the_reviewer_reads_but_cannot_write_through_an_allowed_git_command() -> None:
    argv = review.argv("claude", PAYLOAD, "0" * 32)
    for reading in ("git diff origin/main...HEAD", "git log --oneline -5", "git show HEAD:src/a.py", "cat README.md",
                    "grep -rn TODO src", "git diff"):
        assert allowed(argv, reading), reading
    for writing in ("git log -1 --format=%B --output=/home/u/.bashrc", "git diff --output=../../.git/config",
                    "git show HEAD --output /tmp/x", "git diff HEAD~1 --output=x --stat", "git log '--output=x'",
                    "git push origin HEAD", "rm -rf src"):
        assert not allowed(argv, writing), writing
