"""Recovery: what a ``coord agent`` finds left behind, cleaned up without losing work (issue 11 point 9).

At start (:class:`Recovery`, step 1 of :mod:`coordhub.orchestrator.host`),
what a previous host process on this machine left: every worker in the state
file is either re-attached (its ``claude`` still runs; the host tails its log
again from the recorded offset) or finished from its log (it ended while
nobody watched); processes whose working directory is one of this host's
worktrees but that no record names are killed (process group); worktrees no
record names are saved (a ``wip`` commit) and removed, so none blocks its
branch; directories that are not worktrees any more are moved to
``lost+found``; the output of a merge gate the host was killed during is kept
and noted; logs no record names go after ``keep_logs_days``. Each action
is a note the host sends with its registration.

Later, on heartbeats (:func:`clean_parked`): parked worktrees (stuck /
needs-input, kept for resume-stuck) of assignments that moved on are saved
and removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from coordhub.client import Unreachable
from coordhub.orchestrator import smoke, worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.hoststate import group_alive, process_alive
from coordhub.orchestrator.link import Refused
from coordhub.orchestrator.merging import GATE_LOG
from coordhub.orchestrator.worker import Context

log = logging.getLogger("coordhub.agent")

LIVE_ON_HUB = ("queued", "dispatched", "running", "stuck", "needs_input")
INTERRUPTED_GATE_LOG = "gate.interrupted.log"  # a merge gate's output a killed host left (kept, noted once)


class Recovery:
    """One look at what a previous host process left (see the module docstring); what it did goes to ``notes``."""

    def __init__(self, ctx: Context, machine: str, repos: dict[str, Path], keep_logs_days: float,
                 notes: list[dict[str, Any]]) -> None:
        """``repos`` (name → path) are the repos this host serves; ``notes`` is where each action is recorded."""
        self.ctx, self.machine, self.repos, self.keep_logs_days = ctx, machine, repos, keep_logs_days
        self.notes = notes

    def run(self) -> list[tuple[Dispatch, dict[str, Any]]]:
        """Find what a previous host process left; the workers to re-attach (the host starts them).

        Records in the state file: parked ones stay; the others are returned
        for re-attaching (alive) or finishing (dead). Processes in this host's
        worktrees that no record names are killed; worktrees no record names
        are saved and removed; stray directories go to ``lost+found``.
        """
        records = self.ctx.state.workers()
        reattach: list[tuple[Dispatch, dict[str, Any]]] = []
        known_pids: set[int] = set()
        for aid, rec in records.items():
            if rec.get("phase") == "parked":
                continue
            try:
                d = Dispatch.parse(rec.get("payload") or {})
            except ValueError as exc:
                self.note(aid, "dropped", f"unreadable record: {exc}")
                self.ctx.state.drop(aid)
                continue
            pid = rec.get("pid")
            if isinstance(pid, int) and process_alive(pid, rec.get("start_ticks")):
                known_pids.add(pid)
                self.note(aid, "re-attach", f"claude pid {pid} still runs")
            elif rec.get("pending") is not None and not (rec.get("worktree") and Path(rec["worktree"]).exists()):
                self.note(aid, "deliver", "its final report was not delivered yet")
                continue  # the heartbeat delivers it
            else:
                self.note(aid, "finish", "its claude ended while no host watched")
            reattach.append((d, rec))
        self._kill_strays(known_pids)
        self._interrupted_gates()
        self._prune_logs(set(records))
        self._clean_strays({Path(r["worktree"]).resolve() for r in records.values() if r.get("worktree")})
        for entry in self.notes:  # a stray process or worktree concerns no assignment: "assignment -" said nothing
            whose = f"assignment {entry['assignment']}: " if entry.get("assignment") else ""
            log.info("recovery: %s%s (%s)", whose, entry["action"], entry["detail"])
        return reattach

    def note(self, aid: str | None, action: str, detail: str, **extra: Any) -> None:
        """Record one action (``aid``: the assignment it concerns, None for none)."""
        self.notes.append({"assignment": aid, "action": action, "detail": detail, **extra})

    def _interrupted_gates(self) -> None:
        """Note each merge gate a previous host process was killed in the middle of: its output file
        (:data:`~coordhub.orchestrator.merging.GATE_LOG`, there only while a gate runs) is kept, renamed
        :data:`INTERRUPTED_GATE_LOG` so it is noted once, beside the workers' logs (pruned with them after
        ``keep_logs_days``); the note names it and its last line. The hub runs the merge again (its host was
        lost): this is only the evidence of what the gate was doing."""
        folder = self.ctx.workers_dir
        if not folder.is_dir():
            return
        for found in sorted(folder.glob(f"gate-*/{GATE_LOG}")):
            kept = found.with_name(INTERRUPTED_GATE_LOG)
            try:
                found.replace(kept)
            except OSError as exc:
                log.warning("recovery: cannot keep %s: %s", found, exc)
                continue
            last = (smoke.tail(kept, 1000).strip().splitlines() or [""])[-1][-200:]
            batch = found.parent.name.removeprefix("gate-")
            self.note(None, "gate_interrupted", f"merge run {batch}: the host ended during its gate (the hub runs "
                      f"it again); the gate's output is kept at {kept}" + (f", ending: {last}" if last else ""))

    def _prune_logs(self, recorded: set[str]) -> None:
        """Delete the logs of assignments no record names, untouched for ``keep_logs_days`` (raw logs are the
        host's to keep, but not forever)."""
        cutoff = time.time() - self.keep_logs_days * 86400
        folder = self.ctx.workers_dir
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if entry.name in recorded or not entry.is_dir():
                continue
            try:
                newest = max((p.stat().st_mtime for p in entry.iterdir()), default=entry.stat().st_mtime)
            except OSError:
                continue
            if newest < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                log.info("removed the logs of assignment %s (older than %g days)", entry.name,
                         self.keep_logs_days)

    def _kill_strays(self, keep: set[int]) -> None:
        """Kill the process groups of processes working in this host's worktrees that no record names."""
        root = self.ctx.worktrees.resolve()
        groups: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cwd = Path(os.readlink(entry / "cwd"))
                pgid = os.getpgid(int(entry.name))
            except OSError:
                continue
            if cwd == root or root in cwd.parents:
                groups.setdefault(pgid, []).append(int(entry.name))
        for pgid, pids in groups.items():
            if keep & set(pids) or pgid in keep or pgid == os.getpgid(0):
                continue
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.killpg(pgid, sig)
                except OSError:
                    pass
            deadline = time.time() + 5
            while group_alive(pgid) and time.time() < deadline:
                time.sleep(0.1)
            if group_alive(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass
            self.note(None, "killed", f"process group {pgid} (pids {', '.join(map(str, pids))}) ran in a worktree "
                      "no record names")

    def _clean_strays(self, recorded: set[Path]) -> None:
        """Save and remove this host's worktrees that no record names; move other leftovers to lost+found."""
        owned = self.ctx.worktrees
        registered: set[Path] = set()
        for repo in self.repos.values():
            try:
                found = worktree.owned_worktrees(repo, owned)
            except worktree.GitError:
                continue
            for path, branch in found:
                registered.add(path.resolve())
                if path.resolve() in recorded:
                    continue
                try:
                    wip = worktree.save_work(path, "wip: saved by coordhub from a worktree no record named",
                                             on_branch=True, machine=self.machine) if path.exists() else None
                    worktree.remove(repo, path)
                except worktree.GitError as exc:
                    self.note(None, "kept", f"worktree {path}: {exc}")
                    continue
                self.note(None, "removed", f"worktree {path} of branch {branch or '(detached)'}"
                          + (f"; uncommitted work saved as {wip[:12]}" if wip else ""), wip_commit=wip)
        if not owned.is_dir():
            return
        for entry in owned.iterdir():
            if entry.resolve() in recorded or entry.resolve() in registered:
                continue
            lost = self.ctx.state.dir / "lost+found"
            lost.mkdir(parents=True, exist_ok=True)
            target = lost / f"{entry.name}.{int(time.time())}"
            shutil.move(str(entry), target)
            self.note(None, "moved", f"{entry} is not a worktree of any repo served here; moved to {target}")


def clean_parked(ctx: Context, machine: str, live: set[str]) -> None:
    """Remove parked worktrees (stuck / needs-input, kept for resume-stuck) of assignments that moved on.

    ``live`` are the assignments this host runs a worker for (never touched).
    Asks the hub each parked assignment's state; stops quietly while the hub
    is unreachable. Uncommitted work is saved (a ``wip`` commit) first.
    """
    for aid, rec in ctx.state.workers().items():
        if rec.get("phase") != "parked" or aid in live or rec.get("pending") is not None:
            continue
        try:
            state = ctx.link.assignment(aid).get("state")
        except Unreachable:
            return
        except Refused as exc:
            if exc.status != 404:
                continue
            state = "gone"
        if state in LIVE_ON_HUB:
            continue
        _clean_record(ctx, machine, aid, rec, f"assignment is {state} on the hub")


def _clean_record(ctx: Context, machine: str, aid: str, rec: dict[str, Any], why: str) -> None:
    """Save and remove one parked record's worktree, then drop the record; when git refuses, keep both."""
    path = Path(rec["worktree"]) if rec.get("worktree") else None
    repo = Path(rec["repo_path"]) if rec.get("repo_path") else None
    if path is not None and repo is not None and path.exists():
        try:
            wip = worktree.save_work(path, f"wip: assignment {aid}, saved before cleaning its parked worktree",
                                     on_branch=True, machine=machine)
            worktree.remove(repo, path)
        except worktree.GitError as exc:
            log.warning("assignment %s: parked worktree %s kept: %s", aid, path, exc)
            return
        log.info("assignment %s: removed its parked worktree %s (%s)%s", aid, path, why,
                 f"; uncommitted work saved as {wip[:12]}" if wip else "")
    ctx.state.drop(aid)
