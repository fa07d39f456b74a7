"""The planning brain (``coord plan``): one ``claude -p`` call that proposes assignments and splits.

It runs where ``coord plan`` runs — the coordinator side, with the user's
own Claude credentials and ``gh`` — never in the hub (which holds no model
credentials) nor on a worker. What seed 003's brain got wrong, and what is
done here instead (research claude-coordinator.md §4.6–§4.7):

* busy machines were shown as idle (it read a key the agent never sent):
  the machines, their free slots and the work in flight come from the hub's
  own ``status``;
* ``models.labels`` and any ``model`` the LLM gave were dropped: the prompt
  states the model ladder and label rules, and a proposed model is kept;
* proposals were parsed from whatever the model printed: here the answer is
  the JSON the CLI validated against ``--json-schema``
  (``structured_output`` of the ``--output-format json`` result), else the
  last fenced ```json block of the final message; anything else, or a
  proposal that names an issue not gathered, is :class:`BrainError` and
  nothing is stored.

Sizes are bounded: at most :data:`MAX_ISSUES` issues per repo, bodies cut at
:data:`MAX_BODY_CHARS`, the answer read up to :data:`MAX_OUTPUT_BYTES`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from coordhub.core import verdict as blocks
from coordhub.orchestrator import environment

MAX_ISSUES = 100           # per repo, as seed 003's `gh issue list --limit 100`
MAX_BODY_CHARS = 2000      # of each issue body in the prompt
MAX_OUTPUT_BYTES = 4 << 20
TIMEOUT_SECONDS = 600.0
ISSUE_FIELDS = "number,title,body,labels"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"proposals": {"type": "array", "maxItems": 50, "items": {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["assign", "split"]},
            "repo": {"type": "string"},
            "issue": {"type": "integer", "minimum": 1},
            "machine": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "briefing": {"type": "string", "maxLength": 20000},
            "files_likely": {"type": "array", "maxItems": 50, "items": {"type": "string"}},
            "rationale": {"type": "string", "maxLength": 2000},
            "children": {"type": "array", "maxItems": 20, "items": {
                "type": "object",
                "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 256},
                               "body": {"type": "string", "maxLength": 20000},
                               "labels": {"type": "array", "items": {"type": "string"}}},
                "required": ["title", "body"], "additionalProperties": False}},
        },
        "required": ["kind", "repo", "issue", "rationale"], "additionalProperties": False}}},
    "required": ["proposals"],
    "additionalProperties": False,
}


class BrainError(Exception):
    """The planning session failed or its answer is not a valid plan; ``message`` says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Situation:
    """What the brain is told: open issues per repo, the machines and the work in flight.

    ``issues``: ``{repo: [{number, title, body, labels}]}``; ``machines`` and
    ``in_flight`` as the hub's status gives them; ``config`` the active
    coordinator.yml (dict); ``pending``: ``[(repo, issue)]`` with a pending
    proposal (marked in the prompt: proposing it again replaces that proposal).
    """

    config: dict[str, Any]
    issues: dict[str, list[dict[str, Any]]]
    machines: list[dict[str, Any]]
    in_flight: list[dict[str, Any]]
    pending: set[tuple[str, int]] = field(default_factory=set)

    def issue(self, repo: str, number: int) -> dict[str, Any] | None:
        """A gathered open issue, or None."""
        return next((i for i in self.issues.get(repo, []) if i.get("number") == number), None)

    def open_count(self) -> int:
        """Open issues the brain may plan."""
        return sum(len(rows) for rows in self.issues.values())


def clean_issue(raw: dict[str, Any]) -> dict[str, Any]:
    """An issue of ``gh issue list --json number,title,body,labels`` with its labels as names and its body cut."""
    labels = [str(x.get("name")) for x in raw.get("labels") or [] if isinstance(x, dict)]
    body = str(raw.get("body") or "")
    if len(body) > MAX_BODY_CHARS:
        body = body[:MAX_BODY_CHARS] + " […]"
    return {"number": int(raw["number"]), "title": str(raw.get("title") or "")[:256], "body": body, "labels": labels}


def _machine_line(m: dict[str, Any]) -> str:
    free = max(0, int(m.get("slots") or 0) - int(m.get("running") or 0)) if m.get("state") == "online" else 0
    idle = "idle" if m.get("state") == "online" and not m.get("running") else (
        f"busy ({m.get('running')} running)" if m.get("state") == "online" else str(m.get("state")))
    return (f"- {m['machine']}: {idle}, {free} free slot(s); repos {', '.join(m.get('repos') or []) or 'none'}; "
            f"capabilities {', '.join(m.get('capabilities') or []) or 'none'}")


def prompt(s: Situation) -> str:
    """The planner's prompt: the rules, the machines, the work in flight, the models and the open issues."""
    models = s.config.get("models") or {}
    ladder = ", ".join(models.get("escalation") or []) or "haiku, sonnet, opus"
    labels = ", ".join(f"{k} → {v}" for k, v in (models.get("labels") or {}).items()) or "none"
    flight = [f"- {a['repo']}#{a['issue']} ({a['state']}) on {a.get('ran_on') or a.get('machine') or 'any'}"
              + (f", files {', '.join(a.get('files_likely') or [])}" if a.get("files_likely") else "")
              for a in s.in_flight] or ["- none"]
    repos = []
    for r in s.config.get("repos") or []:
        name = r["name"]
        deps = f" (depends on {', '.join(r.get('depends_on') or [])})" if r.get("depends_on") else ""
        rows = [f"### {name}#{i['number']}: {i['title']}"
                + (" (a proposal is pending; proposing it again replaces it)" if (name, i["number"]) in s.pending
                   else "") + f"\nlabels: {', '.join(i['labels']) or 'none'}\n{i['body']}"
                for i in s.issues.get(name, [])]
        repos.append(f"## Repo {name}{deps}\n" + ("\n\n".join(rows) if rows else "(no open issues to plan)"))
    return "\n\n".join([
        "You are the planning brain of a fleet of headless Claude Code workers (coordhub). Propose which open "
        "issues to start now, on which machine and with which model, and which issues are too large and should be "
        "split into sub-issues first. A human approves each proposal.",
        "Rules:\n- propose only the issues listed below, each at most once;\n- an assign proposal names a machine "
        "that serves the repo and has a free slot, or machine null for any capable machine; do not propose more "
        "assignments for a machine than its free slots;\n- never give two assignments likely to edit the same files "
        "at once, nor an issue whose files overlap work in flight;\n- do not assign into a repo while a repo it "
        "depends on has work in flight (the hub refuses it);\n"
        f"- model: one of {ladder} (cheapest that can do it), or null to let the labels decide ({labels}); "
        "a label rule wins when it applies;\n- a split proposal lists 2 or more children, each a self-contained "
        "sub-issue with a title and a body; it never changes the parent issue;\n- briefing: what the worker must do "
        "and how to verify it; files_likely: paths it will probably edit; rationale: one or two sentences.",
        "## Machines\n" + "\n".join(_machine_line(m) for m in s.machines),
        "## Work in flight\n" + "\n".join(flight),
        *repos,
        "## Your answer\nAnswer with one JSON object only: {\"proposals\": [{\"kind\": \"assign\", \"repo\": \"…\", "
        "\"issue\": 1, \"machine\": \"…\" | null, \"model\": \"…\" | null, \"briefing\": \"…\", \"files_likely\": "
        "[\"…\"], \"rationale\": \"…\"}, {\"kind\": \"split\", \"repo\": \"…\", \"issue\": 2, \"rationale\": \"…\", "
        "\"children\": [{\"title\": \"…\", \"body\": \"…\", \"labels\": []}]}]}. An empty list is a valid answer.",
    ]) + "\n"


def argv(claude: str, model: str | None) -> list[str]:
    """The planner's command line: print mode, JSON output validated against :data:`SCHEMA`, no tools, no
    session kept. The prompt goes on stdin (no argument-length limit, and the variadic options cannot take it).

    Only the user's own settings (``--setting-sources user``) and no MCP server (``--strict-mcp-config`` with
    none given): print mode skips the workspace-trust dialog, so a project's ``.claude/settings.json`` hooks
    and ``.mcp.json`` servers would run with the user's whole environment (see :func:`ask`)."""
    cmd = [claude, "-p", "--output-format", "json", "--json-schema", json.dumps(SCHEMA, separators=(",", ":")),
           "--no-session-persistence", "--permission-mode", "default", "--tools", "",
           "--setting-sources", "user", "--strict-mcp-config",
           "--append-system-prompt", "You plan work for coordhub. Do not use tools; answer with the JSON object."]
    if model:
        cmd += ["--model", model]
    return cmd


def ask(claude: str, text: str, model: str | None, timeout: float = TIMEOUT_SECONDS,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the planner on ``text``; the ``{proposals: [...]}`` object it answered. :class:`BrainError` when claude
    cannot run, times out, fails (``is_error``: an auth failure looks like success, research §1) or answers no
    valid JSON object.

    It runs in an empty directory of its own, not where ``coord plan`` was typed: that is often a clone of
    someone else's repository, whose ``.claude/`` settings, ``.mcp.json`` and ``CLAUDE.md`` print mode would
    load without asking (hooks and servers running with the user's hub and GitHub tokens, text steering the
    plan). The planner needs no file of it."""
    base = dict(os.environ if env is None else env)
    clean = {k: v for k, v in base.items() if not environment.forbidden(k)}  # not a nested Claude Code session
    if os.sep in claude:  # a path given relative to where coord plan was typed still names the same file
        claude = os.path.abspath(claude)
    try:
        with tempfile.TemporaryDirectory(prefix="coord-plan-") as cwd:
            p = subprocess.run(argv(claude, model), input=text, capture_output=True, text=True, timeout=timeout,
                               env=clean, cwd=cwd)
    except FileNotFoundError:
        raise BrainError(f"cannot run {claude!r}: not found (install Claude Code, or give --claude PATH)") from None
    except subprocess.TimeoutExpired:
        raise BrainError(f"the planning session gave no answer within {timeout:g} s") from None
    if len(p.stdout.encode("utf-8", "replace")) > MAX_OUTPUT_BYTES:
        raise BrainError(f"the planning session printed over {MAX_OUTPUT_BYTES} bytes; refusing to read it")
    return parse(p.stdout, p.returncode, p.stderr)


def parse(stdout: str, exit_code: int, stderr: str = "") -> dict[str, Any]:
    """The plan in ``claude -p --output-format json``'s result object (see :func:`ask`); :class:`BrainError`."""
    try:
        result = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        result = None
    if not isinstance(result, dict) or result.get("type") != "result":
        why = (stderr.strip() or stdout.strip())[:300] or "no output"
        raise BrainError(f"the planning session ended without a result (exit {exit_code}): {why}")
    if result.get("is_error"):
        detail = result.get("result") or "; ".join(map(str, result.get("errors") or [])) or ""
        raise BrainError(f"the planning session failed: {result.get('subtype')}: {str(detail)[:300]}")
    data = result.get("structured_output")
    if data is None:
        try:
            data = blocks.last_block(str(result.get("result") or ""), "the plan")
        except ValueError as exc:
            raise BrainError(f"no plan in the answer: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("proposals"), list):
        raise BrainError("the answer is not a JSON object with a proposals list")
    return data


def check(plan: dict[str, Any], s: Situation) -> list[dict[str, Any]]:
    """The plan's proposals, each naming an open issue gathered in ``s`` (its title and labels are taken from the
    issue, not from the answer); :class:`BrainError` for the first that does not. The hub checks the rest (repos,
    machines, sizes) when they are stored."""
    out = []
    for i, p in enumerate(plan["proposals"]):
        if not isinstance(p, dict):
            raise BrainError(f"proposal {i} is not an object")
        repo, number = p.get("repo"), p.get("issue")
        found = s.issue(repo, number) if isinstance(repo, str) and isinstance(number, int) else None
        if found is None:
            raise BrainError(f"proposal {i} names {str(repo)[:64]}#{str(number)[:12]}, which is not an open issue "
                             "that was gathered: the answer is not used")
        out.append({**p, "title": found["title"], "labels": found["labels"]})
    return out
