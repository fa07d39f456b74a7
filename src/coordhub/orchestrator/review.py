"""An adversarial review on the host: a fresh, read-only Claude session on the branch under review (issue 12 point 3).

Seed 003's reviewer started from ``main`` on a new branch (so it reviewed
nothing) and was told in prose what not to do. Here:

* the worktree is ``origin/<branch>`` checked out detached
  (:func:`coordhub.orchestrator.worktree.checkout_detached`): the reviewer
  reads the code under review, and cannot move the branch;
* the prompt carries the issue, the worker's briefing, the diff against
  ``origin/<base>`` (at most :data:`MAX_DIFF_CHARS`), the repository's
  ``CLAUDE.md`` and the checklist;
* the tools are limited by flags, not words: ``--tools Read,Grep,Glob,Bash``,
  read-only Bash rules in ``--allowedTools`` and edits, commits, pushes and
  ``gh`` in ``--disallowedTools``, in ``default`` permission mode (in ``-p``
  anything not allowed is denied); no hub token in its environment;
* the verdict is the JSON the CLI validated against ``--json-schema``
  (``structured_output``), else the final ```json block
  (:mod:`coordhub.core.verdict`); none is an error, never an approval.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordhub.core import verdict as review_verdict
from coordhub.orchestrator import smoke, streamjson, worktree

MAX_DIFF_CHARS = 100_000
MAX_CLAUDE_MD_CHARS = 20_000
MAX_COMMITTED_BYTES = 1 << 20  # a committed file larger than this is not read into a prompt at all
MAX_RESULT_LINE = 4 << 20  # bytes; a line of the reviewer's output longer than this is no result of the CLI's
TOOLS = "Read,Grep,Glob,Bash"


@dataclass(frozen=True)
class Review:
    """What a review run ended with: the verdict (None with ``error``), its cost, and the denials it met."""

    verdict: dict[str, Any] | None
    error: str
    cost_usd: float
    denials: int
    output_tail: str


def prompt(p: dict[str, Any], diff: str, claude_md: str) -> str:
    """The reviewer's prompt (see the module docstring)."""
    r = p.get("review") or {}
    items = "\n".join(f"- {c}" for c in r.get("checklist") or []) or "- (none configured)"
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n[… diff cut at {MAX_DIFF_CHARS} characters; read the files]\n"
    title = f": {r.get('title')}" if r.get("title") else ""
    parts = [
        f"Review branch {p['branch']} of {p['repo']} for issue #{p['issue']}{title}. You are an adversarial "
        f"reviewer: find what is wrong, missing or risky. The branch is checked out in the current directory; "
        f"compare with origin/{p['base']}. You may read files and run read-only commands; you cannot edit.",
        f"## The worker's briefing\n{(r.get('briefing') or '(none)').strip()}",
        f"## Checklist\n{items}",
        f"## Diff against origin/{p['base']}\n```diff\n{diff.rstrip()}\n```",
    ]
    if claude_md.strip():
        parts.append(f"## The repository's CLAUDE.md\n{claude_md.strip()[:MAX_CLAUDE_MD_CHARS]}")
    parts.append("## Your answer\nEnd your final message with one fenced ```json block: {\"verdict\": \"approve\" | "
                 "\"request_changes\", \"summary\": \"…\", \"findings\": [{\"file\": \"…\", \"line\": 1, "
                 "\"severity\": \"blocker|major|minor|nit\", \"message\": \"…\"}]}. Request changes for anything a "
                 "checklist item or the issue needs that is missing.")
    return "\n\n".join(parts) + "\n"


def argv(claude: str, p: dict[str, Any], session_id: str) -> list[str]:
    """The reviewer's ``claude`` command line; the prompt goes on its stdin (:func:`~.smoke.stdin_of`)."""
    r = p.get("review") or {}
    # --setting-sources user: the branch's own .claude/settings.json hooks and .mcp.json servers would run in print
    # mode, with the host's credentials, as the branch chose. --strict-mcp-config (and no --mcp-config): no MCP
    # server at all, whether or not the CLI counts a project's .mcp.json among the setting sources (undocumented)
    cmd = [claude, "-p", "--output-format", "stream-json", "--verbose", "--session-id", session_id,
           "--setting-sources", "user", "--strict-mcp-config", "--permission-mode", "default", "--tools", TOOLS,
           "--allowedTools", ",".join(r.get("allowed_tools") or ["Read", "Grep", "Glob"]),
           "--disallowedTools", ",".join(r.get("disallowed_tools") or ["Edit", "Write"]),
           "--json-schema", json.dumps(r.get("schema") or review_verdict.SCHEMA, separators=(",", ":")),
           "--append-system-prompt", "You are a code reviewer started by coordhub. Read only; never edit, commit "
                                     "or push. Your final message must end with the JSON verdict block."]
    if p.get("model"):
        cmd += ["--model", str(p["model"])]
    return cmd


def final_result(stream: Path) -> dict[str, Any] | None:
    """The stream-json ``result`` object of a reviewer's output file: None when there is none, or more than one.

    ``claude -p`` ends a run with exactly one. A second means something else
    wrote to the reviewer's output: code of the branch under review, run by
    its test stage on this machine, can outlive the test (``setsid``) and
    write a forged approval into the reviewer's stdout (found by a review).
    """
    found = results(stream)
    return found[0] if len(found) == 1 else None


def results(stream: Path, most: int = 2) -> list[dict[str, Any]]:
    """The stream-json ``result`` objects in a reviewer's output file, in order, at most ``most``. A line over
    :data:`MAX_RESULT_LINE` bytes is skipped unread (a tool's output can be any size: never held in memory)."""
    found: list[dict[str, Any]] = []
    try:
        with open(stream, "rb") as f:
            while len(found) < most and (raw := f.readline(MAX_RESULT_LINE + 1)):
                if len(raw) > MAX_RESULT_LINE and not raw.endswith(b"\n"):  # no result is that long: skip the line
                    while raw and not raw.endswith(b"\n"):
                        raw = f.readline(1 << 20)
                    continue
                if b'"result"' not in raw:
                    continue
                try:
                    obj = json.loads(raw)
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    continue
                if isinstance(obj, dict) and obj.get("type") == "result":
                    found.append(obj)
    except OSError:
        return []
    return found


def committed_text(wt: Path, name: str, limit: int) -> str:
    """The first ``limit`` characters of file ``name`` as committed at the worktree's ``HEAD``; "" when there is
    none, or it is not a regular file.

    Read from git, not the file system: the branch under review is anyone's
    writing, and a ``CLAUDE.md`` committed as a symbolic link to
    ``~/.config/gh/hosts.yml`` would otherwise put that file in the prompt
    (found by a review). A blob over 1 MiB is not read at all.
    """
    entry = worktree.git(wt, "ls-tree", "-l", "HEAD", "--", name, check=False)
    fields = entry.split(None, 4) if "\n" not in entry else []
    if len(fields) != 5 or fields[0] not in ("100644", "100755") or fields[1] != "blob" \
            or not fields[3].isdigit() or int(fields[3]) > MAX_COMMITTED_BYTES:
        return ""
    try:
        blob = subprocess.run(["git", "-C", str(wt), "cat-file", "blob", fields[2]], capture_output=True,
                              timeout=worktree.GIT_TIMEOUT, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return blob.decode("utf-8", errors="replace")[:limit]


def run(claude: str, p: dict[str, Any], wt: Path, env: dict[str, str], out_dir: Path,
        stop: threading.Event) -> Review:
    """Review the worktree ``wt`` (already on the branch); see the module docstring."""
    base = f"origin/{p['base']}"
    # no more of the diff than the prompt takes (a character is at most 4 bytes): the branch decides its size
    diff = worktree.git_head(wt, "diff", f"{base}...HEAD", limit=4 * MAX_DIFF_CHARS + 4).strip()
    claude_md = committed_text(wt, "CLAUDE.md", MAX_CLAUDE_MD_CHARS)
    stream = out_dir / f"review.{p['attempt']}.jsonl"
    command = argv(claude, p, str(uuid.uuid4()))
    err = out_dir / f"review.{p['attempt']}.err"
    ended = smoke.run_command(command, wt, env, float(p.get("timeout_seconds") or 3600), stream, stop,
                              err_path=err, stdin_text=prompt(p, diff, claude_md))
    found = results(stream)
    result = found[0] if len(found) == 1 else None
    cost = float(result.get("total_cost_usd") or 0.0) if result else 0.0
    denials = len(result.get("permission_denials") or []) if result else 0
    if ended.killed:
        if not found:  # stopped before its result: what its messages so far cost (else lost with the stop)
            cost = streamjson.spent(stream)
        return Review(None, f"review_{ended.killed}: the reviewer was stopped ({ended.killed})", cost, denials, "")
    # Only a reviewer that ended on its own, with one result, gave a verdict: a process left behind by the branch's
    # test on this machine can kill it and write a result of its own into its output (found by a review).
    if len(found) > 1:
        return Review(None, "review_output_forged: the reviewer's output holds more than one result; something else "
                            "wrote to it", 0.0, 0, smoke.tail(err, 2000))
    checked, why = review_verdict.from_result(result)
    if checked is None:
        return Review(None, f"review_verdict_missing: {why} (exit {ended.exit_code})", cost, denials,
                      smoke.tail(err, 2000))
    if ended.exit_code != 0:
        return Review(None, f"review_failed: the reviewer exited {ended.exit_code}; its verdict is not taken", cost,
                      denials, smoke.tail(err, 2000))
    return Review(checked, "", cost, denials, "")
