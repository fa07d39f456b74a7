"""Request and response bodies of the orchestrator's REST API (``/api/coord/orchestrator``).

Requests are strict like every other body of the hub (unknown fields, wrong
types refused with 422), with one exception: a report's ``telemetry`` (and
its ``result``) ignores fields it does not know, as stream-json itself grows
additively and hosts may send what their parser finds. Sizes are bounded
here; the briefing's byte limit is checked by the core.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from coordhub.api.schemas import Line, LongLine, Out, Strict, Subject, Text
from coordhub.core.orchestrator_config import MODEL_NAME

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@+-]+$")]
AssignmentId = Annotated[str, Field(min_length=8, max_length=8, pattern=r"^[0-9a-f]{8}$")]
Issue = Annotated[int, Field(ge=1, le=2**31 - 1)]
Attempt = Annotated[int, Field(ge=1, le=1_000_000)]
Incarnation = Annotated[int, Field(ge=1, le=2**62)]
ModelName = Annotated[str, Field(min_length=1, max_length=100, pattern=f"^{MODEL_NAME}$")]
Path = Annotated[str, Field(min_length=1, max_length=4096)]



_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")


def _branch(value: str) -> str:
    """``value`` if it is a plain branch name a host may report: letters, digits and ``_ . / + -``, not starting with
    ``-`` or ``.`` (git would read it as an option: the merge host runs ``git push … <branch>`` and ``gh … <branch>``;
    review), without ``..``, ``//``, a trailing ``/`` or ``.``, or a ``.lock`` end (git-check-ref-format)."""
    if (not _BRANCH.fullmatch(value) or ".." in value or "//" in value or value.endswith(("/", ".", ".lock"))
            or "/." in value):
        raise ValueError(f"{value[:80]!r} is not a plain branch name (letters, digits, _ . / + -, not starting with "
                         "- or .; no .., //, /., trailing / or ., or .lock end)")
    return value


Branch = Annotated[str, Field(min_length=1, max_length=250), AfterValidator(_branch)]

class HostRegister(Strict):
    """``POST …/hosts/register``: a ``coord agent`` starts (a new incarnation of its machine's host)."""

    machine: Name
    capabilities: list[Name] = Field(default_factory=list, max_length=64)
    repos: dict[Name, Path] = Field(default_factory=dict, max_length=200,
                                    description="Repo name -> its path on this machine.")
    slots: int = Field(ge=1, le=64, description="Workers this host runs at most at once.")
    agent_version: Line | None = None
    problems: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list, max_length=50, description="What the agent found wrong at start (a repo path that is "
                                                         "not a git repository, no claude binary): shown in status.")
    recovered: list[dict[str, Any]] = Field(
        default_factory=list, max_length=200, description="What a restarted agent found and did, one entry per "
                                                          "orphan: {assignment, action, detail, wip_commit?}.")


class HostHeartbeat(Strict):
    """``POST …/hosts/heartbeat``: the host is alive; what it runs."""

    machine: Name
    host_incarnation: Incarnation
    free_slots: int = Field(ge=0, le=64)
    running: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=256,
        description="Ids of the assignments it runs: from the moment `next` handed one over until its final report "
                    "was accepted.")
    stopping: bool = Field(False, description="The host is shutting down: from this heartbeat on it takes no new "
                                              "assignment, stage run or merge run (its slots become 0), so the "
                                              "work its stopping workers hand back waits for another host.")


class HostNext(Strict):
    """``POST …/hosts/next``: long-poll for the next assignment (the hub dispatches in this call)."""

    machine: Name
    host_incarnation: Incarnation
    wait: float = Field(0.0, ge=0, le=30, description="Seconds to wait for an assignment (long-poll).")


class ResultInfo(BaseModel):
    """The worker's stream-json ``result``, as far as the hub uses it."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    is_error: bool = False
    subtype: Annotated[str, Field(max_length=100)] | None = None
    terminal_reason: Annotated[str, Field(max_length=100)] | None = None


class Telemetry(BaseModel):
    """What the host parsed from the worker's stream-json (display values; unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    session_id: Annotated[str, Field(max_length=100)] | None = None
    model: Annotated[str, Field(max_length=100)] | None = None
    turns: Annotated[int, Field(ge=0, le=10**7)] | None = None
    cost_usd: Annotated[float, Field(ge=0, le=10**6)] | None = None
    last_tool: Annotated[str, Field(max_length=200)] | None = None
    last_file: Annotated[str, Field(max_length=4096)] | None = None
    progress: Annotated[str, Field(max_length=2000)] | None = None
    status_line: Annotated[str, Field(max_length=2000)] | None = None
    rate_limited_until: float | str | None = Field(None, description="Epoch seconds or ISO 8601: pause dispatch "
                                                                     "fleet-wide until then.")
    rate_limited_for: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Seconds from now (a host's own clock measured it): pause dispatch fleet-wide that "
                          "long on the hub's clock; preferred to rate_limited_until when both are sent.")
    permission_denials: int | list[Any] | None = None
    result: ResultInfo | None = None


class AssignmentReport(Strict):
    """``POST …/assignments/{id}/report``: the host reports on an attempt."""

    attempt: Attempt
    host_incarnation: Incarnation | None = Field(
        None, description="The reporting host's incarnation: the machine's current one, else 409 stale_incarnation. "
                          "Deprecated when missing (agents from before it was sent): the hub takes the machine's "
                          "current incarnation and adopts nothing.")
    state: Literal["running", "done", "failed", "stuck", "needs_input"] | None = None
    reason: Annotated[str, Field(max_length=4000)] | None = None
    telemetry: Telemetry | None = None
    worktree: Path | None = None
    branch: Branch | None = None
    pushed: bool | None = None
    wip_commit: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")] | None = None
    changed_files: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        None, max_length=5000, description="Paths the branch changed against its base (at `done`): "
                                           "smoke_tests.capability_rules route its smoke test by them.")
    freshness: list[Annotated[str, Field(max_length=500)]] | None = Field(
        None, max_length=50, description="What the freshness check found on this machine before the worker "
                                         "started: one note per dependency repo (`lib: STALE: …`).")


class LogAppend(Strict):
    """``POST …/assignments/{id}/log``: append the host's filtered log at a character offset."""

    attempt: Attempt
    offset: int = Field(ge=0, le=2**62)
    text: Text = Field(max_length=65_536)


class AssignCreate(Strict):
    """``POST …/assignments``: queue an issue for a worker."""

    machine: Name | None = Field(None, description="The machine to run it on; or `any: true`.")
    any: bool = Field(False, description="Let the hub pick an idle capable machine.")
    repo: Name
    issue: Issue
    model: ModelName | None = None
    labels: list[Line] = Field(default_factory=list, max_length=50,
                               description="The issue's GitHub labels, in order: `models.labels` may pick the model.")
    title: Subject | None = None
    briefing: str = Field("", max_length=262_144, description="At most 64 KiB of UTF-8 (checked by the hub).")
    files_likely: list[LongLine] = Field(default_factory=list, max_length=200,
                                         description="Files the worker will likely touch, leased for it before it "
                                                     "starts; at most 16 KiB in all (checked by the hub).")
    requires: list[Name] = Field(default_factory=list, max_length=32)
    budget_usd: Annotated[float, Field(gt=0, le=10_000)] | None = None
    wall_clock_seconds: Annotated[int, Field(ge=10, le=7 * 86_400)] | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> AssignCreate:
        if (self.machine is None) == (not self.any):
            raise ValueError("give exactly one of machine or any: true")
        if "\x00" in self.briefing:
            raise ValueError("briefing must not contain NUL characters")
        return self


class AssignRetry(Strict):
    """``POST …/assignments/{id}/retry``."""

    model: ModelName | None = Field(None, description="Default: one step up models.escalation after a "
                                                       "failure; a stopped one keeps its model.")


class AssignResume(Strict):
    """``POST …/assignments/{id}/resume-stuck``."""

    guidance: Text = Field(min_length=1, max_length=262_144, description="At most 64 KiB of UTF-8.")


class AssignmentOut(Out):
    """An assignment (lists carry ``briefing_bytes`` instead of ``briefing``)."""

    id: str
    state: str
    attempt: int
    repo: str
    issue: int
    machine: str | None
    ran_on: str | None
    model: str
    model_source: str
    branch: str
    cost_usd: float
    total_cost_usd: float
    reason: str | None


class DispatchOut(Out):
    """What a host gets from `next`: everything the worker needs, its token included (shown once)."""

    id: str
    attempt: int
    repo: str
    issue: int
    branch: str
    model: str
    briefing: str
    worker_session: str
    worker_token: str
    lease_id: str
    fence: int


class NextOut(Out):
    """``{assignment}``: the dispatched assignment, or null when there was none within ``wait``."""

    assignment: DispatchOut | None


class RegisterOut(Out):
    """A registered host: its incarnation, timing and the active config."""

    machine: str
    host_incarnation: int
    heartbeat_seconds: float
    stale_after_seconds: float
    config_version: int
    config: dict[str, Any]


class HeartbeatOut(Out):
    """What a host must do now."""

    ok: bool
    config_version: int
    heartbeat_seconds: float
    stale_after_seconds: float
    paused: bool
    halt: dict[str, Any] | None
    paused_assignments: list[str]
    cancel: list[str]
    rate_limited_until: str | None


class LogSizeOut(Out):
    """``{size}``: characters of log relayed so far."""

    size: int


class LogOut(Out):
    """A piece of the relayed log."""

    text: str
    offset: int
    size: int
    truncated: bool
    state: str


class ConfigOut(Out):
    """The active configuration and its version."""

    version: int
    applied_at: str | None
    applied_by: str | None
    config: dict[str, Any] | None


class FleetOut(Out):
    """The orchestrator's status view."""

    configured: bool
    machines: list[dict[str, Any]]
    queue: list[dict[str, Any]]
    assignments: list[dict[str, Any]]
    paused: dict[str, Any] | None
    stagger: dict[str, Any] | None = Field(None, description="``{until, seconds}`` while concurrency.stagger_seconds "
                                           "since the last dispatch holds every queued assignment back, else null.")
    totals: dict[str, Any]


class UnpauseOut(Out):
    """``DELETE /api/coord/orchestrator/pause``: the pause lifted (``{paused_until, reason}``), or null."""

    was: dict[str, Any] | None


class ReconcileOut(Out):
    """What one reconciliation pass did."""

    stale_hosts: list[str] = Field(description="Hosts found silent without having said they stop (event "
                                   "``host.stale``).")
    stopped_hosts: list[str] = Field(default_factory=list, description="Hosts found silent after a last heartbeat "
                                     "that said they stop (event ``host.stopped``).")
    requeued: list[str]
    failed: list[str]
    merge: dict[str, list[str]] = Field(default_factory=dict, description="What the merge queue's pass did.")
