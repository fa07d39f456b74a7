"""Request and response bodies of the merge queue's endpoints (``/api/coord/orchestrator/merges``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from coordhub.api.orchestrator_schemas import AssignmentId, Incarnation, Name
from coordhub.api.schemas import LongLine, Out, Strict
from coordhub.core.vocab import MergeMethod

Sha = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[0-9a-f]+$")]
Method = MergeMethod


class MergeDrive(Strict):
    """``POST …/merges``: enter or re-queue ids, reorder, or only look (``dry_run``)."""

    ids: list[AssignmentId] = Field(default_factory=list, max_length=200,
                                    description="Assignment ids to enter, or entry ids to send back to the queue.")
    repo: Name | None = None
    method: Method | None = None
    order: list[AssignmentId] = Field(default_factory=list, max_length=200,
                                      description="Queued entries (or their assignments) to put first, in order.")
    dry_run: bool = False


class MergeNext(Strict):
    """``POST …/merges/next``: a host long-polls for a run."""

    machine: Name
    host_incarnation: Incarnation
    wait: float = Field(0.0, ge=0, le=30, description="Seconds to wait for a run (long-poll).")


class MergeReport(Strict):
    """``POST …/merges/report``: what a run did (see ``coordhub.core.mergereports.report``)."""

    machine: Name
    host_incarnation: Incarnation
    batch_id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
    outcome: Literal["landing", "merged", "conflict", "red", "policy", "retry", "moved", "error"]
    tip: Sha | None = None
    sha: Sha | None = None
    culprit: AssignmentId | None = None
    reason: LongLine | None = None
    evidence: dict[str, Any] | None = Field(None, description="{command, exit_code, output, checks, files}; "
                                                               "bounded by the request size.")
    pr_number: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    pr_url: Annotated[str, Field(max_length=500)] | None = None
    only: list[AssignmentId] | None = Field(None, max_length=64, description="Apply the outcome to these entries "
                                                                              "of the run only.")


class MergeEntryOut(Out):
    """One merge entry."""

    id: str
    seq: int
    assignment_id: str
    repo: str
    target: str
    branch: str
    state: str
    method: str


class MergeQueueOut(Out):
    """The queue: ``queue`` (FIFO, with ``position``), ``fixing``, ``needs_input``, ``recent``."""

    queue: list[dict[str, Any]]
    fixing: list[dict[str, Any]]
    needs_input: list[dict[str, Any]]
    recent: list[dict[str, Any]]


class MergeDriveOut(MergeQueueOut):
    """What ``POST …/merges`` did, and the queue after it."""

    dry_run: bool
    entered: list[str]
    requeued: list[str]
    unchanged: list[str]
    ordered: list[str]
    next: list[str]
    why: str


class MergeNextOut(Out):
    """``{run: {batch_id, repo, target, method, github, gate_command, …, entries: [...]} | null}``."""

    run: dict[str, Any] | None


class MergeReportOut(Out):
    """``{outcome, entries}``."""

    outcome: str
    entries: list[dict[str, Any]]
