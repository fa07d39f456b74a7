"""Latency of the edit hook as Claude Code pays it: ``coord-hook pre-tool-use``, process start included.

Each run starts the installed ``coord-hook`` console script (the command
``coord install-hooks`` writes), feeds it a PreToolUse payload for an Edit on
stdin and waits for it to exit, exactly as Claude Code does before every
Edit/Write/MultiEdit/NotebookEdit. Scenarios, ``--runs`` each (default 50),
after ``--warmup`` unmeasured runs:

* ``python -c pass``: the interpreter's own start-up, the floor;
* ``import only``: ``python -c "import coordhub.hooks.run, coordhub.hooks.edits"``;
* ``free file``: the hook asks the hub and prints nothing;
* ``held file``: another session leases the file; the hook prints the deny;
* ``hub down``: nothing listens at COORD_URL; the default fail-open path.

It reports p50/p90/p99 and mean in ms (nearest rank). The design target is
p50 ≤ 80 ms for the free and held files. By default it starts its own hub
(``python -m coordhub serve`` on a temp data dir, SQLite); ``--url`` and
``--token`` (an admin token, to mint the two sessions' tokens) use a running
one instead.

    python benchmarks/bench_hook.py
    python benchmarks/bench_hook.py --runs 200 --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from coordhub.hooks.install import hook_command

TARGET_P50_MS = 80.0


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    """One JSON call to the hub (standard library, so the driver itself stays small)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + "/api/coord" + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def start_hub(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start ``coord serve`` on a free port in ``workdir``; (process, url, admin token) once /health answers."""
    port = free_port()
    log = open(workdir / "hub.log", "wb")
    with log:
        proc = subprocess.Popen([sys.executable, "-m", "coordhub", "serve", "--log-level", "warning", "--port",
                                 str(port), "--data-dir", str(workdir / "hub")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: the hub exited {proc.returncode}:\n{(workdir / 'hub.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return proc, url, (workdir / "hub" / "admin.token").read_text().strip()
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("bench: the hub did not answer /health within 30 s")


def measure(cmd: list[str], stdin: bytes, env: dict[str, str], cwd: Path, runs: int, warmup: int,
            expect_out: bool | None) -> dict[str, Any]:
    """Run ``cmd`` ``warmup + runs`` times; percentiles of the measured runs' wall time in ms."""
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        p = subprocess.run(cmd, input=stdin, capture_output=True, env=env, cwd=cwd)
        elapsed = time.perf_counter() - start
        if p.returncode != 0 or (expect_out is not None and bool(p.stdout.strip()) != expect_out):
            raise SystemExit(f"bench: unexpected result from {cmd}: exit {p.returncode}\n"
                             f"stdout: {p.stdout.decode()}\nstderr: {p.stderr.decode()}")
        if i >= warmup:
            times.append(elapsed * 1000)
    times.sort()

    def pct(q: float) -> float:
        return round(times[min(len(times) - 1, int(q / 100 * len(times)))], 1)

    return {"runs": runs, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "mean_ms": round(sum(times) / len(times), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50, help="Measured runs per scenario (default 50).")
    ap.add_argument("--warmup", type=int, default=5, help="Unmeasured runs first (default 5).")
    ap.add_argument("--url", help="A running hub (default: start one).")
    ap.add_argument("--token", help="The running hub's admin token (with --url).")
    ap.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="coord-bench-hook-") as tmp:
        work = Path(tmp)
        proc = None
        if args.url:
            url, admin = args.url.rstrip("/"), args.token or ""
        else:
            proc, url, admin = start_hub(work)
        try:
            results = run(work, url, admin, args.runs, args.warmup)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
    report(results, args.json)


def run(work: Path, url: str, admin: str, runs: int, warmup: int) -> dict[str, Any]:
    """Set up two sessions and a project, then measure every scenario."""
    tag = uuid.uuid4().hex[:8]
    project = f"bench-{tag}"
    me, other = (api(url, admin, "POST", "/tokens", {"name": f"BENCH-{tag}/{n}"})["token"] for n in ("me", "other"))
    api(url, other, "POST", "/locks", {"project_key": project, "resource": "src/held/", "description": "bench",
                                       "ttl_hours": 1})
    root = work / project
    (root / ".git").mkdir(parents=True)  # a git working tree is all the hook looks for
    home = work / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COORD_", "CLAUDE_"))}
    env.update(HOME=str(home), COORD_URL=url, COORD_TOKEN=me)
    hook = [*hook_command(), "pre-tool-use"]

    def payload(rel: str) -> bytes:
        return json.dumps({
            "session_id": "bench", "transcript_path": str(work / "t.jsonl"), "cwd": str(root),
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Edit",
            "tool_input": {"file_path": str(root / rel), "old_string": "a", "new_string": "b", "replace_all": False},
            "tool_use_id": "toolu_bench"}).encode()

    down = {**env, "COORD_URL": f"http://127.0.0.1:{free_port()}"}
    scenarios = {
        "python -c pass": ([sys.executable, "-c", "pass"], b"", env, None),
        "import only": ([sys.executable, "-c", "import coordhub.hooks.run, coordhub.hooks.edits"], b"", env, None),
        "free file": (hook, payload("src/free/app.py"), env, False),
        "held file": (hook, payload("src/held/app.py"), env, True),
        "hub down (fail-open)": (hook, payload("src/held/app.py"), down, False),
    }
    return {"command": " ".join(hook), "hub": url, "target_p50_ms": TARGET_P50_MS,
            "scenarios": {name: measure(cmd, stdin, e, root, runs, warmup, out)
                          for name, (cmd, stdin, e, out) in scenarios.items()}}


def report(results: dict[str, Any], as_json: bool) -> None:
    """Print the results as a table (or JSON)."""
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(f"coord-hook pre-tool-use against {results['hub']}  ({results['command']})")
    print(f"{'scenario':<24}{'runs':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, r in results["scenarios"].items():
        print(f"{name:<24}{r['runs']:>6}{r['p50_ms']:>9}{r['p90_ms']:>9}{r['p99_ms']:>9}{r['mean_ms']:>9}")
    worst = max(results["scenarios"][s]["p50_ms"] for s in ("free file", "held file"))
    print(f"target: p50 ≤ {TARGET_P50_MS:g} ms for free and held files — "
          f"{'met' if worst <= TARGET_P50_MS else 'NOT met'} ({worst} ms)")


if __name__ == "__main__":
    main()
