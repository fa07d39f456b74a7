"""Seed 003's coordinator verbs over the hub: assign, stop, wait, retry, resume-stuck, log, reconcile, config, init.

Thin front ends: each parses its arguments, makes one call through
:class:`coordhub.client.orchestrator.OrchestratorClient` and prints the
answer (``--json`` for scripts). The rules live in the hub
(``coordhub.core.assignments``, ``coordhub.core.dispatch``). ``coord init``
and ``coord config`` work on the local ``coordinator.yml`` and need no hub;
``coord config apply`` makes it the hub's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from coordhub.cli.common import (
    EXIT_REFUSED,
    EXIT_USAGE,
    JSON_OPT,
    call,
    fail,
    read_text_arg,
    show,
)
from coordhub.cli.exits import EXIT_TIMEOUT
from coordhub.cli.output import console, print_json, verbatim
from coordhub.cli.views import shown_time
from coordhub.client import CoordClient, project
from coordhub.client.orchestrator import OrchestratorClient
from coordhub.hooks.leases import when
from coordhub.hooks.untrusted import one_line

ENDED = ("done", "failed", "cancelled", "stuck", "needs_input")
FILE_OPT = typer.Option(Path("coordinator.yml"), "--file", "-f", help="The coordinator.yml to read.")


def orch(c: CoordClient) -> OrchestratorClient:
    """The orchestrator calls over a client."""
    return OrchestratorClient(c)


def _where(a: dict[str, Any]) -> str:
    return a.get("ran_on") or a.get("machine") or "any machine"


def _model(a: dict[str, Any]) -> str:
    source = a.get("model_source") or ""
    why = {"flag": "--model", "default": "models.default", "escalation": "escalated",
           "kept": "no step above it in models.escalation"}.get(
        source, source.replace("label:", "label ") or "?")
    return f"{a['model']} ({why})"


def assign(
    ctx: typer.Context,
    target: list[str] = typer.Argument(..., metavar="MACHINE REPO ISSUE",
                                       help="Where and what: MACHINE REPO ISSUE, or REPO ISSUE with --any."),
    any_machine: bool = typer.Option(False, "--any", help="Let the hub pick an idle capable machine."),
    model: str | None = typer.Option(None, "--model", help="haiku, sonnet, opus or a full model id (default: "
                                                           "models.labels for --label, else models.default)."),
    briefing: str | None = typer.Option(None, "--briefing", help="What the worker should do (≤ 64 KiB)."),
    briefing_file: Path | None = typer.Option(None, "--briefing-file", help="Read the briefing from a file "
                                                                           "('-': stdin)."),
    title: str | None = typer.Option(None, "--title", help="The issue's title (names the branch issue-N-<slug>)."),
    label: list[str] = typer.Option([], "--label", help="The issue's GitHub labels, in order (repeat); "
                                                        "models.labels picks the model from them."),
    files: list[str] = typer.Option([], "--file", help="A file the worker will likely touch (repeat): leased for "
                                                       "it before it starts."),
    requires: list[str] = typer.Option([], "--requires", help="A capability the machine needs (repeat)."),
    budget_usd: float | None = typer.Option(None, "--budget-usd", min=0.01, help="Cost ceiling of the worker "
                                                                                 "(default: workers.max_budget_usd)."),
    wall_clock: int | None = typer.Option(None, "--wall-clock", min=10, help="Seconds the worker may run "
                                                                             "(default: workers.wall_clock_seconds)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and resolve everything; queue nothing."),
    no_github: bool = typer.Option(False, "--no-github", help="Do not ask gh for the issue's labels and title "
                                                             "(asked when the repo has github: and no --label)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Queue an issue for a headless worker (seed 003 `assign`). The hub dispatches it when a slot is free.

    For a repo with `github:` and no --label, the issue's labels (and title, unless --title) are read with
    `gh issue view N --json labels,title` on this machine, so models.labels picks the model.

    Exit 4 when the issue already has a live assignment; 1 for an unknown machine or repo.
    """
    want = 2 if any_machine else 3
    if len(target) != want:
        fail("give MACHINE REPO ISSUE, or --any REPO ISSUE", EXIT_USAGE)
    machine = None if any_machine else target[0]
    repo, issue_text = target[-2], target[-1]
    # GitHub numbers issues from 1; refused here, before gh or the hub is asked (the hub's 422 came after a gh lookup)
    if not (issue_text.isascii() and issue_text.isdigit()) or int(issue_text) < 1:
        fail(f"ISSUE must be an issue number (a positive integer), not {issue_text!r}", EXIT_USAGE)
    text = "" if briefing is None and briefing_file is None else read_text_arg(briefing, briefing_file, "briefing")
    if not label and not no_github:
        found = _from_github(ctx, repo, int(issue_text))
        label = found.get("labels") or []
        title = title or found.get("title")
    a = call(ctx, lambda c: orch(c).assign(
        repo, int(issue_text), machine=machine, model=model, briefing=text, title=title, labels=label or None,
        files_likely=files or None, requires=requires or None, budget_usd=budget_usd,
        wall_clock_seconds=wall_clock, dry_run=dry_run or None))

    def human(x: dict[str, Any]) -> None:
        console.print(one_line(f"{_where(x)} → {x['repo']} #{x['issue']}" + (f": {x['title']}" if x['title'] else "")))
        console.print(f"model: {_model(x)}")
        if x.get("dry_run"):
            console.print(f"dry run: would be queued at position {x['position']} on branch {x['branch']} "
                          "(nothing written)")
        else:
            console.print(f"queued (assignment {x['id']}), position {x['position']} in the queue, "
                          f"branch {x['branch']}")

    show(a, as_json, human)


def _from_github(ctx: typer.Context, repo: str, issue: int) -> dict[str, Any]:
    """The issue's ``{labels, title}`` from ``gh`` when the hub's config gives the repo a ``github:``; {} otherwise.

    No gh on this machine means no lookup; a gh that fails (not logged in, no such issue) is a warning on
    stderr, not a failure. Either way the model falls back to ``models.default`` and the output says so.
    """
    from coordhub.orchestrator.github import GhMissing, GitHub, GitHubError

    config = (call(ctx, lambda c: orch(c).config()) or {}).get("config") or {}
    slug = next((r.get("github") for r in config.get("repos") or [] if r.get("name") == repo), None)
    if not slug:
        return {}
    try:
        return GitHub(slug).issue(issue)
    except GhMissing:
        return {}
    except GitHubError as exc:
        print(one_line(f"warning: no labels from GitHub for {slug}#{issue} ({exc.message}); models.labels "
                       "not applied (give --label, or --no-github)"), file=sys.stderr)
        return {}


def stop(ctx: typer.Context, assignment_id: str = typer.Argument(..., help="Assignment id."),
         as_json: bool = JSON_OPT) -> None:
    """Cancel an assignment; a running worker is stopped by its host within a heartbeat (its work is kept)."""
    a = call(ctx, lambda c: orch(c).stop(assignment_id))
    show(a, as_json, lambda x: console.print(f"cancelled {x['id']} ({x['repo']} #{x['issue']})"))


def retry(ctx: typer.Context, assignment_id: str = typer.Argument(..., help="Assignment id."),
          model: str | None = typer.Option(None, "--model", help="Default: one step up models.escalation after a "
                                                                 "failure; a stopped one keeps its model."),
          as_json: bool = JSON_OPT) -> None:
    """Queue a failed, cancelled or stuck assignment again: another machine when possible, the model escalated
    after a failure (a stopped one keeps its model)."""
    def go(c: CoordClient) -> tuple[bool, Any]:
        # read first: the answer's model_source is where the model came from (an earlier escalation reads
        # "escalated"), and after a stop this retry kept it
        stopped = model is None and orch(c).assignment(assignment_id).get("state") == "cancelled"
        return stopped, orch(c).retry(assignment_id, model)

    stopped, a = call(ctx, go)
    show(a, as_json, lambda x: console.print(
        f"queued {x['id']} again on {_where(x)}, model "
        + (f"{x['model']} (kept: a stop is not a failure)" if stopped else _model(x))
        + (f" (avoiding {x['avoid_machine']})" if x["avoid_machine"] else "")))


def resume_stuck(
    ctx: typer.Context,
    assignment_id: str = typer.Argument(..., help="Assignment id."),
    guidance: str | None = typer.Option(None, "--guidance", help="The answer or direction for the worker."),
    guidance_file: Path | None = typer.Option(None, "--guidance-file", help="Read the guidance from a file."),
    as_json: bool = JSON_OPT,
) -> None:
    """Resume a stuck or needs-input worker's Claude session with guidance (same machine, same worktree)."""
    text = read_text_arg(guidance, guidance_file, "guidance")
    a = call(ctx, lambda c: orch(c).resume_stuck(assignment_id, text))
    show(a, as_json, lambda x: console.print(f"queued {x['id']} to resume session {x['resume']['session_id']} "
                                             f"on {_where(x)}, model {_model(x)}"))


def unpause(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Lift the fleet-wide dispatch pause that a worker's rate-limit report set (admin).

    `coord status` shows the pause (DISPATCH PAUSED until …). A pause lasts at most 6 hours; lift it when the
    limit was reset early or the report was not to be trusted. A later rate-limit report pauses again.
    """
    done = call(ctx, lambda c: orch(c).unpause(), admin=True)
    show(done, as_json, lambda d: console.print(
        one_line(f"dispatch resumed (was paused until {when(d['was']['paused_until'])}: {d['was']['reason']})")
        if d["was"] else "dispatch was not paused"))


def reconcile(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Run the hub's reconciliation pass now (it also runs by itself in `coord serve`)."""
    done = call(ctx, lambda c: orch(c).reconcile())
    show(done, as_json, lambda d: console.print(
        f"stale hosts: {', '.join(d['stale_hosts']) or 'none'}; "
        f"stopped hosts: {', '.join(d.get('stopped_hosts') or []) or 'none'}; "
        f"re-queued: {', '.join(d['requeued']) or 'none'}; "
        f"failed: {', '.join(d['failed']) or 'none'}"))


def wait(
    ctx: typer.Context,
    assignment_id: str = typer.Argument(..., help="Assignment id."),
    timeout: float | None = typer.Option(None, "--timeout", min=0.0, help="Give up after this many seconds "
                                                                          "(exit 124)."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, max=60.0, help="Seconds between checks."),
    as_json: bool = JSON_OPT,
) -> None:
    """Block until the assignment ends. Exit 0 when done, 1 when failed, cancelled, stuck or needs input."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        a = call(ctx, lambda c: orch(c).assignment(assignment_id))
        if a["state"] in ENDED:
            break
        if deadline is not None and time.monotonic() >= deadline:
            show(a, as_json, lambda x: console.print(f"{x['id']} is still {x['state']}"))
            raise typer.Exit(EXIT_TIMEOUT)
        time.sleep(interval)
    show(a, as_json, lambda x: console.print(one_line(
        f"{x['id']} {x['state']}" + (f": {x['reason']}" if x["reason"] else "")
        + f" (attempt {x['attempt']} on {_where(x)}, {_spent(x)})")))
    raise typer.Exit(0 if a["state"] == "done" else EXIT_REFUSED)


def _spent(a: dict[str, Any]) -> str:
    """What an assignment cost, said so that a retried one's total is not read as its last attempt's."""
    if a["attempt"] <= 1:
        return f"${a['total_cost_usd']:.2f}"
    return f"${a['total_cost_usd']:.2f} over {a['attempt']} attempts, ${a['cost_usd']:.2f} this one"


LOG_JSON_HELP = ('One JSON object per line: {"assignment_id", "line"} for each log line, {"assignment_id", '
                 '"dropped_chars"} where the hub dropped older text, and {"assignment_id", "state"} last when the '
                 "assignment has ended.")


def log(
    ctx: typer.Context,
    assignment_id: str = typer.Argument(..., help="Assignment id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing as the worker goes, until it ends."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, max=60.0, help="Seconds between checks with -f."),
    as_json: bool = typer.Option(False, "--json", help=LOG_JSON_HELP),
    machine: str | None = typer.Option(None, "--machine", help="Seed 003's flag (read the log from that machine's "
                                                               "agent): refused, exit 2, saying why it is not "
                                                               "needed."),
    local: bool = typer.Option(False, "--local", help="Seed 003's flag (read this machine's own log files): "
                                                      "refused, exit 2, saying where they are."),
) -> None:
    """The worker's filtered log (\\[init], \\[tool], \\[stuck], \\[result] …) from any machine, through the hub."""
    # \\[: help is Rich markup (cli/output.py help_text), where a bare [init] is a style tag and is dropped
    if machine is not None or local:
        # Seed 003's log asked the agent of --machine (or read the files here with --local); a seed-003 user got
        # "No such option". Say why neither is needed, and where the machine's own files are.
        fail(f"{'--machine' if machine is not None else '--local'} (seed 003: read the log from a machine's agent "
             "or from this machine's files) is not needed: every coord agent relays its worker's log to the hub, "
             "so `coord log ID` shows it from any machine. The unfiltered stream-json stays on the machine that ran "
             "the worker, in <coord agent --state-dir>/workers/ID/stream.ATTEMPT.jsonl (docs/agent.md)", EXIT_USAGE)
    follow_log(ctx, assignment_id, follow=follow, interval=interval, as_json=as_json)


class _LogPrinter:
    """Prints the relayed log as it comes: the text as is, or (``as_json``) one JSON object per complete line.

    The hub hands out the log in pieces cut at any character, so a line may arrive in two; with ``as_json`` the
    unfinished tail waits for the rest (or for :meth:`end`)."""

    def __init__(self, assignment_id: str, as_json: bool) -> None:
        self.assignment_id, self.as_json, self.tail = assignment_id, as_json, ""

    def _object(self, **fields: Any) -> None:
        verbatim(json.dumps({"assignment_id": self.assignment_id, **fields}, ensure_ascii=False))

    def dropped(self, chars: int) -> None:
        if self.as_json:
            self._object(dropped_chars=chars)
        else:
            verbatim(f"[… {chars} older characters dropped by the hub]")

    def text(self, text: str) -> None:
        if not self.as_json:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        *lines, self.tail = (self.tail + text).split("\n")
        for line in lines:
            self._object(line=line)

    def end(self, state: str | None) -> None:
        """Flush an unfinished last line; with ``state`` (the assignment ended), say so."""
        if self.as_json and self.tail:
            self._object(line=self.tail)
            self.tail = ""
        if self.as_json and state is not None:
            self._object(state=state)


def follow_log(ctx: typer.Context, assignment_id: str, *, follow: bool, interval: float,
               deadline: float | None = None, as_json: bool = False) -> str | None:
    """Print the assignment's filtered log from its start (``as_json``: see :class:`_LogPrinter`); with ``follow``,
    until the assignment ends (:data:`ENDED`). Returns its state when it ended, else None: not following, or
    ``deadline`` (a ``time.monotonic()`` value) passed first."""
    offset = 0
    out = _LogPrinter(assignment_id, as_json)

    def piece(at: int) -> Any:
        return call(ctx, lambda c: orch(c).log(assignment_id, at))

    while True:
        got = piece(offset)
        if got["truncated"]:
            out.dropped(got["offset"] - offset)
        if got["text"]:
            out.text(got["text"])
        offset = got["offset"] + len(got["text"])
        if offset < got["size"]:
            continue
        if got["state"] in ENDED:
            out.end(str(got["state"]))
            return str(got["state"])
        if not follow or (deadline is not None and time.monotonic() >= deadline):
            out.end(None)
            return None
        time.sleep(interval)


# ---- coordinator.yml -------------------------------------------------------------------

config_app = typer.Typer(help="coordinator.yml: show it parsed (`coord config`), make it the hub's "
                              "(`coord config apply`).", invoke_without_command=True)


def _load(path: Path) -> Any:
    from coordhub.core.orchestrator_config import ConfigError, load

    try:
        return load(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_REFUSED)


@config_app.callback()
def config_show(ctx: typer.Context, file: Path = FILE_OPT,
                hub: bool = typer.Option(False, "--hub", help="Show the hub's active config instead."),
                as_json: bool = JSON_OPT) -> None:
    """Pretty-print coordinator.yml as parsed, every default filled in (exit 1 with every problem's key path)."""
    if ctx.invoked_subcommand is not None:
        return
    if hub:
        data = call(ctx, lambda c: orch(c).config())
        if as_json:
            print_json(data)
            return
        if data["config"] is None:
            console.print("the hub has no coordinator.yml applied (`coord config apply`)")
            return
        console.print(f"the hub's coordinator.yml, version {data['version']}, applied by {data['applied_by']} at "
                      f"{shown_time(data['applied_at'])}:")
        _print_yaml(data["config"])
        return
    parsed = _load(file).as_json()
    if as_json:
        print_json(parsed)
        return
    console.print(f"{file}: valid — {len(parsed['repos'])} repo(s), {len(parsed['machines'])} machine(s)")
    _print_yaml(parsed)


def _print_yaml(data: dict[str, Any]) -> None:
    import yaml

    verbatim(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


@config_app.command("apply")
def config_apply(ctx: typer.Context, file: Path = FILE_OPT, as_json: bool = JSON_OPT) -> None:
    """Make coordinator.yml the hub's active config (admin), so every host and the scheduler use it."""
    parsed = _load(file).as_json()
    data = call(ctx, lambda c: orch(c).apply_config(parsed), admin=True)
    show(data, as_json, lambda d: console.print(f"applied {file} as version {d['version']}: "
                                                f"{len(d['config']['repos'])} repo(s), "
                                                f"{len(d['config']['machines'])} machine(s)"))


def init(
    path: Path = typer.Option(Path("coordinator.yml"), "--path", help="Where to write it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Take every default without asking (for scripts)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    machine: str | None = typer.Option(None, "--machine", help="This machine's name (default: the host name)."),
    search: list[Path] = typer.Option([], "--search", help="Where to look for git repositories (repeat; default: "
                                                           "the working directory and ~/src)."),
) -> None:
    """Write coordinator.yml: detects git repositories in the working directory and ~/src (seed 003 `init`); inside
    a git working tree, the file is added to the repository's info/exclude, as seed 003 kept it out of git."""
    from coordhub.orchestrator import setup

    # A repository can ship coordinator.yml as a symlink (dangling, so exists() says no) or a FIFO: writing would
    # land in the file it names, or block.
    if path.is_symlink() or (os.path.lexists(path) and not path.is_file()):
        fail(f"refusing to write {path}: it is a symlink or not a regular file (a repository may have put it there); "
             "remove it, or give another --path; nothing was written", EXIT_REFUSED)
    if path.exists() and not force:
        fail(f"{path} already exists; edit it, or add --force to write a new one", EXIT_REFUSED)
    found = setup.detect(search or [Path.cwd(), Path.home() / "src"])
    if not found:
        where = ", ".join(str(p) for p in (search or [Path.cwd(), Path.home() / "src"]))
        fail(f"no git repositories found in {where}; run `coord init` in or above one, or give --search DIR",
             EXIT_REFUSED)
    name = machine or setup.machine_name()
    max_workers = 2
    if not yes:
        found = [r for r in found if typer.confirm(f"include {r.name} ({r.path})?", default=True)]
        if not found:
            fail("no repository chosen; nothing written", EXIT_REFUSED)
        name = typer.prompt("this machine's name", default=name)
        max_workers = typer.prompt("workers at once (concurrency.max_workers)", default=max_workers, type=int)
    try:
        text = setup.render(found, name, max_workers)
    except ValueError as exc:
        fail(str(exc), EXIT_REFUSED)
    project.write_private(path, text, mode=0o644)  # a new file, even if a symlink appeared meanwhile
    console.print(f"wrote {path}: {len(found)} repo(s) ({', '.join(r.name for r in found)}), machine {name}. "
                  f"Check it with `coord config`, then `coord config apply`.")
    # seed 003 kept coordinator.yml out of git: it names this machine's paths, and users put secrets in it
    ignored = project.exclude_file(path)
    if ignored:
        console.print(f"{path.name} is git-ignored through {ignored}.")

