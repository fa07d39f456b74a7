"""``coord bench``: measure a hub against the design targets (DESIGN.md §6)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from coordhub.cli.output import Console, console

SCENARIOS = ("lease", "lease-contended", "message", "turn", "broadcast", "inbox", "push", "mcp", "hook", "cli", "soak",
             "lease-scale", "dispatch")
DEFAULT = ("lease", "message")
ALL = tuple(s for s in SCENARIOS if s not in ("soak", "lease-scale"))  # the long ones run only when named


def bench(
    scenario: list[str] = typer.Argument(None, help=f"Scenarios to run: {', '.join(SCENARIOS)}, or all "
                                                     f"(every one but soak; default: {' '.join(DEFAULT)})."),
    clients: int | None = typer.Option(None, "--clients", min=1, help="Simulated agents (default 64; inbox 1, "
                                                                      "mcp 32, soak 500)."),
    duration: float | None = typer.Option(None, "--duration", min=0.5, help="Seconds per scenario phase (default "
                                                                           "10; soak 600)."),
    url: str | None = typer.Option(None, "--url", help="Measure the hub at this URL instead of starting one "
                                                       "(its per-token rate limit then applies)."),
    token: str | None = typer.Option(None, "--token", help="Admin token of the hub at --url."),
    database_url: str | None = typer.Option(None, "--database-url", help="Start hubs on this database."),
    sqlite_synchronous: str | None = typer.Option(None, "--sqlite-synchronous", help="FULL or NORMAL."),
    ceiling: bool = typer.Option(True, "--ceiling/--no-ceiling", help="Also measure the in-memory ceiling "
                                                                      "(lease, message, turn, mcp) and report the "
                                                                      "ratio."),
    messages: int = typer.Option(1_000_000, "--messages", min=1000, help="Stored messages for the inbox scenario."),
    subscribers: int = typer.Option(1000, "--subscribers", min=1, help="SSE subscribers for the push scenario."),
    hubs: int = typer.Option(1, "--hubs", min=1, max=16, help="push: start this many hubs on --database-url "
                                                              "(PostgreSQL), send through the first and stream "
                                                              "from the others (cross-hub push latency)."),
    workers: int = typer.Option(1, "--workers", min=1, max=8, help="Start each hub as this many serving processes "
                                                                  "(coord serve --workers N); its CPU and memory "
                                                                  "are summed over them."),
    writer_process: bool = typer.Option(False, "--writer-process", help="With --workers: each hub also runs its "
                                                                        "writer process (coord serve "
                                                                        "--writer-process)."),
    rounds: int = typer.Option(1, "--rounds", min=1, max=15, help="With --driver wrk, run lease, message and "
                                                                  "turn this many times, each on a fresh hub and "
                                                                  "ceiling; report the round with the median ratio and "
                                                                  "every round's figures (the ratio of one round "
                                                                  "moves with whatever shares the cores)."),
    sessions: int = typer.Option(10_000, "--sessions", min=2, help="Registered sessions for the broadcast scenario."),
    runs: int = typer.Option(50, "--runs", min=1, help="Measured runs per case of the hook and cli scenarios, "
                                                       "requests per size of lease-scale, and operations "
                                                       "counted per case with --driver callgrind."),
    driver: str = typer.Option("python", "--driver", help="python (every scenario) or wrk: the C load driver "
                                                         "(Debian's wrk) for lease, message, turn and mcp "
                                                         "(each tool "
                                                         "as MCP and as REST: the CPU ratio), and a raw-socket "
                                                         "SSE receiver in its own process for push; both cost the "
                                                         "shared cores far less than the Python driver. Or "
                                                         "callgrind (valgrind) for lease, message and mcp: "
                                                         "instructions per operation, one at a time (--runs of "
                                                         "them; --clients and --duration do not apply), hub and "
                                                         "ceiling; the same count on a busy machine."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Drive a hub with simulated agents; report ops/s, p50/p95/p99, errors, RSS, and the ratio to the ceiling."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from coordhub.bench.runner import Options, run

    names = list(ALL) if scenario == ["all"] else (scenario or list(DEFAULT))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)} or all")
    if driver not in ("python", "wrk", "callgrind"):
        raise typer.BadParameter(f"--driver is python, wrk or callgrind, not {driver!r}")
    if driver == "callgrind":
        _callgrind_fits(names, url, workers, hubs)
    if driver == "wrk":
        from coordhub.bench.wrk import WrkMissing, available

        try:
            available()
        except WrkMissing as exc:
            raise typer.BadParameter(str(exc)) from None
    if rounds > 1 and driver != "wrk":
        raise typer.BadParameter("--rounds repeats the wrk-driven lease, message and turn scenarios: add --driver wrk")
    if bool(url) != bool(token):
        raise typer.BadParameter("--url and --token go together")
    opts = Options(clients, duration, url, token, database_url, sqlite_synchronous, ceiling and not url,
                   messages, subscribers, sessions, runs, driver, hubs, workers, rounds, writer_process)
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True).rich, transient=True) as bar:

        def progress(label: str) -> Any:
            task = bar.add_task(label, total=1.0)
            return lambda done: bar.update(task, completed=done)

        report = run(names, opts, progress)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _table(report)
    if any(r["headline"]["errors"] for r in report.values()) or any(r.get("lost_messages") for r in report.values()):
        raise typer.Exit(1)


def _callgrind_fits(names: list[str], url: str | None, workers: int, hubs: int) -> None:
    """Refuse what ``--driver callgrind`` cannot count (``typer.BadParameter`` saying why). It sends one request
    at a time, so ``--clients`` and ``--duration`` do not apply; ``--runs`` is how many it counts."""
    from coordhub.bench.instructions import SCENARIOS as COUNTED
    from coordhub.bench.instructions import CallgrindMissing, available

    other = [n for n in names if n not in COUNTED]
    if other:
        raise typer.BadParameter(f"--driver callgrind counts {', '.join(COUNTED)}, not {other[0]}")
    if url or workers > 1 or hubs > 1:
        raise typer.BadParameter("--driver callgrind counts one hub process it starts itself: drop "
                                 + ("--url" if url else "--workers" if workers > 1 else "--hubs"))
    try:
        available()
    except CallgrindMissing as exc:
        raise typer.BadParameter(str(exc)) from None


def _table(report: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(show_edge=False, header_style="bold")
    for col in ("scenario", "ops", "ops/s", "p50 ms", "p95 ms", "p99 ms", "errors", "RSS MiB", "ceiling ops/s",
                "ratio", "target"):
        t.add_column(col)
    for name, r in report.items():
        h = r["headline"]
        ceiling = r.get("ceiling", {}).get("headline", {}).get("ops_per_s")
        cells = [name, h["ops"], h["ops_per_s"], h["p50_ms"], h["p95_ms"], h["p99_ms"], h["errors"],
                 r.get("peak_rss_mib"), ceiling, r.get("ratio_to_ceiling"), r["target"]]
        t.add_row(*("-" if c is None else str(c) for c in cells))
    console.print(t)
    first = next(iter(report.values()))
    driver = {"wrk": "wrk (C), 2 threads on the same cores",
              "callgrind": "one request at a time; instructions counted by callgrind (user space only)"}.get(
        first.get("driver"), "one Python asyncio process on the same cores")
    console.print(f"backend {first['backend']} ({first['durability']}); driver: {driver}")
    for name, r in report.items():
        for line in _details(r):
            console.print(f"{name}: {line}")
        for sample in r["headline"].get("error_samples", []):
            console.print(f"{name} error sample: {sample}")


def _lat(s: dict[str, Any]) -> str:
    return f"p50 {s['p50_ms']} / p99 {s['p99_ms']} ms"


def _details(r: dict[str, Any]) -> list[str]:
    """What a scenario measured beyond its headline, one line each."""
    out = [f"headline = {r['headline_is']}"] if "headline_is" in r else []
    if "rounds" in r:  # --rounds: the table shows the median round
        ratios = [str(x["ratio_to_ceiling"]) for x in r["rounds"] if x["ratio_to_ceiling"] is not None]
        out.append(f"{len(r['rounds'])} rounds, the median shown; "
                   + (f"ratios {', '.join(ratios)}; " if ratios else "")
                   + "ops/s " + ", ".join(str(x["ops_per_s"]) for x in r["rounds"]))
    if "with_inbox" in r:  # message
        mixed = r["with_inbox"]
        out.append(f"with inbox fetches: send {mixed['send']['ops_per_s']}/s {_lat(mixed['send'])}, "
                   f"inbox {_lat(mixed['inbox'])}")
    if "no_history" in r:  # inbox
        out.append(f"{r['stored_messages']:,} messages stored in {r['fill_seconds']} s; a session with no history: "
                   f"{_lat(r['no_history']['inbox'])}")
    if "send_message" in r:  # mcp
        sends = r["send_message"]["send_message"]
        out.append(f"send_message {sends['ops_per_s']} calls/s {_lat(sends)}, errors {sends['errors']}")
    if "kinstr_per_op" in r:  # callgrind
        k = r["kinstr_per_op"]
        out.append(f"{k['hub']}k instructions per operation" + (
            f" (ceiling {k['ceiling']}k: ratio {r['ratio_to_ceiling']})" if k["ceiling"] is not None else ""))
    for tool, k in r.get("kinstr_per_call", {}).items():  # mcp, callgrind
        out.append(f"{tool}: {k['mcp']}k instructions per MCP call, {k['rest']}k per REST request (ratio "
                   f"{r['instruction_ratio_mcp_to_rest'][tool]}, target ≤ 1.5)")
    for tool, cpu in r.get("hub_cpu_us_per_call", {}).items():  # mcp
        if cpu["mcp"] is not None:
            out.append(f"{tool}: hub CPU {cpu['mcp']} µs per MCP call, {cpu['rest']} µs per REST request "
                       f"(ratio {r['cpu_ratio_mcp_to_rest'][tool]}, target ≤ 1.5)")
    if "cases" in r:  # hook, cli
        out += [f"{case}: p50 {c['p50_ms']} / p90 {c['p90_ms']} / p99 {c['p99_ms']} ms, errors {c['errors']}"
                for case, c in r["cases"].items()]
    if "ratios" in r:  # cli
        out += [f"{case}: {ratio}× python -c pass" + (f" (target ≤ {r['ratio_targets'][case]:g}×"
                f"{'' if r['targets_met'][case] else ', NOT MET'})" if case in r["ratio_targets"] else "")
                for case, ratio in r["ratios"].items()]
    if "burst" in r:  # dispatch
        b = r["burst"]
        out.append(f"{r['queued']} queued at once, drained by two hosts: {_lat(b)} (max wait in line), "
                   f"errors {b['errors']}")
    for point in r.get("curve", []):  # lease-scale
        out.append(f"{point['layout']} {point['size']:,}: claim {_lat(point['claim'])}, conflict check "
                   f"{_lat(point['conflicts'])} (filled in {point['fill_seconds']} s, hub {point['rss_mib']} MiB)")
    if "rss_mib_all_open" in r:  # push
        out.append(f"memory with every stream open: RSS {r['rss_mib_all_open']} MiB, PSS {r.get('pss_mib_all_open')} "
                   f"MiB; missing receipts {r['missing']}; "
                   f"first receipt of a broadcast p50 {r['first_receipt_p50_ms']} ms, max {r['max_ms']} ms")
        for who, x in (("hub", r), ("ceiling", r.get("ceiling"))):
            if x and x.get("sweep_p50_ms") is not None:
                out.append(f"{who}: send answered p50 {x['send_p50_ms']} ms; first receipt p50 "
                           f"{x['first_receipt_p50_ms']} ms; first to last receipt p50 {x['sweep_p50_ms']} ms"
                           + (f"; receipts {_lat(x['headline'])}" if who == "ceiling" else ""))
    if r.get("lost_messages") is not None:
        out.append(f"lost messages {r['lost_messages']}; read but never acked {r.get('read_unacked')}")
    if r.get("gc"):  # the hub's garbage-collection pauses (coord_gc_pause_seconds)
        g = r["gc"]
        out.append(f"GC: longest pause {g['longest_ms']} ms, costliest {g['longest_cpu_ms']} ms of CPU "
                   f"({g['pauses']} collections, {g['over_10_ms']} over 10 ms)")
    if r.get("hub_log") and r["hub_log"]["lines"]:
        out.append(f"the hub logged {r['hub_log']['lines']} warning/error lines, e.g. {r['hub_log']['samples'][0]}")
    if r.get("hub_cpu_us_per_request") is not None:  # wrk
        ceiling = r.get("ceiling", {}).get("hub_cpu_us_per_request")
        out.append(f"hub CPU {r['hub_cpu_us_per_request']} µs per request" +
                   (f" (ceiling {ceiling} µs)" if ceiling is not None else "") +
                   f"; wrk p75 {r['wrk']['p75_ms']} / p90 {r['wrk']['p90_ms']} ms")
    for writer, w in (r.get("writer") or {}).items():  # wrk: the hub's write batches during the run
        out.append(f"writer ({writer}): {w['batches']} batches of {w['units_per_batch']} units, COMMIT "
                   f"{w['commit_ms_mean']} ms on average ({w['commits_over_10_ms']} over 10 ms)" +
                   (f", {w['runs_again']} run again" if w.get("runs_again") else ""))
    cpu = next((x for x in (r, r.get("list_leases", {})) if x.get("driver_cpu_s") is not None), None)
    if cpu is not None:
        hub = "n/a (not started here)" if cpu["hub_cpu_s"] is None else f"{cpu['hub_cpu_s']} s"
        out.append(f"CPU over {cpu['seconds']} s: hub {hub}, driver {cpu['driver_cpu_s']} s")
    return out
