"""What a worker tells about its attempt: the human log, and the reports to the hub, running and final.

Running reports carry the compact telemetry, at most every ``report_every``
seconds (at once when something the hub acts on changed); the first one also
says ``running``, with the worktree, the branch and the freshness notes. The
human log is relayed in whole lines at the hub's character offset (contract
A6). The final report is kept in the host's state file and sent again until
the hub has it.

A running report the hub answers with 409 (the attempt is no longer current:
the hub re-queued it, or it was stopped) or 404 makes the attempt ``stale``:
the worker stops at once and tells the hub nothing more, so a dead attempt
never keeps working beside a newer one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from coordhub.client import Unreachable
from coordhub.core.redaction import redact
from coordhub.orchestrator import worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.link import LOG_CHUNK, LogGap, Refused, Stale
from coordhub.orchestrator.streamjson import Telemetry, printable
from coordhub.orchestrator.worker.context import Context
from coordhub.orchestrator.worker.record import Record
from coordhub.orchestrator.worker.work import Saved

log = logging.getLogger("coordhub.agent")


class HumanLog:
    """The human-readable log of one attempt: each line stamped ``HH:MM:SS`` (UTC), one line each (terminal control
    characters dropped, newlines made spaces: ``coord log`` prints the log as it is on an operator's terminal, and
    a worker's text is in it), token-shaped strings masked (:func:`~coordhub.core.redaction.redact`: the hub
    relays the log to every session), appended."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        """Bytes the log holds on disk (0 before its first line)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def write(self, lines: list[str]) -> None:
        """Append ``lines`` (nothing for none), making the worker's directory when it is missing."""
        if not lines:
            return
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(redact("".join(f"{stamp} {printable(line).replace(chr(10), ' ')}\n" for line in lines)))


def final_report(d: Dispatch, saved: Saved, telemetry: Telemetry, wt: worktree.Worktree | None,
                 changed: list[str] | None) -> dict[str, Any]:
    """The final report of a run of claude that ended, from what :func:`~.work.save` did.

    ``state`` is left out when there is none (a cancelled attempt);
    ``worktree``/``branch`` when there was no worktree, ``wip_commit`` when
    nothing was saved, ``changed_files`` when they are not known (``None``).
    """
    state, reason = saved.verdict.state, saved.verdict.reason
    body: dict[str, Any] = {"attempt": d.attempt, "reason": reason, "telemetry": telemetry.compact(),
                            "pushed": saved.pushed}
    if state is not None:
        body["state"] = state
    if wt is not None:
        body.update(worktree=str(wt.path), branch=wt.branch)
    if saved.wip:
        body["wip_commit"] = saved.wip
    if changed is not None:
        body["changed_files"] = changed
    return body


class Reports:
    """One attempt's reports to the hub and the relay of its human log; ``stale`` once the hub gave it up."""

    def __init__(self, ctx: Context, d: Dispatch, record: Record, human: HumanLog) -> None:
        self.ctx, self.d, self.record, self.human = ctx, d, record, human
        self.stale = False
        self.running_reported = False
        self.freshness_notes: list[str] = []  # what the freshness check found (prepare), sent with a report
        self.last_report = 0.0
        self.last_sent: dict[str, Any] | None = None
        self.last_log_push = 0.0
        self.human_pushed = 0  # bytes of the human log file the hub has
        self.hub_log_size: int | None = None  # characters the hub holds (contract A6); None: not known yet

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one report as it is; the hub's answer, or what :meth:`HubLink.report` raises."""
        return self.ctx.link.report(self.d.id, body)

    def due(self) -> None:
        """Send the next running report at once, not ``report_every`` after the last."""
        self.last_report = 0.0

    def maybe_report(self, now: float, telemetry: Telemetry, wt: worktree.Worktree | None,
                     raw_offset: int) -> str | None:
        """Send a running report if one is due and the telemetry changed; record what the hub has.

        Returns why the worker must stop when the hub refused it as stale or
        unknown (the attempt is then ``stale``); None otherwise. An unreachable
        hub is tried again at the next report; any other refusal is logged.
        ``wt`` must be known by the first report (it names the worktree).
        """
        if self.stale or now - self.last_report < self.ctx.limits.report_every:
            return None
        compact = telemetry.compact()
        if self.running_reported and compact == self.last_sent:
            return None
        body: dict[str, Any] = {"attempt": self.d.attempt, "telemetry": compact}
        if not self.running_reported:
            assert wt is not None
            body.update(state="running", worktree=str(wt.path), branch=wt.branch, freshness=self.freshness_notes)
        self.last_report = now
        try:
            self.send(body)
        except Unreachable:
            return None
        except Refused as exc:
            if isinstance(exc, Stale) or exc.status == 404:  # the attempt is over on the hub: stop working on it
                self.stale = True
                return f"the hub refused a report for attempt {self.d.attempt} ({exc})"
            # a report it cannot take (a bug, a limit) is no reason to kill a working worker
            log.warning("worker %s: telemetry report refused: %s", self.d.id, exc)
            self.last_sent = compact
            return None
        self.running_reported = True
        self.last_sent = compact
        self.record.put(telemetry=telemetry.snapshot(), raw_offset=raw_offset)
        return None

    def maybe_push_log(self, now: float, force: bool = False) -> None:
        """Relay new lines of the human log (whole lines, ≤ 64 KiB a request) at the hub's character offset."""
        if self.stale or (not force and now - self.last_log_push < self.ctx.limits.log_every):
            return
        self.last_log_push = now
        for _ in range(64 if force else 4):
            try:
                size = self.human.path.stat().st_size
            except FileNotFoundError:
                return
            if size <= self.human_pushed:
                return
            with open(self.human.path, "rb") as f:
                f.seek(self.human_pushed)
                chunk = f.read(LOG_CHUNK)
            cut = chunk.rfind(b"\n") + 1 or len(chunk)
            text = chunk[:cut].decode("utf-8", errors="replace")
            try:
                if self.hub_log_size is None:
                    # the log is the assignment's, across attempts: learn where the hub's ends (a gap answer says)
                    self.hub_log_size = self.ctx.link.log(self.d.id, self.d.attempt, 1 << 53, "")
                self.hub_log_size = self.ctx.link.log(self.d.id, self.d.attempt, self.hub_log_size, text)
            except LogGap as gap:
                self.hub_log_size = gap.size
                continue
            except (Unreachable, Refused):
                return
            self.human_pushed += cut
            self.record.put(human_pushed=self.human_pushed, hub_log_size=self.hub_log_size)

    def with_freshness(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the freshness notes added when the attempt ended before its first report (still told)."""
        if not self.running_reported and self.freshness_notes:
            body["freshness"] = self.freshness_notes
        return body

    def deliver(self, body: dict[str, Any], parked: bool, keep_worktree: bool = False) -> None:
        """Send the final report until the hub has it (or says the attempt is stale); keep it in the state file
        meanwhile, so a host that dies now still delivers it after a restart. One the hub refuses is sent again
        smaller (:data:`FALLBACKS`), never without ``pushed`` while the hub may take it with it."""
        d = self.d
        self.record.put(phase="parked" if parked else "finishing", pending=None if self.stale else body)
        delay = 0.5
        while not self.stale:
            try:
                self._after_a_stop(body, self.send(body))
                break
            except Refused as exc:
                smaller = _smaller(body)
                if isinstance(exc, Stale) or exc.status == 404 or smaller is None:
                    log.info("worker %s: final report not taken: %s", d.id, exc)
                    break
                log.warning("worker %s: final report refused (%s); sending it again with %s alone", d.id, exc,
                            ", ".join(smaller))
                body = smaller
            except Unreachable as exc:
                if self.ctx.stopping.is_set():
                    log.warning("worker %s: hub unreachable (%s); the report waits in %s", d.id, exc,
                                self.ctx.state.path)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
        self.maybe_push_log(time.time(), force=True)
        if parked:
            self.record.put(phase="parked", pending=None, pid=None, pgid=None)
        elif keep_worktree:
            self.record.put(phase="orphaned", pending=None, pid=None, pgid=None)
        else:
            self.record.drop()

    def _after_a_stop(self, body: dict[str, Any], answer: dict[str, Any]) -> None:
        """Say in the human log when the hub kept the assignment cancelled under the state just reported: a stop
        that raced the end of the run (the hub takes the report's record but keeps the person's cancel), so the
        log's ``[end] done …`` is not read as the assignment's state."""
        state = body.get("state")
        if state is not None and state != "cancelled" and answer.get("state") == "cancelled":
            log.info("worker %s: reported %s after the stop; the assignment stays cancelled", self.d.id, state)
            self.human.write([f"[end] reported {state} after the stop; the assignment stays cancelled"])

    def restore(self, rec: dict[str, Any]) -> None:
        """Go on from what a previous host process recorded: the log relay's offsets; its running report was sent."""
        self.human_pushed = int(rec.get("human_pushed") or 0)
        self.hub_log_size = rec.get("hub_log_size") if isinstance(rec.get("hub_log_size"), int) else None
        self.running_reported = True


# What a final report refused by the hub (a field past its schema) is sent again with: first the fields the hub
# acts on (without ``pushed`` a done assignment never enters the merge queue nor gets its PR), then the state and
# the reason alone; a reason is at most what the hub takes.
FALLBACKS = (("attempt", "state", "reason", "pushed", "branch", "worktree", "wip_commit"),
             ("attempt", "state", "reason"))
MAX_REASON = 4000


def _smaller(body: dict[str, Any]) -> dict[str, Any] | None:
    """The next, smaller report to send after the hub refused ``body``; None when there is none."""
    for keys in FALLBACKS:
        smaller = {k: body[k] for k in keys if k in body}
        if isinstance(smaller.get("reason"), str):
            smaller["reason"] = smaller["reason"][:MAX_REASON]
        if smaller != body:
            return smaller
    return None
