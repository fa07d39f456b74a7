"""The ``cli`` scenario: what an agent pays to start ``coord``, against a bare interpreter in the same run.

Issue 7 point 18 sets the target as ratios of p50 wall time, measured side by
side: ``coord --version`` ≤ 3× and ``coord msg inbox`` / ``coord lock list``
against a local hub ≤ 6× ``python -c pass``. Each run starts the installed
``coord`` console script (interpreter start included) as a session with its own
token, in an isolated HOME, one process at a time; the cases are interleaved
(one run of each, then the next round), so machine load drifts over all of them
alike. The session has three unread messages and three live leases, so
``msg inbox`` prints banners and ``lock list`` prints its table, as agents see
them; both are served by the standard-library fast path
(:mod:`coordhub.cli.fast`). Two more cases import only ``typer`` and only
``httpx2``, the CLI framework and the HTTP client of every other command that
reaches the hub: their ratios are floors for those commands.
Percentiles are nearest-rank, in ms; a run that exits non-zero counts as an
error. ``bytecode_cached`` says whether coordhub's modules had bytecode caches:
an install has them, while a source tree run under ``PYTHONDONTWRITEBYTECODE``
has none, and then every run compiles what it imports (tens of ms).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from coordhub.bench.scenarios import Context
from coordhub.bench.stats import Series, percentile
from coordhub.bench.target import mint_tokens

FLOOR = "python -c pass"
TARGETS = {"coord --version": 3.0, "coord msg inbox": 6.0, "coord lock list": 6.0}  # × the floor's p50
FLOOR_IMPORTS = ("typer", "httpx2")  # what any command that reaches the hub imports at least


def coord_command() -> list[str]:
    """How to run ``coord``: the console script next to ``sys.executable``, else ``python -m coordhub``."""
    beside = Path(sys.executable).parent / ("coord.exe" if os.name == "nt" else "coord")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "coordhub"]


def bytecode_cached() -> bool:
    """Whether the CLI's entry modules have their bytecode caches next to them (see the module docstring)."""
    import importlib.util

    import coordhub.cli.entry
    import coordhub.cli.fast

    return all(os.path.exists(importlib.util.cache_from_source(m.__file__ or ""))
               for m in (coordhub.cli.entry, coordhub.cli.fast))


def _summary(series: Series) -> dict[str, Any]:
    lat = sorted(series.latencies)
    out = series.summary(0.0)
    out["ops_per_s"] = None  # one run at a time: a rate would only restate the latency
    p90 = percentile(lat, 90)
    out["p90_ms"] = None if p90 is None else round(p90 * 1000, 2)
    return out


async def _seed(ctx: Context, session: str, token: str, project: str) -> None:
    """Three unread messages for ``session`` and three leases it holds."""
    async with httpx2.AsyncClient(base_url=ctx.target.url, timeout=30.0,
                                  headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(3):
            r = await c.post("/api/coord/messages", json={"to_session": session, "subject": f"bench note {i}",
                                                          "body": "a short body\nover two lines"})
            r.raise_for_status()
            r = await c.post("/api/coord/locks", json={"project_key": project, "resource": f"src/mod{i}/",
                                                       "description": "bench", "ttl_hours": 1})
            r.raise_for_status()


async def cli(ctx: Context, runs: int = 50, warmup: int = 3) -> dict[str, Any]:
    """Every case ``runs`` times, interleaved, against ``ctx.target``; headline: ``coord msg inbox``.

    The runs are blocking subprocess calls made from this coroutine on purpose:
    nothing else runs on the loop, and a thread hand-off would only add noise.
    """
    ((session, token),) = await mint_tokens(ctx.target, f"CLI-{ctx.run_id}", 1)
    await _seed(ctx, session, token, f"bench-{ctx.run_id}")
    coord = coord_command()
    cases = {FLOOR: [sys.executable, "-c", "pass"], "coord --version": [*coord, "--version"],
             "coord msg inbox": [*coord, "msg", "inbox"], "coord lock list": [*coord, "lock", "list"],
             **{f"import {m} (floor)": [sys.executable, "-c", f"import {m}"] for m in FLOOR_IMPORTS}}
    series = {name: Series() for name in cases}
    with tempfile.TemporaryDirectory(prefix="coord-bench-cli-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COORD_", "CLAUDE_"))}
        env.update(HOME=tmp, COORD_URL=ctx.target.url, COORD_TOKEN=token)
        for i in range(warmup + runs):
            for name, cmd in cases.items():
                t0 = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, env=env, cwd=tmp)
                elapsed = time.perf_counter() - t0
                if i < warmup:
                    continue
                if p.returncode != 0:
                    series[name].fail(f"{name}: exit {p.returncode}, stderr {p.stderr.decode()[-200:]!r}")
                else:
                    series[name].latencies.append(elapsed)
            ctx.tick((i + 1) / (warmup + runs))
    results = {name: _summary(s) for name, s in series.items()}
    floor = results[FLOOR]["p50_ms"]
    ratios = {name: None if floor is None or results[name]["p50_ms"] is None
              else round(results[name]["p50_ms"] / floor, 2) for name in cases if name != FLOOR}
    met = {name: ratios[name] is not None and ratios[name] <= limit  # type: ignore[operator]
           for name, limit in TARGETS.items()}
    return {"headline": results["coord msg inbox"], "headline_is": "coord msg inbox p50",
            "command": " ".join(coord), "bytecode_cached": bytecode_cached(), "runs": runs, "warmup": warmup,
            "cases": results,
            "ratios": ratios, "ratio_targets": TARGETS, "targets_met": met}
