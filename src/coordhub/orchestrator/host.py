"""``coord agent``: the worker host of one machine (issue 11 points 2, 8, 9).

It only connects **out** to the hub, with a token bound to its machine
(session ``<machine>/agent``): nothing listens on the machine, so seed 003's
open port 7433 — which ran Claude with Bash for anyone who could reach it —
has no counterpart. Its life:

1. **Recover** what a previous host process on this machine left
   (:meth:`Host.recover`): every worker in the state file is either re-attached
   (its ``claude`` still runs; the host tails its log again from the recorded
   offset) or finished from its log (it ended while nobody watched); processes
   whose working directory is one of this host's worktrees but that no record
   names are killed (process group); worktrees no record names are saved (a
   ``wip`` commit) and removed, so none blocks its branch; directories that are
   not worktrees any more are moved to ``lost+found``. What it did is logged
   and sent with the registration (:mod:`coordhub.orchestrator.recovery`).
2. **Register** (capabilities, repos, slots) and receive an incarnation; the
   first heartbeat lists the re-attached assignments, so the hub adopts them
   and re-queues the rest (contract A2).
3. **Heartbeat** every ``heartbeat_seconds`` (from the hub's answers): free
   slots and the assignments it holds; the answer carries halts
   (``paused_assignments``: SIGSTOP, SIGCONT when lifted; ``cancel``: stop).
   The heartbeat thread also delivers final reports a worker could not, and
   cleans parked (stuck / needs-input) worktrees the hub no longer needs.
4. **Long-poll** ``next`` while a slot is free and nothing is halted, and
   start a :class:`~coordhub.orchestrator.worker.Worker` for each assignment;
   beside it, ``next-run`` for smoke tests and reviews
   (:class:`~coordhub.orchestrator.runs.RunPoller`), which share the slots; a third long-poll takes
   merge-queue runs (:class:`~coordhub.orchestrator.merging.MergeRunner`); with capability ``github``, a
   poster makes the audit trail's comments (:class:`~coordhub.orchestrator.ghposter.GitHubPoster`).
5. On SIGTERM/SIGINT: stop polling, tell the hub this host takes no more
   work (a ``stopping`` heartbeat: a long-poll still open would otherwise take
   back what the workers hand back), stop every worker (work saved, reported
   ``failed: host_stopped``, so the hub re-queues it), wait for their reports; stage runs and a merge run's
   gate in progress end too and are reported ``host_stopped``, so the hub queues them again.

A second host for the same machine on one box refuses to start (the state
directory is locked).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordhub import __version__
from coordhub.client import Unreachable
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.ghposter import GitHubPoster
from coordhub.orchestrator.hoststate import AlreadyRunning
from coordhub.orchestrator.link import Refused, Stale
from coordhub.orchestrator.merging import MergeRunner
from coordhub.orchestrator.recovery import Recovery, clean_parked
from coordhub.orchestrator.runs import RunPoller
from coordhub.orchestrator.worker import Context, Limits, Worker

log = logging.getLogger("coordhub.agent")

HEARTBEAT_SECONDS = 5.0  # until the hub's answer says otherwise (contract: every ≤ 5 s)
POLL_WAIT = 25.0  # seconds a `next` long-poll may wait (the contract allows ≤ 30)
PARKED_CHECK_SECONDS = 60.0
MERGE_STOP_SECONDS = 30.0  # how long a stopping host waits for its merge run to end and report


class Superseded(AlreadyRunning):
    """Another ``coord agent`` registered this machine after this one (the hub said ``stale_incarnation`` with
    a newer incarnation): this one stopped. ``coord agent`` exits with its "refused" code, as for a second
    agent on one state dir."""


@dataclass
class HostConfig:
    """What this host is: its machine name, slots, repos (name → path) and capabilities."""

    machine: str
    slots: int
    repos: dict[str, Path]
    capabilities: list[str] = field(default_factory=list)
    poll_wait: float = POLL_WAIT
    problems: list[str] = field(default_factory=list)
    keep_logs_days: float = 14.0


class Host:
    """One ``coord agent`` process. :meth:`run` blocks until :meth:`shutdown` (or a signal)."""

    def __init__(self, cfg: HostConfig, ctx: Context,
                 reload: Callable[[], tuple[HostConfig, Limits]] | None = None) -> None:
        """``reload`` reads this machine's part of the hub's configuration again (when a heartbeat says it changed)."""
        self.cfg, self.ctx, self.reload = cfg, ctx, reload
        self.config_version: Any = None
        self.workers: dict[str, Worker] = {}
        self.next_attempts: dict[str, dict[str, Any]] = {}  # a newer attempt waiting for the old worker to stop
        self.mutex = threading.Lock()
        self.incarnation: int | None = None
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self.paused_ids: set[str] = set()
        self.paused_all = False
        self.recovered: list[dict[str, Any]] = []
        self.wake = threading.Event()
        self._last_parked_check = 0.0
        self.registered_max = 0  # the newest incarnation this process registered
        self.registering = threading.RLock()  # held while this process registers
        self.superseded: str | None = None  # why this agent stops: another agent registered the machine
        self.runs = RunPoller(ctx, self.free_slots, lambda: self.incarnation, lambda: self.paused_all,
                              cfg.poll_wait)

    @property
    def stopping(self) -> threading.Event:
        return self.ctx.stopping

    # -- the main loop -----------------------------------------------------------------

    def run(self, install_signals: bool = True) -> None:
        """Lock the state dir, recover, register, then heartbeat and poll until stopped."""
        self.ctx.state.lock()
        try:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: self.shutdown())
            reattach = self.recover()
            if not self._register():
                return
            self._adopt(reattach)
            beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            beat.start()
            poll = threading.Thread(target=self._poll_loop, name="poll", daemon=True)
            poll.start()
            threading.Thread(target=self.runs.loop, name="poll-runs", daemon=True).start()
            merging = self._merge_runner()
            threading.Thread(target=merging.loop, name="merge", daemon=True).start()
            poster = GitHubPoster(self.ctx.link, dict(self.ctx.host_env), self.stopping, lambda: self.incarnation,
                                  lambda: "github" in self.cfg.capabilities)
            threading.Thread(target=poster.loop, name="github", daemon=True).start()
            while not self.stopping.wait(1.0):
                pass
            self._say_stopping()
            self._stop_workers()
            # A merge gate in progress is stopped with the host and reported `retry: host_stopped`; exiting before
            # that left the gate's process group running and the hub to call the run's host lost (restarted).
            # A run past its gate (waiting for GitHub's checks, pushing) gets the same bound, then is the hub's.
            merging.idle.wait(MERGE_STOP_SECONDS)
        finally:
            self.ctx.link.close()
            self.ctx.state.unlock()
        if self.superseded is not None:
            raise Superseded(self.superseded)

    def _merge_runner(self) -> MergeRunner:
        """The merge queue's runner (:mod:`coordhub.orchestrator.merging`): this host's repos as configured now."""
        return MergeRunner(self.ctx.link, self.cfg.machine, lambda: self.cfg.repos, self.ctx.worktrees,
                           dict(self.ctx.host_env), self.stopping, lambda: self.incarnation,
                           poll_wait=self.cfg.poll_wait, pass_env=self.ctx.pass_env, logs=self.ctx.workers_dir)

    def shutdown(self) -> None:
        """Ask the host to stop (from a signal handler or another thread)."""
        self.stopping.set()
        self.wake.set()
        self.runs.wake.set()

    def free_slots(self) -> int:
        with self.mutex:
            workers = len(self.workers)
        return max(0, self.cfg.slots - workers - self.runs.count())

    def held(self) -> list[str]:
        """Assignments this host holds (contract A2): live workers, and final reports not yet delivered."""
        with self.mutex:
            ids = set(self.workers)
        for aid, rec in self.ctx.state.workers().items():
            if rec.get("pending") is not None:
                ids.add(aid)
        return sorted(ids)

    def _register(self) -> bool:
        with self.registering:  # a refusal seen meanwhile waits for this registration (see _superseded)
            return self._register_now()

    def _register_now(self) -> bool:
        delay = 1.0
        extra = True  # the recovery notes and problems (contract amendment H1), dropped if this hub refuses them
        while not self.stopping.is_set():
            try:
                answer = self.ctx.link.register(self.cfg.capabilities, {k: str(v) for k, v in self.cfg.repos.items()},
                                                self.cfg.slots, __version__, self.recovered if extra else [],
                                                self.cfg.problems if extra else [])
            except Refused as exc:
                if exc.status == 422 and extra and (self.recovered or self.cfg.problems):
                    log.warning("the hub does not take recovery notes (%s); registering without them", exc)
                    extra = False
                    continue
                log.error("the hub refused to register machine %s: %s", self.cfg.machine, exc)
                self.shutdown()
                return False
            except Unreachable as exc:
                log.warning("hub unreachable (%s); registering again in %.0f s", exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.incarnation = int(answer.get("host_incarnation") or 0)
            self.registered_max = max(self.registered_max, self.incarnation)
            self.config_version = answer.get("config_version", self.config_version)
            self.recovered = []  # delivered: a later registration (config change, hub restart) repeats none
            self._take_timing(answer)
            log.info("registered machine %s (incarnation %s, %d slots, repos %s)", self.cfg.machine,
                     self.incarnation, self.cfg.slots, ", ".join(sorted(self.cfg.repos)) or "none")
            return True
        return False

    def _superseded(self, exc: Stale) -> bool:
        """Whether ``exc`` says another ``coord agent`` registered this machine since this one did (its current
        incarnation is newer than any this process registered); then stop, and :meth:`run` raises
        :class:`Superseded`. Two agents for one machine (another state dir) would otherwise take the machine
        from each other for ever, each registration losing the other's attempts."""
        if exc.code != "stale_incarnation" or exc.current is None:
            return False
        with self.registering:  # a registration of ours in flight (a config change) may be the newer one
            if exc.current <= self.registered_max:
                return False
        with self.mutex:
            if self.superseded is None:
                self.superseded = (f"another coord agent registered machine {self.cfg.machine} (incarnation "
                                   f"{exc.current}; this one registered {self.registered_max}): this agent stops; "
                                   "run one coord agent per machine")
                log.error("%s", self.superseded)
        self.shutdown()
        return True

    def _take_timing(self, answer: dict[str, Any]) -> None:
        value = answer.get("heartbeat_seconds")
        if isinstance(value, int | float) and 0.2 <= value <= 300:
            self.heartbeat_seconds = float(value)

    # -- heartbeats -------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(self.heartbeat_seconds):
            self.heartbeat()

    def heartbeat(self) -> dict[str, Any] | None:
        """One heartbeat, and what its answer asks (halts, cancels); also retries undelivered final reports."""
        assert self.incarnation is not None
        try:
            answer = self.ctx.link.heartbeat(self.incarnation, self.free_slots(), self.held())
        except Unreachable as exc:
            log.warning("heartbeat: hub unreachable (%s)", exc)
            return None
        except Stale as exc:  # the hub no longer knows this incarnation (e.g. it thinks the host died)
            if self._superseded(exc):
                return None
            log.warning("heartbeat refused (%s); registering again", exc)
            self._register()
            return None
        except Refused as exc:
            log.error("heartbeat refused: %s", exc)
            return None
        self._take_timing(answer)
        self._apply_halt(answer)
        self._follow_config(answer.get("config_version"))
        for aid in answer.get("cancel") or []:
            with self.mutex:
                w = self.workers.get(str(aid))
            if w is None:
                continue
            if w.verdict is not None:  # judged and reported: the hub's record ended with that report, not a stop
                log.debug("assignment %s: the hub has its final report; the worker is cleaning up", aid)
                continue
            log.info("assignment %s: cancelled by the hub; stopping its worker", aid)
            w.cancel()
        self._deliver_pending()
        if time.time() - self._last_parked_check > PARKED_CHECK_SECONDS:
            self._last_parked_check = time.time()
            self._check_parked()
        return answer

    def _follow_config(self, version: Any) -> None:
        """Take a changed configuration without a restart: new repos, paths, slots, capabilities and limits.

        Running workers keep what they started with. When what the hub knows
        of this host changed, the host registers again (a new incarnation; the
        next heartbeat lists its running workers, so the hub adopts them).
        """
        if version is None or version == self.config_version:
            return
        if self.config_version is None or self.reload is None:
            self.config_version = version
            return
        try:
            new, limits = self.reload()
        except (Unreachable, Refused, ValueError) as exc:
            log.error("the configuration changed (version %s) but this host cannot take it: %s; keeping the old "
                      "one", version, exc)
            self.config_version = version
            return
        log.info("the configuration changed (version %s → %s); taking it", self.config_version, version)
        self.config_version = version
        announced = (self.cfg.slots, self.cfg.repos, sorted(self.cfg.capabilities))
        self.ctx.limits = limits
        self.ctx.repos.clear()
        self.ctx.repos.update(new.repos)
        new.poll_wait, new.keep_logs_days = self.cfg.poll_wait, self.cfg.keep_logs_days
        self.cfg = new
        if (new.slots, new.repos, sorted(new.capabilities)) != announced:
            self._register()
            self.wake.set()

    def _apply_halt(self, answer: dict[str, Any]) -> None:
        paused_all = bool(answer.get("paused"))
        listed = answer.get("paused_assignments")
        ids = {str(x) for x in listed} if isinstance(listed, list) else set()
        with self.mutex:
            workers = dict(self.workers)
        for aid, w in workers.items():
            if paused_all or aid in ids:
                # logged when it took effect: a worker re-attached after a restart has no process until its thread
                # takes it over, so the first heartbeat's pause does nothing and the next one stops it (logged twice)
                if w.pause():
                    log.info("assignment %s: halted; pausing its worker (SIGSTOP)", aid)
            elif w.paused:
                log.info("assignment %s: halt lifted; resuming its worker (SIGCONT)", aid)
                w.unpause()
        was = self.paused_all
        self.paused_all, self.paused_ids = paused_all, ids
        if was and not paused_all:
            self.wake.set()

    def _deliver_pending(self) -> None:
        with self.mutex:
            live = set(self.workers)
        for aid, rec in self.ctx.state.workers().items():
            body = rec.get("pending")
            if body is None or aid in live:
                continue
            try:
                self.ctx.link.report(aid, body)
            except Unreachable:
                return
            except (Stale, Refused) as exc:  # the attempt is over on the hub: kept no longer, and said so alone
                how = "refused as stale" if isinstance(exc, Stale) else "refused"
                log.info("assignment %s: the final report kept from earlier was %s: %s", aid, how, exc)
            else:
                log.info("assignment %s: delivered the final report kept from earlier", aid)
            if rec.get("phase") == "parked":
                self.ctx.state.put(aid, pending=None)
            else:
                self.ctx.state.drop(aid)

    def _check_parked(self) -> None:
        """Remove parked worktrees (stuck / needs-input, kept for resume-stuck) of assignments that moved on."""
        with self.mutex:
            live = set(self.workers)
        clean_parked(self.ctx, self.cfg.machine, live)


    # -- polling for work ---------------------------------------------------------------

    def _poll_loop(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            if self.free_slots() <= 0 or self.paused_all or self.incarnation is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                payload = self.ctx.link.next(self.incarnation, self.cfg.poll_wait)
            except Unreachable as exc:
                log.warning("next: hub unreachable (%s); again in %.0f s", exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            except (Stale, Refused) as exc:
                if isinstance(exc, Stale) and self._superseded(exc):
                    return
                log.warning("next refused (%s)", exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if payload is not None:
                self.take(payload)

    def take(self, payload: dict[str, Any]) -> Worker | None:
        """Start a worker for a dispatch payload (or report why not); the worker, or None."""
        try:
            d = Dispatch.parse(payload)
        except ValueError as exc:
            log.error("refusing a dispatch: %s", exc)
            aid, attempt = payload.get("id"), payload.get("attempt")
            if isinstance(aid, str) and isinstance(attempt, int):
                self._report_quietly(aid, {"attempt": attempt, "state": "failed", "reason": f"bad_payload: {exc}"})
            return None
        with self.mutex:
            running = self.workers.get(d.id)
            if running is not None:
                if running.d.attempt == d.attempt:
                    log.warning("assignment %s: attempt %d dispatched twice; ignored", d.id, d.attempt)
                elif d.id not in self.next_attempts:
                    # the previous attempt's worker is still being stopped (the hub gave it up): the new one
                    # starts the moment it is gone, in the same worktree path, never beside it
                    log.info("assignment %s: attempt %d waits for attempt %d to finish stopping", d.id, d.attempt,
                             running.d.attempt)
                    self.next_attempts[d.id] = payload
                return None
            if self.stopping.is_set():
                stopping = True
            else:
                stopping = False
                w = Worker(self.ctx, d, on_exit=self._gone)
                self.workers[d.id] = w
        if stopping:
            self._report_quietly(d.id, {"attempt": d.attempt, "state": "failed",
                                        "reason": "host_stopped: the host was stopping when it arrived"})
            return None
        log.info("assignment %s (attempt %d): %s #%d on %s%s", d.id, d.attempt, d.repo, d.issue, d.branch,
                 f", resuming session {d.resume.session_id[:8]}" if d.resume else "")
        w.start()
        return w

    def _gone(self, w: Worker) -> None:
        with self.mutex:
            if self.workers.get(w.d.id) is w:
                del self.workers[w.d.id]
            waiting = self.next_attempts.pop(w.d.id, None)
        verdict = w.verdict
        log.info("assignment %s: %s", w.d.id, f"{verdict.state or 'stopped'}: {verdict.reason}" if verdict else
                 "worker ended")
        if waiting is not None:
            self.take(waiting)
        self.wake.set()

    def _report_quietly(self, aid: str, body: dict[str, Any]) -> None:
        try:
            self.ctx.link.report(aid, body)
        except (Unreachable, Refused) as exc:
            log.warning("assignment %s: report not delivered: %s", aid, exc)

    def _say_stopping(self) -> None:
        """Tell the hub this host takes no more work, before its workers hand theirs back.

        The long-polls for work are still open when the host stops (they
        return only when their wait ends), and the hub re-queues what a
        stopped worker hands back; with a short ``backoff_base`` one of them
        took it again at once, so the stopping host lost a second attempt of
        it (or left it dispatched to a host that had exited). After this
        heartbeat the hub gives this incarnation nothing. A hub that cannot
        be reached or refuses it changes nothing: the workers are stopped
        anyway, and what the poll might still bring is refused in :meth:`take`.
        """
        if self.incarnation is None or self.superseded is not None:
            return
        try:
            self.ctx.link.heartbeat(self.incarnation, 0, self.held(), stopping=True, role="stopping")
        except (Unreachable, Refused) as exc:
            log.warning("could not tell the hub this host is stopping (%s); stopping its workers anyway", exc)

    def _stop_workers(self) -> None:
        with self.mutex:
            workers = list(self.workers.values())
        for w in workers:
            w.stop()
        deadline = time.time() + self.ctx.limits.stop_grace + 30
        for w in workers:
            w.finished.wait(max(0.0, deadline - time.time()))
        # its smoke tests and reviews end at once (the stop reaches their process groups) and say so: the hub
        # queues them again as stopped by the host, not as lost when this machine's next agent registers
        self.runs.drain(max(5.0, deadline - time.time()))

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> list[tuple[Dispatch, dict[str, Any]]]:
        """Find what a previous host process left; the workers to re-attach (started by :meth:`_adopt`).

        Records in the state file: parked ones stay; the others are returned
        for re-attaching (alive) or finishing (dead). Processes in this host's
        worktrees that no record names are killed; worktrees no record names
        are saved and removed; stray directories go to ``lost+found``
        (:class:`~coordhub.orchestrator.recovery.Recovery`). What it did is
        sent with the registration.
        """
        return Recovery(self.ctx, self.cfg.machine, self.cfg.repos, self.cfg.keep_logs_days, self.recovered).run()

    def _adopt(self, reattach: list[tuple[Dispatch, dict[str, Any]]]) -> None:
        """First heartbeat listing the re-attached assignments (the hub adopts them, A2), then take them over."""
        with self.mutex:
            for d, _ in reattach:
                self.workers[d.id] = Worker(self.ctx, d, on_exit=self._gone)
        answer = self.heartbeat() or {}
        cancel = {str(x) for x in answer.get("cancel") or []}
        for d, rec in reattach:
            w = self.workers[d.id]
            if d.id in cancel:
                w.stale = True
            w.reattach(rec)
