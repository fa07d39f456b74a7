"""Stage runs on the host: long-poll the hub for smoke tests and reviews, run each, report (issue 12 points 2–3).

Beside the worker poll, :class:`RunPoller` long-polls ``hosts/next-run``
while the host has a free slot (stage runs and workers share the host's
slots; the hub counts both). Each run gets a fresh detached worktree of
``origin/<branch>`` under the host's worktrees directory (a restarted host
cleans leftovers like any unrecorded worktree), runs
(:mod:`~coordhub.orchestrator.smoke` or :mod:`~coordhub.orchestrator.review`),
is removed, and its final report is sent until the hub takes it — so a run
finishing while the hub is down (kill -9) is reported when it is back. A 409
means the hub gave the run up (its host was thought lost, or a human
decided meanwhile): the result is dropped. Runs are short and cheap to
repeat, so a host that stops does not re-attach them: it ends each and
reports it ``error`` with a reason starting ``host_stopped``, which the hub
takes as no verdict and queues again (:data:`coordhub.core.stageruns.HOST_STOPPED`);
the hub re-queues the runs of a stale or restarted host that said nothing.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from typing import Any

from coordhub.client import Unreachable
from coordhub.core.stageruns import HOST_STOPPED
from coordhub.orchestrator import review, smoke, worktree
from coordhub.orchestrator.dispatch import check_id
from coordhub.orchestrator.environment import worker_env
from coordhub.orchestrator.link import Refused, Stale
from coordhub.orchestrator.worker import Context

log = logging.getLogger("coordhub.agent")

STOPPED = f"{HOST_STOPPED}: the host was stopped while it ran"


class RunPoller:
    """Polls for stage runs and runs them in threads; :meth:`count` is how many slots they hold."""

    def __init__(self, ctx: Context, free_slots: Any, incarnation: Any, paused: Any, poll_wait: float) -> None:
        self.ctx = ctx
        self._free_slots, self._incarnation, self._paused = free_slots, incarnation, paused
        self.poll_wait = poll_wait
        self.running: dict[str, threading.Thread] = {}
        self.mutex = threading.Lock()
        self.wake = threading.Event()

    def count(self) -> int:
        """Runs in progress on this host."""
        with self.mutex:
            return len(self.running)

    def loop(self) -> None:
        """Poll until the host stops (run in its own thread)."""
        delay = 1.0
        while not self.ctx.stopping.is_set():
            incarnation = self._incarnation()
            if self._free_slots() <= 0 or self._paused() or incarnation is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                payload = self.ctx.link.next_run(incarnation, self.poll_wait)
            except Unreachable as exc:
                log.warning("next-run: hub unreachable (%s); again in %.0f s", exc, delay)
                self.ctx.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            except Refused as exc:
                log.warning("next-run refused (%s)", exc)
                self.ctx.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if payload is not None:
                self.start(payload)

    def start(self, payload: dict[str, Any]) -> None:
        """Run one dispatched run in a thread."""
        run_id = str(payload.get("id"))
        t = threading.Thread(target=self._run, args=(payload,), name=f"run-{run_id}", daemon=True)
        with self.mutex:
            self.running[run_id] = t
        t.start()

    def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the runs in progress to end and deliver their reports (the host stops)."""
        deadline = time.monotonic() + seconds
        with self.mutex:
            threads = list(self.running.values())
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _run(self, p: dict[str, Any]) -> None:
        run_id = str(p["id"])
        body: dict[str, Any] | None
        try:
            body = execute(self.ctx, p)
        except Exception as exc:  # a bug or an OS error: report it, never leave the slot hanging
            log.exception("stage run %s: unexpected error", run_id)
            body = {"attempt": p.get("attempt"), "state": "error", "reason": f"host_error: {type(exc).__name__}: "
                                                                             f"{exc}"[:4000]}
        try:
            if body is not None:
                deliver(self.ctx, run_id, body)
        finally:
            with self.mutex:  # after the report: a stopping host's drain waits for it
                self.running.pop(run_id, None)
            self.wake.set()


def _report(ctx: Context, run_id: str, body: dict[str, Any]) -> bool:
    """Send a report once; False when the hub refused it as stale (the run is over on the hub), logged with the
    hub's why (a 409 ``stale_attempt``: another attempt is current, or the run ended there)."""
    try:
        ctx.link.report_run(run_id, body)
    except Stale as exc:
        log.info("stage run %s: %s report refused as stale (the run is over on the hub): %s", run_id,
                 body.get("state"), exc)
        return False
    return True


def deliver(ctx: Context, run_id: str, body: dict[str, Any]) -> None:
    """Send the final report until the hub has it (or refuses it); retried through hub restarts."""
    delay = 0.5
    while True:
        try:
            if not _report(ctx, run_id, body):  # refused as stale, and logged so: nothing was reported
                return
            # an error's reason is the news (host_stopped: queued again; git: …): "reported error" said none of it
            why = f": {body['reason']}" if body.get("state") == "error" and body.get("reason") else ""
            log.info("stage run %s: reported %s%s", run_id, body.get("state"), why)
            return
        except Refused as exc:
            log.warning("stage run %s: final report refused: %s", run_id, exc)
            return
        except Unreachable as exc:
            if ctx.stopping.is_set():
                log.warning("stage run %s: hub unreachable (%s) while stopping; the hub will run it again",
                            run_id, exc)
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def execute(ctx: Context, p: dict[str, Any]) -> dict[str, Any] | None:
    """Run a smoke test or review in a fresh detached worktree; the final report's body.

    When the host stopped it: ``error`` with reason :data:`STOPPED`, which the hub takes as no verdict on the
    branch and queues the run again, saying the host stopped (any other ``error`` stops the pipeline for a
    human).
    """
    run_id, attempt, stage = str(p["id"]), int(p["attempt"]), str(p.get("stage"))
    try:
        check_id(run_id, "stage run id")  # it names the run's worktree and output directory
    except ValueError as exc:
        return {"attempt": attempt, "state": "error", "reason": str(exc)[:4000]}
    repo = ctx.repos.get(str(p.get("repo")))
    if repo is None:
        return {"attempt": attempt, "state": "error", "reason": f"unknown_repo: {ctx.machine} has no path for "
                                                                  f"repo {p.get('repo')!r}"}
    env = worker_env(ctx.host_env, {}, ctx.pass_env)  # no hub identity: the code under test is the worker's
    out_dir = ctx.workers_dir / f"run-{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.worktrees / f"run-{run_id}"
    try:
        sha = worktree.checkout_detached(repo, path, str(p["branch"]), ctx.worktrees)
    except worktree.GitError as exc:
        return {"attempt": attempt, "state": "error", "reason": f"git: {exc}"[:4000]}
    try:
        _report(ctx, run_id, {"attempt": attempt, "state": "running", "commit": sha})
    except (Unreachable, Refused):
        pass  # the final report still goes; a stale run is found out there
    try:
        if stage == "test":
            ended = smoke.run_command(str(p["command"]), path, env, float(p.get("timeout_seconds") or 600),
                                      out_dir / f"output.{attempt}.log", ctx.stopping)
            if ended.killed == "stopped":
                return {"attempt": attempt, "state": "error", "reason": STOPPED, "commit": sha}
            return {"attempt": attempt, "state": "done", "exit_code": ended.exit_code, "output_tail": ended.tail,
                    "commit": sha, "reason": f"timeout after {p.get('timeout_seconds')} s" if ended.killed else None}
        claude = shutil.which(ctx.claude, path=env.get("PATH"))
        if claude is None:
            return {"attempt": attempt, "state": "error", "commit": sha,
                    "reason": f"claude_missing: {ctx.claude!r} is not on the reviewer's PATH on {ctx.machine}"}
        got = review.run(claude, p, path, env, out_dir, ctx.stopping)
        if ctx.stopping.is_set() and got.verdict is None:
            return {"attempt": attempt, "state": "error", "reason": STOPPED, "commit": sha, "cost_usd": got.cost_usd}
        body: dict[str, Any] = {"attempt": attempt, "commit": sha, "cost_usd": got.cost_usd}
        if got.verdict is None:
            return {**body, "state": "error", "reason": got.error[:4000], "output_tail": got.output_tail}
        findings = [{k: v for k, v in f.items() if v is not None} for f in got.verdict["findings"]]
        return {**body, "state": "done", "verdict": got.verdict["verdict"], "summary": got.verdict["summary"],
                "findings": findings, "output_tail": f"permission denials: {got.denials}"}
    finally:
        try:
            worktree.remove(repo, path)
        except worktree.GitError as exc:
            log.warning("stage run %s: cannot remove %s: %s", run_id, path, exc)
