"""What the hub hands a host for one attempt of an assignment (the contract's ``next`` payload), checked.

The payload is the hub's, but the host still checks it before acting on it:
a malformed one is refused with :class:`ValueError` naming the field, and
never half-run. Defaults fill what the hub left out (the permission mode
``acceptEdits``, the branch ``issue-<N>``, the default branch ``main``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from coordhub.orchestrator.worktree import branch_name

PERMISSION_MODES = ("default", "acceptEdits", "plan", "auto", "dontAsk", "bypassPermissions")
DEFAULT_TOOLS = ("Read", "Edit", "Write", "Glob", "Grep", "Bash")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
# an id names the worker's directories (worktree, logs): never "." or "..", the folder itself or the one above
_ID = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True)
class Resume:
    """Continue an earlier Claude session (``claude -p --resume``) with the coordinator's guidance."""

    session_id: str
    guidance: str


@dataclass(frozen=True)
class Dispatch:
    """One attempt of one assignment, as the host runs it. ``raw`` is the payload as received."""

    id: str
    attempt: int
    repo: str
    issue: int
    branch: str
    briefing: str
    worker_session: str
    worker_token: str | None = None
    model: str | None = None
    title: str | None = None
    files_likely: tuple[str, ...] = ()
    permission_mode: str = "acceptEdits"
    allowed_tools: tuple[str, ...] = DEFAULT_TOOLS
    budget_usd: float | None = None
    wall_clock_seconds: float | None = None
    max_turns: int | None = None
    disallowed_tools: tuple[str, ...] = ()
    first_output_seconds: float | None = None
    silence_seconds: float | None = None
    default_branch: str = "main"
    resume: Resume | None = None
    worktree: str | None = None
    depends_on: tuple[tuple[str, str], ...] = ()  # (repo, its default branch): checked for freshness first
    auto_pull: bool = False
    skip_freshness: bool = False  # coord approve --skip-freshness: no check at all
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Dispatch:
        """Check and convert a payload; ``ValueError`` naming the first bad field."""
        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            v = d.get(key)
            if not isinstance(v, kind) or isinstance(v, bool):
                raise ValueError(f"dispatch payload: {key!r} missing or not a {getattr(kind, '__name__', kind)}")
            return v

        aid = check_id(str(need("id", (str, int))), "dispatch payload: id")
        issue = need("issue", int)
        branch = d.get("branch") or branch_name(issue, d.get("title") if isinstance(d.get("title"), str) else None)
        if not isinstance(branch, str) or not _BRANCH.match(branch):
            raise ValueError(f"dispatch payload: branch {branch!r} is not a usable branch name")
        mode = d.get("permission_mode") or "acceptEdits"
        if mode not in PERMISSION_MODES:
            raise ValueError(f"dispatch payload: permission_mode {mode!r} is not one of {', '.join(PERMISSION_MODES)}")
        tools = d.get("allowed_tools") or DEFAULT_TOOLS
        if isinstance(tools, str):
            tools = [t.strip() for t in tools.split(",") if t.strip()]
        denied = d.get("disallowed_tools") or []
        if isinstance(denied, str):
            denied = [t.strip() for t in denied.split(",") if t.strip()]
        files = d.get("files_likely") or []
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError("dispatch payload: files_likely must be a list of paths")
        repo_config = _obj(d.get("repo_config"))
        resume = d.get("resume")
        parsed_resume = None
        if isinstance(resume, dict) and resume.get("session_id"):
            parsed_resume = Resume(_session_id(resume["session_id"]), str(resume.get("guidance") or "Continue."))
        return cls(
            id=aid, attempt=int(need("attempt", int)), repo=str(need("repo", str)), issue=issue, branch=branch,
            briefing=str(d.get("briefing") or ""), worker_session=str(need("worker_session", str)),
            worker_token=d.get("worker_token") if isinstance(d.get("worker_token"), str) else None,
            model=d.get("model") if isinstance(d.get("model"), str) and d.get("model") else None,
            title=d.get("title") if isinstance(d.get("title"), str) else None,
            files_likely=tuple(files), permission_mode=mode, allowed_tools=tuple(str(t) for t in tools),
            budget_usd=_number(d.get("budget_usd")), wall_clock_seconds=_number(d.get("wall_clock_seconds")),
            max_turns=int(d["max_turns"]) if isinstance(d.get("max_turns"), int) and d["max_turns"] > 0 else None,
            disallowed_tools=tuple(str(t) for t in denied),
            first_output_seconds=_number(d.get("first_output_seconds")),
            silence_seconds=_number(d.get("silence_seconds")),
            default_branch=str(repo_config.get("default_branch") or d.get("default_branch") or "main"),
            resume=parsed_resume, worktree=d.get("worktree") if isinstance(d.get("worktree"), str) else None,
            depends_on=_deps(_obj(d.get("freshness")).get("depends_on")),
            auto_pull=_obj(d.get("freshness")).get("auto_pull") is True,
            skip_freshness=_obj(d.get("freshness")).get("skip") is True,
            raw=dict(d),
        )


def _session_id(value: Any) -> str:
    """A Claude session id to resume, canonical; ``ValueError`` unless it is a UUID.

    It comes from a worker's telemetry, which a prompt-injected worker can
    forge, and becomes ``claude -p --resume <id>``: a value such as
    ``--dangerously-skip-permissions`` must never reach that command line.
    """
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"dispatch payload: resume.session_id {str(value)[:100]!r} is not a Claude session id "
                         "(a UUID)") from None


def check_id(value: str, what: str) -> str:
    """``value`` when it may name a file or directory of the host (an assignment's, a stage run's or a merge run's
    id: letters, digits and ``_.:-``, at most 100, not ``.`` or ``..``); else ``ValueError`` naming ``what``."""
    if not _ID.match(value):
        raise ValueError(f"{what} {value!r} is not an id (letters, digits, '_.:-'; not . or ..)")
    return value


def _deps(value: Any) -> tuple[tuple[str, str], ...]:
    """``freshness.depends_on`` as ``(repo, default branch)`` pairs; entries that are not well formed are dropped."""
    out = []
    for item in value if isinstance(value, list) else []:
        repo, branch = _obj(item).get("repo"), _obj(item).get("default_branch") or "main"
        if isinstance(repo, str) and isinstance(branch, str) and _BRANCH.match(branch):
            out.append((repo, branch))
    return tuple(out)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (the wire format is the peer's, never trusted)."""
    return value if isinstance(value, dict) else {}
