"""``coord merge``: the merge queue shown and driven by hand (seed 003's verb; the hub owns the queue, hosts do the
git work). Thin over ``POST/GET /api/coord/orchestrator/merges``."""

from __future__ import annotations

from typing import Any

import typer

from coordhub.cli.common import JSON_OPT, call, show
from coordhub.cli.orchestrator import orch
from coordhub.cli.output import console, verbatim
from coordhub.core.vocab import MergeMethod
from coordhub.hooks.untrusted import one_line


def _line(e: dict[str, Any]) -> str:
    where = f" on {e['machine']}" if e["state"] == "running" and e.get("machine") else ""
    pos = f"{e['position']:>2}. " if "position" in e else "    "
    extra = f" — {e['reason']}" if e.get("reason") else ""
    sha = f" → {e['merged_sha'][:12]}" if e.get("merged_sha") else ""
    return one_line(f"{pos}{e['id']} {e['repo']}#{e['issue']} {e['branch']} → {e['target']} [{e['method']}] "
                    f"{e['state']}{where}{sha}{extra}")


def _human(d: dict[str, Any]) -> None:
    if d.get("dry_run"):
        console.print("dry run: nothing written")
    for key, label in (("entered", "entered"), ("requeued", "back in the queue"), ("unchanged", "already queued")):
        if d.get(key):
            console.print(f"{label}: {', '.join(d[key])}")
    if d.get("ordered"):
        console.print(f"order now: {', '.join(d['ordered'])}")
    for title, key in (("queue", "queue"), ("fixing", "fixing"), ("waiting for a human", "needs_input"),
                       ("recent", "recent")):
        rows = d.get(key) or []
        if rows:
            console.print(f"{title}:")
            for e in rows:
                verbatim(_line(e))
    if "next" in d:
        console.print(f"next run: {', '.join(d['next'])}" if d["next"] else f"next run: none ({d.get('why')})")
    if not any(d.get(k) for k in ("queue", "fixing", "needs_input", "recent")):
        console.print("the merge queue is empty")


def merge(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID]...", help="Done assignments to enter into their repo's "
                                                                   "queue, or waiting entries to send back."),
    repo: str | None = typer.Option(None, "--repo", help="Show only this repo's queue."),
    method: MergeMethod | None = typer.Option(None, "--method", help="How the entries this call enters land "
                                                                     "(default: merge.method)."),
    order: str | None = typer.Option(None, "--order", help="Comma-separated queued entries (or their assignments) "
                                                           "to put first, in this order."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be entered and run next; write "
                                                          "nothing."),
    cancel: str | None = typer.Option(None, "--cancel", help="Take this entry out of the queue (its branch stays)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show and drive the merge queue (seed 003 `merge`): FIFO per repo and target, each branch rebased onto the
    target, gated at the tip and merged by a host; `coord agent` hosts run it, `--dry-run` only looks."""
    if method is not None and method not in ("rebase", "squash", "merge"):
        raise typer.BadParameter("use rebase, squash or merge", param_hint="--method")
    if cancel:
        e = call(ctx, lambda c: orch(c).cancel_merge(cancel))
        show(e, as_json, lambda x: verbatim(_line(x)))
        return
    order_ids = [x.strip() for x in order.split(",") if x.strip()] if order else []
    if not ids and not order_ids and not dry_run:
        d = call(ctx, lambda c: orch(c).merges(repo))
    else:
        d = call(ctx, lambda c: orch(c).merge(ids or [], repo=repo, method=method, order=order_ids,
                                              dry_run=dry_run))
    show(d, as_json, _human)


def pr(ctx: typer.Context, assignment_id: str = typer.Argument(..., help="A done assignment."),
       no_review: bool = typer.Option(False, "--no-review", help="Ask for no review run (the pipeline's review "
                                                                 "gate, when configured, still runs)."),
       as_json: bool = JSON_OPT) -> None:
    """Open the pull request of a done assignment's branch (seed 003 `pr`): a host with capability `github` opens
    it with its own gh, once (found by head and base if it exists); the URL shows in `coord notify`."""
    p = call(ctx, lambda c: orch(c).pr(assignment_id, review=not no_review))
    show(p, as_json, lambda x: console.print(f"PR of {x['assignment_id']} ({x['github']}#{x['issue']}) queued: "
                                             f"{x['state']}" + (f" {x['url']}" if x.get("url") else "")))


def notify(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Run the GitHub audit trail now (seed 003 `notify`): queue the comments new events call for; hosts with
    capability `github` post each once, with a marker. Shows what waits to be posted."""
    d = call(ctx, lambda c: orch(c).notify())

    def human(x: dict[str, Any]) -> None:
        console.print(f"queued {x['made']} post(s); waiting for a github host: {len(x['pending'])}")
        for p in x["pending"]:
            verbatim(one_line(f"  {p['key']} {p['kind']} {p['github']}#{p['issue']} {p['state']}"))

    show(d, as_json, human)
