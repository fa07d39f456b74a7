"""Request and response bodies of the planning brain's endpoints (``/api/coord/orchestrator/proposals``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from coordhub.api.schemas import Out, Strict

ProposalId = Annotated[int, Field(ge=1, le=2**62)]


class ProposalsCreate(Strict):
    """``POST …/proposals``: store one plan's proposals (``coord plan``); the hub checks each against the config."""

    proposals: list[dict[str, Any]] = Field(max_length=50, description=(
        "Each {kind: assign|split, repo, issue, title?, labels?, rationale?}; assign adds machine (null: any), "
        "model (null: the config decides), briefing, files_likely; split adds children [{title, body, labels?}]."))
    dry_run: bool = False


class ProposalsApprove(Strict):
    """``POST …/proposals/approve``: queue assign proposals through the path of ``coord assign``."""

    ids: list[ProposalId] = Field(min_length=1, max_length=50)
    auto_pull: bool = Field(False, description="The target machine fast-forwards stale dependency repos first.")
    skip_freshness: bool = Field(False, description="No freshness check of the dependency repos.")
    dry_run: bool = Field(False, description="Make every check; queue nothing.")

    @model_validator(mode="after")
    def _one_mode(self) -> ProposalsApprove:
        if self.auto_pull and self.skip_freshness:
            raise ValueError("give at most one of auto_pull and skip_freshness")
        return self


class SplitChild(Strict):
    """A sub-issue ``coord split`` created for child ``index`` of a split proposal."""

    index: Annotated[int, Field(ge=0, le=99)]
    number: Annotated[int, Field(ge=1, le=2**31 - 1)]
    url: Annotated[str, Field(max_length=500)] | None = None


class SplitRecord(Strict):
    """``POST …/proposals/{id}/split``: record created sub-issues; ``done`` closes the split."""

    created: list[SplitChild] = Field(default_factory=list, max_length=100)
    done: bool = False


class ProposalOut(Out):
    """A proposal."""

    id: int | None
    kind: str
    state: str
    repo: str
    issue: int


class PlanOut(Out):
    """A stored (or, with ``dry_run``, checked) plan."""

    plan_id: str | None
    dry_run: bool
    superseded: list[int]
    proposals: list[ProposalOut]


class ApproveOut(Out):
    """``{results: [{proposal, assignment, already, depends_on}], dry_run}``."""

    results: list[dict[str, Any]]
    dry_run: bool
