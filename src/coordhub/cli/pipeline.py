"""Seed 003's pipeline verbs over the hub: test, review, fix, accept, stages, done (issue 12).

Thin front ends over :class:`coordhub.client.orchestrator.OrchestratorClient`;
the rules are the hub's (``coordhub.core.stages``). ``coord test`` runs the
smoke test on a capable host (the hub picks it) — not on this machine as
seed 003 did — and its verdict is the command's exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coordhub.cli import views
from coordhub.cli.common import EXIT_USAGE, JSON_OPT, call, fail, read_text_arg, show
from coordhub.cli.orchestrator import orch
from coordhub.cli.output import console, verbatim
from coordhub.hooks.untrusted import one_line


def _run_line(r: dict[str, Any]) -> str:
    what = f"{r['stage']} run {r['id']} of {r['assignment_id']}: {r['state']}"
    if r["stage"] == "test" and r["exit_code"] is not None:
        what += f" (exit {r['exit_code']})"
    if r["verdict"] and r["stage"] == "review":
        what += f" ({r['verdict']}, {len(r['findings'])} finding(s))"
    if r["machine"]:
        what += f" on {r['machine']}"
    if r.get("cost_usd"):  # a review's claude, every attempt of the run (a host stopped mid-review spent too)
        what += f", ${r['cost_usd']:.2f}"
    if r["reason"] and r["state"] in ("dispatched", "running"):
        # the reason is why an earlier attempt ended (its host went away): "running on laptop: host_restarted: …"
        # read as this attempt's trouble
        what += f", attempt {r['attempt']} (before it: {r['reason']})"
    elif r["reason"]:
        what += f": {r['reason']}"
    return one_line(what)


def test(
    ctx: typer.Context,
    assignment_id: str = typer.Argument(..., help="Assignment id."),
    passed: bool = typer.Option(False, "--passed", help="Record the smoke test as passed (a human's verdict)."),
    failed: bool = typer.Option(False, "--fail", help="Record the smoke test as failed (a human's verdict)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (with --passed/--fail; a failure's reason goes to "
                                                             "the fix worker)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Run the branch's smoke test on a capable host, or record a verdict (seed 003 `test`)."""
    if passed and failed:
        fail("give --passed or --fail, not both", EXIT_USAGE)
    if reason and not (passed or failed):
        fail("--reason goes with --passed or --fail", EXIT_USAGE)
    verdict = "passed" if passed else "failed" if failed else None
    r = call(ctx, lambda c: orch(c).test(assignment_id, verdict, reason))
    show(r, as_json, lambda x: console.print(_run_line(x)))


def review(ctx: typer.Context, assignment_id: str = typer.Argument(..., help="Assignment id."),
           as_json: bool = JSON_OPT) -> None:
    """Run an adversarial review of the branch now (a fresh read-only Claude session, another machine if any)."""
    r = call(ctx, lambda c: orch(c).review(assignment_id))
    show(r, as_json, lambda x: console.print(_run_line(x)))


def fix(
    ctx: typer.Context,
    assignment_id: str = typer.Argument(..., help="Assignment id."),
    guidance: str | None = typer.Option(None, "--guidance", help="What the fix worker should do besides the "
                                                                 "failure's findings."),
    guidance_file: Path | None = typer.Option(None, "--guidance-file", help="Read the guidance from a file."),
    as_json: bool = JSON_OPT,
) -> None:
    """Dispatch a fix worker on the same branch with the last failure's findings, the model escalated."""
    text = read_text_arg(guidance, guidance_file, "guidance") if guidance or guidance_file else None
    a = call(ctx, lambda c: orch(c).fix(assignment_id, text))
    show(a, as_json, lambda x: console.print(f"fix round {x['fix_round']} of {x['id']} queued with model "
                                             f"{x['model']} (then the {x['fix_stage']} stage runs again)"))


def accept(ctx: typer.Context, assignment_id: str = typer.Argument(..., help="Assignment id."),
           as_json: bool = JSON_OPT) -> None:
    """Pass the human approval gate (require_approval): the branch goes on to merge."""
    a = call(ctx, lambda c: orch(c).accept(assignment_id))
    show(a, as_json, lambda x: console.print(f"{x['id']} accepted; stage {x['stage']}"))


def stages(ctx: typer.Context, assignment_id: str = typer.Argument(..., help="Assignment id."),
           as_json: bool = JSON_OPT) -> None:
    """An assignment's pipeline: its stage, the gates of its repo, every smoke test and review with evidence."""
    v = call(ctx, lambda c: orch(c).stages(assignment_id))

    def human(x: dict[str, Any]) -> None:
        console.print(one_line(f"{x['assignment_id']}: {x['state']}, stage {x['stage']}"
                               + (f" ({x['stage_reason']})" if x["stage_reason"] else "")
                               + f"; gates {' → '.join(x['gates'])}; fix round {x['fix_round']}"))
        for r in x["runs"]:
            console.print("  " + _run_line(r))
            if r["stage"] == "test" and r["output_tail"] and r["state"] == "failed":
                verbatim("\n".join("    " + line for line in r["output_tail"].rstrip().splitlines()[-10:]))
            for f in r["findings"]:
                console.print(one_line(f"    - [{f['severity']}] {f['file'] or '-'}: {f['message']}"))

    show(v, as_json, human)


def done(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """End the session: run hooks.on_session_end (summary_report) and print the summary (seed 003 `done`)."""
    d = call(ctx, lambda c: orch(c).done())

    def human(x: dict[str, Any]) -> None:
        s = x["summary"]
        a = s["assignments"]
        console.print(f"since {views.shown_time(s['since']) or 'the start'}: {a['total']} assignment(s), "
                      f"{a['attempts']} attempt(s), {a['fix_rounds']} fix round(s)")
        console.print("  by state: " + (", ".join(f"{k} {v}" for k, v in sorted(a["by_state"].items())) or "-"))
        console.print("  by stage: " + (", ".join(f"{k} {v}" for k, v in sorted(a["by_stage"].items())) or "-"))
        for stage, counts in s["runs"].items():
            console.print(f"  {stage} runs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        merged = ", ".join(f"{m['repo']}#{m['issue']}" for m in s["merged"]) or "none"
        console.print(f"  merged: {merged}")
        c = s["cost"]
        console.print(f"  cost ${c['total_usd']:.2f}: by model "
                      + (", ".join(f"{k} ${v:.2f}" for k, v in c["by_model"].items()) or "-") + "; by machine "
                      + (", ".join(f"{k} ${v:.2f}" for k, v in c["by_machine"].items()) or "-"))
        for h in x["hooks"]:
            console.print(f"  hook {h['hook']}: {h['status']}")

    show(d, as_json, human)
