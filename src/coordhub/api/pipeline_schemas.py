"""Request and response bodies of the pipeline's REST API (stage runs, verdicts, fixes, the session summary)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from coordhub.api.orchestrator_schemas import Attempt, Incarnation, Name
from coordhub.api.schemas import Out, Strict

Tail = Annotated[str, Field(max_length=65_536)]


class HostNextRun(Strict):
    """``POST …/hosts/next-run``: long-poll for the next smoke test or review this host may run."""

    machine: Name
    host_incarnation: Incarnation
    wait: float = Field(0.0, ge=0, le=30, description="Seconds to wait for a run (long-poll).")


class Finding(Strict):
    """One finding of a review."""

    file: Annotated[str, Field(max_length=1024)] | None = None
    line: int | None = Field(None, ge=1, le=10_000_000)
    severity: Annotated[str, Field(max_length=20)] | None = None
    message: Annotated[str, Field(min_length=1, max_length=4000)]


class RunReport(Strict):
    """``POST …/stage-runs/{id}/report``: the host reports on an attempt of a run.

    ``done`` means it ran to its end: the hub takes the verdict from
    ``exit_code`` (a test: 0 passed, else failed) or ``verdict`` (a review).
    """

    attempt: Attempt
    host_incarnation: Incarnation | None = Field(
        None, description="The reporting host's incarnation: the machine's current one and the one the run was "
                          "dispatched to, else 409. Deprecated when missing (agents from before it was sent): the "
                          "hub takes the machine's current incarnation.")
    state: Literal["running", "done", "error"]
    exit_code: int | None = Field(None, ge=-255, le=255)
    output_tail: Tail | None = None
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")] | None = None
    verdict: Annotated[str, Field(max_length=40)] | None = None
    summary: Annotated[str, Field(max_length=4000)] | None = None
    findings: list[Finding] | None = Field(None, max_length=200)
    reason: Annotated[str, Field(max_length=4000)] | None = None
    cost_usd: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)


class TestVerdict(Strict):
    """``POST …/assignments/{id}/test``: run the smoke test now, or record a human's verdict."""

    verdict: Literal["passed", "failed"] | None = Field(None, description="Omit to run the test on a host.")
    reason: Annotated[str, Field(max_length=4000)] | None = None


class FixRequest(Strict):
    """``POST …/assignments/{id}/fix``: dispatch a fix worker by hand."""

    guidance: Annotated[str, Field(max_length=65_536)] | None = None


class StageRunOut(Out):
    """A stage run: a smoke test (command, exit code, output tail) or a review (verdict, findings)."""

    id: str
    assignment_id: str
    stage: str
    state: str
    verdict: str | None
    attempt: int
    cost_usd: float | None = Field(None, description="USD, the sum over the run's attempts (a review's claude).")


class NextRunOut(Out):
    """``{run}``: the dispatched run, or null when there was none within ``wait``."""

    run: dict[str, Any] | None


class StagesOut(Out):
    """An assignment's pipeline: its stage, the gates planned for its repo, and every run."""

    assignment_id: str
    stage: str
    gates: list[str]
    runs: list[dict[str, Any]]


class SummaryOut(Out):
    """The session summary (``summary_report``): what ran, passed, merged, cost per model and machine."""

    since: str | None
    assignments: dict[str, Any]
    runs: dict[str, Any]
    cost: dict[str, Any]


class DoneOut(Out):
    """``coord done``: the hooks that ran and the summary."""

    hooks: list[dict[str, Any]]
    summary: dict[str, Any]
