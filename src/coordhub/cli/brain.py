"""Seed 003's planning verbs over the hub: ``coord plan``, ``coord approve``, ``coord split``.

``plan`` gathers on this machine (``gh issue list`` for repos with
``github:``; the hub's status for machines and work in flight), asks one
``claude -p`` session (:mod:`coordhub.orchestrator.brain`) and stores the
answer as proposals in the hub. ``approve`` queues them through the hub's
assign path and shows what the target machine's freshness check found.
``split`` creates a split proposal's sub-issues with ``gh`` here, recording
each in the hub as it goes. The rules live in ``coordhub.core.proposals``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from coordhub.cli.common import EXIT_CONFLICT, EXIT_REFUSED, EXIT_USAGE, JSON_OPT, call, fail, show
from coordhub.cli.orchestrator import ENDED, orch
from coordhub.cli.output import console
from coordhub.hooks.untrusted import one_line
from coordhub.orchestrator import brain
from coordhub.orchestrator.github import GhMissing, GitHub, GitHubError

LIVE = ("queued", "dispatched", "running", "stuck", "needs_input")
SPLIT_MARK = "<!-- coord:split parent={parent} proposal={pid} child={index} -->"
PARENT_MARK = "<!-- coord:split parent={parent} proposal={pid} -->"


def _ids(values: list[str]) -> list[int]:
    """``3,4 5`` → ``[3, 4, 5]``; a usage error for anything that is not a proposal id."""
    out = []
    for part in ",".join(values).split(","):
        if part.strip():
            if not part.strip().isdigit():
                fail(f"{part.strip()!r} is not a proposal id (ids are numbers: coord approve 3,4)", EXIT_USAGE)
            out.append(int(part))
    if not out:
        fail("give at least one proposal id", EXIT_USAGE)
    return out


def _github(config: dict[str, Any], repo: str) -> str | None:
    return next((r.get("github") for r in config.get("repos") or [] if r.get("name") == repo), None)


# ---- plan ------------------------------------------------------------------------------------------

def _gather(ctx: typer.Context, repo: str | None) -> tuple[brain.Situation, list[str]]:
    """The situation the brain is told about, and notes for the user (repos without GitHub, gh failures)."""
    config = (call(ctx, lambda c: orch(c).config()) or {}).get("config")
    if not config:
        fail("the hub has no coordinator.yml yet (`coord config apply`)", EXIT_REFUSED)
    names = [r["name"] for r in config.get("repos") or []]
    if repo is not None and repo not in names:
        fail(f"unknown repo {repo!r}; coordinator.yml has {', '.join(names)}", EXIT_USAGE)
    status = call(ctx, lambda c: orch(c).status())
    merges = call(ctx, lambda c: orch(c).merges())
    pending = call(ctx, lambda c: orch(c).proposals(state="pending"))
    flight = [a for a in status.get("queue", []) + status.get("assignments", []) if a.get("state") in LIVE]
    flight += [{"repo": e["repo"], "issue": e["issue"], "state": f"merge queue: {e['state']}", "machine": None}
               for e in merges.get("queue", []) + merges.get("fixing", []) + merges.get("needs_input", [])]
    taken = {(a["repo"], a["issue"]) for a in flight}
    issues: dict[str, list[dict[str, Any]]] = {}
    notes = []
    for name in [repo] if repo else names:
        slug = _github(config, name)
        if not slug:
            notes.append(f"{name}: no github: in coordinator.yml, so no issues to plan from")
            continue
        try:
            rows = GitHub(slug).json("issue", "list", "--state", "open", "--limit", str(brain.MAX_ISSUES),
                                     "--json", brain.ISSUE_FIELDS)
        except GitHubError as exc:
            notes.append(f"{name}: gh issue list failed ({exc.message.splitlines()[0] if exc.message else exc.code}); "
                         "not planned")
            continue
        issues[name] = [i for i in (brain.clean_issue(r) for r in rows if isinstance(r, dict))
                        if (name, i["number"]) not in taken]
    situation = brain.Situation(config=config, issues=issues, machines=status.get("machines", []), in_flight=flight,
                                pending={(p["repo"], p["issue"]) for p in pending})
    return situation, notes


def _show_proposal(p: dict[str, Any]) -> None:
    pid = p["id"] if p.get("id") is not None else "-"
    title = f": {p['title']}" if p.get("title") else ""
    if p["kind"] == "assign":
        console.print(one_line(f"{pid}. assign {p['repo']}#{p['issue']}{title} → {p['machine'] or 'any machine'}, "
                               f"model {p['model'] or '(the config decides)'}"))
    else:
        console.print(one_line(f"{pid}. split {p['repo']}#{p['issue']}{title} into {len(p['children'])}: "
                               + "; ".join(c["title"] for c in p["children"])))
    if p.get("rationale"):
        console.print(one_line(f"   why: {p['rationale']}"))


def plan(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the proposals; store nothing."),
    repo: str | None = typer.Option(None, "--repo", help="Plan only this repo's issues."),
    model: str | None = typer.Option(None, "--model", help="The planner's model (default: the Claude CLI's)."),
    claude: str = typer.Option("claude", "--claude", help="The Claude Code CLI to run (a name on PATH or a path)."),
    timeout: float = typer.Option(brain.TIMEOUT_SECONDS, "--timeout", min=1.0, help="Seconds the planner may take."),
    as_json: bool = JSON_OPT,
) -> None:
    """Ask a Claude session which open issues to start, where, with which model, and which to split.

    What it reads: open issues of repos with `github:` (gh issue list, here), machines and work in flight (hub).

    How it asks: one `claude -p --output-format json --json-schema …` on this machine, with your credentials.

    The answer must be a valid JSON plan of those issues; anything else is an error (exit 1) and stores nothing.

    Next: `coord approve ID…` queues assignments, `coord split ID…` creates sub-issues.

    Examples: coord plan --dry-run | coord plan --repo api | coord approve 3,4 --auto-pull
    """
    situation, notes = _gather(ctx, repo)
    for note in notes:
        print(one_line(f"note: {note}"), file=sys.stderr)
    if not situation.open_count():
        show({"plan_id": None, "dry_run": dry_run, "superseded": [], "proposals": []}, as_json,
             lambda _: console.print("no open issues to plan"))
        return
    try:
        answer = brain.ask(claude, brain.prompt(situation), model, timeout=timeout)
        proposals = brain.check(answer, situation)
    except brain.BrainError as exc:
        fail(f"coord plan: {exc.message}; nothing stored", EXIT_REFUSED)
    stored = call(ctx, lambda c: orch(c).propose(proposals, dry_run=dry_run))

    def human(d: dict[str, Any]) -> None:
        if not d["proposals"]:
            console.print("the brain proposed nothing")
        for p in d["proposals"]:
            _show_proposal(p)
        if d["dry_run"]:
            console.print(f"dry run: {len(d['proposals'])} proposal(s), nothing stored")
        else:
            console.print(f"stored plan {d['plan_id']}: {len(d['proposals'])} pending proposal(s)"
                          + (f"; superseded {', '.join(map(str, d['superseded']))}" if d["superseded"] else ""))
    show(stored, as_json, human)


# ---- approve ---------------------------------------------------------------------------------------

def _assignment(ctx: typer.Context, assignment_id: str) -> dict[str, Any]:
    return dict(call(ctx, lambda c: orch(c).assignment(assignment_id)))


def _await_freshness(ctx: typer.Context, results: list[dict[str, Any]], wait: float) -> None:
    """Fill each result's ``freshness`` with what its machine's check found, waiting up to ``wait`` seconds for
    workers to start (the check runs on the target machine just before the worker)."""
    deadline = time.monotonic() + wait
    todo = [r for r in results if r["depends_on"] and not r["already"]]
    for r in results:
        r["freshness"] = {"checked": not r["depends_on"], "notes": [], "stale": []}
    while todo:
        for r in list(todo):
            a = _assignment(ctx, str(r["assignment"]["id"]))
            notes = (a.get("freshness") or {}).get("notes")
            if notes is not None:
                r["freshness"] = {"checked": True, "machine": a.get("ran_on"), "notes": notes,
                                  "stale": [n for n in notes if "STALE" in n]}
                todo.remove(r)
            elif a["state"] in ENDED:
                todo.remove(r)
        if todo and time.monotonic() < deadline:
            time.sleep(0.5)
        else:
            break


def approve(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="IDS", help="Proposal ids: 3,4 or 3 4."),
    auto_pull: bool = typer.Option(False, "--auto-pull", help="On the target machine, `git pull --ff-only` each "
                                                              "stale dependency repo before the worker starts."),
    skip_freshness: bool = typer.Option(False, "--skip-freshness", help="Do not check the dependency repos."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Make every check (as `coord assign --dry-run`); "
                                                          "queue nothing."),
    wait: float = typer.Option(30.0, "--wait", min=0.0, help="Seconds to wait for the freshness check to report "
                                                             "(0: do not wait; `coord log ID` shows it later)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Queue proposed assignments, exactly as `coord assign` would (same checks, same queue).

    All or nothing: exit 4 when one is refused (upstream work in flight, already assigned, superseded).

    Approving a proposal again shows its assignment and queues nothing.

    Freshness: before the worker starts, its machine compares each repo this one depends on with its origin;
    stale ones are warnings here. --auto-pull fast-forwards them first; --skip-freshness checks none.

    Example: coord approve 3,4 --auto-pull
    """
    if auto_pull and skip_freshness:
        fail("give at most one of --auto-pull and --skip-freshness", EXIT_USAGE)
    numbers = _ids(ids)
    answer = call(ctx, lambda c: orch(c).approve(numbers, auto_pull=auto_pull, skip_freshness=skip_freshness,
                                                 dry_run=dry_run))
    results = answer["results"]
    if wait > 0 and not dry_run:
        _await_freshness(ctx, results, wait)

    def human(d: dict[str, Any]) -> None:
        for r in d["results"]:
            p, a = r["proposal"], r["assignment"]
            if d.get("dry_run"):
                console.print(one_line(f"dry run: {p['id']} would queue {a['repo']}#{a['issue']} at position "
                                       f"{a['position']} on {a.get('machine') or 'any machine'}, model {a['model']}"))
                continue
            verb = "already approved" if r["already"] else "approved"
            console.print(one_line(f"{verb} {p['id']}: {a['repo']}#{a['issue']} → assignment {a['id']} "
                                   f"({a['state']}, {a.get('ran_on') or a.get('machine') or 'any machine'}, "
                                   f"model {a['model']})"))
            f = r.get("freshness") or {}
            if skip_freshness:
                console.print("   freshness: skipped (--skip-freshness)")
            elif r["depends_on"] and not f.get("checked"):
                console.print(f"   freshness of {', '.join(r['depends_on'])}: not checked yet (the worker has not "
                              f"started); `coord log {a['id']}` shows it")
            for note in f.get("notes") or []:
                prefix = "   warning: " if "STALE" in note else "   freshness: "
                console.print(one_line(f"{prefix}{f.get('machine') or '?'}: {note}"))
            if f.get("stale") and not auto_pull:
                console.print("   (pull it on that machine, or approve with --auto-pull next time)")
    show(answer, as_json, human)


# ---- split -----------------------------------------------------------------------------------------

def _number(url: str) -> int:
    tail = url.strip().rstrip("/").rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise GitHubError(1, f"gh issue create printed {url[:200]!r}, not an issue URL")
    return int(tail)


def _record(ctx: typer.Context, pid: int, index: int, issue: dict[str, Any]) -> None:
    """Tell the hub child ``index`` of proposal ``pid`` is ``issue`` (``{number, url}``), before anything else."""
    call(ctx, lambda c: orch(c).record_split(pid, [{"index": index, **issue}]))


def _split_one(ctx: typer.Context, config: dict[str, Any], pid: int) -> dict[str, Any]:
    """Create the missing sub-issues of split proposal ``pid``, comment on the parent once, close the split."""
    p = call(ctx, lambda c: orch(c).proposal(pid))
    if p["kind"] != "split":
        fail(f"proposal {pid} is an assignment: approve it with `coord approve {pid}`", EXIT_REFUSED)
    if p["state"] == "split":
        return {**p, "made": [], "dropped_labels": []}
    if p["state"] != "pending":
        fail(f"proposal {pid} is {p['state']}: nothing to split", EXIT_CONFLICT)
    slug = _github(config, p["repo"])
    if not slug:
        fail(f"repo {p['repo']} has no github: in coordinator.yml; a split creates GitHub issues", EXIT_REFUSED)
    gh = GitHub(slug)
    parent = p["issue"]
    created = {int(k): v for k, v in (p.get("created") or {}).items()}
    if len(created) < len(p["children"]):  # a run that died after creating, before recording: find its issues
        # Only this gh account's: anyone may open an issue carrying a marker, and the ids in it are easy to guess.
        rows = gh.json("issue", "list", "--state", "all", "--author", "@me", "--limit", "1000", "--json",
                       "number,body,url")
        for i in range(len(p["children"])):
            mark = SPLIT_MARK.format(parent=parent, pid=pid, index=i)
            hit = next((r for r in rows if i not in created and mark in str(r.get("body") or "")), None)
            if hit is not None:
                created[i] = {"number": hit["number"], "url": hit.get("url")}
                _record(ctx, pid, i, created[i])
    made, dropped = [], set()
    known = {str(x.get("name")) for x in gh.json("label", "list", "--limit", "500", "--json", "name")} \
        if len(created) < len(p["children"]) else set()
    for i, child in enumerate(p["children"]):
        if i in created:
            continue
        dropped |= {lab for lab in child.get("labels") or [] if lab not in known}  # gh refuses unknown labels
        body = (f"{child['body'].rstrip()}\n\nPart of #{parent} (split by coord, proposal {pid}).\n\n"
                + SPLIT_MARK.format(parent=parent, pid=pid, index=i))
        labels = [x for label in child.get("labels") or [] if label in known for x in ("--label", label)]
        url = gh.run("issue", "create", "--title", child["title"], "--body-file", "-", *labels, stdin=body).stdout
        created[i] = {"number": _number(url), "url": url.strip()}
        made.append(created[i]["number"])
        _record(ctx, pid, i, created[i])
    mark = PARENT_MARK.format(parent=parent, pid=pid)
    if not any(c.get("viewerDidAuthor") is True and mark in str(c.get("body") or "") for c in gh.comments(parent)):
        lines = "\n".join(f"- [ ] #{created[i]['number']} {c['title']}" for i, c in enumerate(p["children"]))
        gh.comment(parent, f"Split into sub-issues (coord, proposal {pid}):\n\n{lines}\n\n{mark}")
    done = call(ctx, lambda c: orch(c).record_split(pid, [], done=True))
    return {**done, "made": made, "dropped_labels": sorted(dropped)}


def split(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="IDS", help="Split proposal ids: 5,6 or 5 6."),
    as_json: bool = JSON_OPT,
) -> None:
    """Create the sub-issues a split proposal names, with `gh issue create` on this machine.

    The parent's body is never changed: it gets one comment listing the sub-issues ("Part of #N" in each).

    Safe to run again: each issue is recorded in the hub as soon as it exists, so a retry adds only what is missing.

    Example: coord split 5
    """
    config = (call(ctx, lambda c: orch(c).config()) or {}).get("config") or {}
    done = []
    for pid in _ids(ids):
        try:
            done.append(_split_one(ctx, config, pid))
        except (GhMissing, GitHubError) as exc:
            fail(one_line(f"coord split {pid}: gh failed: {exc.message}; run it again to continue"), EXIT_REFUSED)

    def human(rows: list[dict[str, Any]]) -> None:
        for d in rows:
            numbers = ", ".join(f"#{v['number']}" for _, v in sorted(d["created"].items(), key=lambda kv: int(kv[0])))
            new = f" (created now: {', '.join(f'#{n}' for n in d['made'])})" if d["made"] else " (nothing new)"
            console.print(one_line(f"split {d['id']}: {d['repo']}#{d['issue']} → {numbers}{new}"))
            if d["dropped_labels"]:
                console.print(one_line(f"   labels the repository does not have, left off: "
                                       f"{', '.join(d['dropped_labels'])}"))
    show(done, as_json, human)
