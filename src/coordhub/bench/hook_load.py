"""The ``hook`` scenario: ``coord-hook pre-tool-use`` end to end, as Claude Code pays for it.

Each run starts the installed ``coord-hook`` (the command ``coord install-hooks``
writes), feeds it a PreToolUse payload for an Edit on stdin and waits for it
to exit, interpreter start included, one run at a time. Cases, ``runs`` each
after ``warmup`` unmeasured runs:

* ``python -c pass``: the interpreter's own start, the floor;
* ``import only``: importing the hook's modules, no hub call;
* ``free file``: the hook asks the hub and allows the edit (prints nothing).
  **The headline**: DESIGN.md §6 asks for p50 ≤ 80 ms;
* ``held file``: another session leases the file; the hook prints the deny;
* ``hub down``: nothing listens at ``COORD_URL``; the fail-open path.

A run that exits non-zero, or allows what it should deny (or the reverse),
counts as an error. Percentiles are nearest-rank, in ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from coordhub.bench.driver import Tick, phase
from coordhub.bench.scenarios import Context
from coordhub.bench.stats import Series, percentile
from coordhub.bench.target import free_port, mint_tokens
from coordhub.hooks.install import hook_command

TARGET_P50_MS = 80.0
HEADLINE = "free file"


def _measure(cmd: list[str], stdin: bytes, env: dict[str, str], cwd: Path, denies: bool | None, runs: int,
             warmup: int, tick: Tick) -> dict[str, Any]:
    """Run ``cmd`` ``warmup + runs`` times, one after the other; the measured runs' summary."""
    series = Series()
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, input=stdin, capture_output=True, env=env, cwd=cwd)
        elapsed = time.perf_counter() - t0
        tick((i + 1) / (warmup + runs))
        if i < warmup:
            continue
        if p.returncode != 0 or (denies is not None and bool(p.stdout.strip()) != denies):
            series.fail(f"exit {p.returncode}, stdout {p.stdout.decode()[:150]!r}, stderr {p.stderr.decode()[-150:]!r}")
            continue
        series.latencies.append(elapsed)
    out = series.summary(0.0)
    out["ops_per_s"] = None  # one run at a time: a rate would only restate the latency
    lat = sorted(series.latencies)
    p90 = percentile(lat, 90)
    out["p90_ms"] = None if p90 is None else round(p90 * 1000, 2)
    out["mean_ms"] = round(sum(lat) / len(lat) * 1000, 2) if lat else None
    return out


async def hook(ctx: Context, runs: int = 50, warmup: int = 5) -> dict[str, Any]:
    """Every case ``runs`` times against ``ctx.target``; headline: the free file.

    The runs are blocking subprocess calls made from this coroutine on purpose:
    nothing else runs on the loop, and a thread hand-off would only add noise.
    """
    (_, mine), (_, theirs) = await mint_tokens(ctx.target, f"HOOK-{ctx.run_id}", 2)
    project = f"bench-{ctx.run_id}"
    async with httpx2.AsyncClient(base_url=ctx.target.url, timeout=30.0,
                                  headers={"Authorization": f"Bearer {theirs}"}) as other:
        r = await other.post("/api/coord/locks", json={"project_key": project, "resource": "src/held/",
                                                        "description": "bench", "ttl_hours": 1})
        r.raise_for_status()
    with tempfile.TemporaryDirectory(prefix="coord-bench-hook-") as tmp:
        work = Path(tmp)
        root = work / project
        (root / ".git").mkdir(parents=True)  # a git working tree is all the hook looks for
        (work / "home").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COORD_", "CLAUDE_"))}
        env.update(HOME=str(work / "home"), COORD_URL=ctx.target.url, COORD_TOKEN=mine)
        down = {**env, "COORD_URL": f"http://127.0.0.1:{free_port()}"}
        command = [*hook_command(), "pre-tool-use"]

        def payload(rel: str) -> bytes:
            return json.dumps({
                "session_id": "bench", "transcript_path": str(work / "t.jsonl"), "cwd": str(root),
                "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Edit",
                "tool_input": {"file_path": str(root / rel), "old_string": "a", "new_string": "b",
                               "replace_all": False},
                "tool_use_id": "toolu_bench"}).encode()

        cases: dict[str, tuple[list[str], bytes, dict[str, str], bool | None]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], b"", env, None),
            "import only": ([sys.executable, "-c", "import coordhub.hooks.run, coordhub.hooks.edits"], b"", env,
                            None),
            HEADLINE: (command, payload("src/free/app.py"), env, False),
            "held file": (command, payload("src/held/app.py"), env, True),
            "hub down (fail-open)": (command, payload("src/held/app.py"), down, False),
        }
        results = {name: _measure(cmd, stdin, e, root, denies, runs, warmup, phase(ctx.tick, k, len(cases)))
                   for k, (name, (cmd, stdin, e, denies)) in enumerate(cases.items())}
    return {"headline": results[HEADLINE], "headline_is": f"{HEADLINE} p50", "command": " ".join(command),
            "runs": runs, "warmup": warmup, "cases": results}
