"""Request and response bodies of the REST API, as pydantic models.

Requests are strict: unknown fields, wrong types and missing fields are
refused with 422 and change nothing. Field names are seed 001's. Responses
are documented here and produced by the core's ``render`` functions; the
OpenAPI document at ``/openapi.json`` is generated from these models.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from coordhub.errors import MAX_UNKNOWN_FIELDS, too_many_unknown

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _line(value: str) -> str:
    # A printable string has no control character (each is Unicode category Cc, never printable): one C scan
    # answers for nearly every value, the regular expression only for the rest (issue 15: ~1.6k instructions
    # less a field, several fields a send or a claim).
    if not value.isprintable() and _CONTROL.search(value):
        raise ValueError("must be one line without control characters")
    return value


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be left out, but not null: the field has no empty value")
    return value


def _no_null(schema: dict[str, Any]) -> None:
    variants = schema.pop("anyOf", [])
    kept = [v for v in variants if v != {"type": "null"}]
    if len(kept) == 1:
        schema.update(kept[0])
    elif kept:
        schema["anyOf"] = kept


_T = TypeVar("_T")
# A field of a partial update that may be left out (None here: keep its value) but not sent as null, since it
# has no empty value to clear to (a 422, not the database's NOT NULL refusal as a 500); the schema shows no null.
Omittable = Annotated[_T | None, BeforeValidator(_not_null), Field(json_schema_extra=_no_null)]
Line = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_line)]
LongLine = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_line)]
Subject = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_line)]
Text = Annotated[str, Field(max_length=524_288), AfterValidator(_text)]
LeaseText = Annotated[str, Field(max_length=4096), AfterValidator(_text)]  # core.leases.MAX_DESCRIPTION
Fence = Annotated[int, Field(ge=1, le=2**62)]
# Seed 001 lets any call name its session with session_id, in the body or in the query; write bodies other than a
# lease claim's and a work item's refused the field as unknown (422), and a no-auth hub's answer pointed at it.
CallerName = Annotated[Line | None, Field(description=(
    "The calling session, as seed 001 names it in any body: with auth it must be the token's own (else 403)."))]




@cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    """Every key ``model`` takes: its fields' names and their aliases."""
    names = set(model.model_fields)
    for info in model.model_fields.values():
        names.update(a for a in (info.alias, info.validation_alias) if isinstance(a, str))
    return frozenset(names)


class Strict(BaseModel):
    """Base of request bodies: no unknown fields, no type coercion.

    An object with more than :data:`MAX_UNKNOWN_FIELDS` unknown fields is
    refused as one problem (type ``too_many_unknown_fields``, naming the first
    :data:`~coordhub.errors.NAMED_UNKNOWN` and the count), not one per field: a 1 MiB body of
    130,000 unknown keys made pydantic, FastAPI and the error handler build
    130,000 problems and an 11 MiB 422, holding the event loop ~1.3 s a
    request, within a token's rate limit many times a second.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown(cls, data: Any) -> Any:
        if (type(data) is dict and len(data) > MAX_UNKNOWN_FIELDS  # a small object costs this test alone
                and cls.model_config.get("extra") == "forbid"):  # a subclass taking unknown fields takes them all
            known = _field_names(cls)
            unknown = [k for k in data if k not in known]
            if len(unknown) > MAX_UNKNOWN_FIELDS:
                raise PydanticCustomError("too_many_unknown_fields", "{text}",
                                          {"text": too_many_unknown([str(k) for k in unknown])})
        return data


class Out(BaseModel):
    """Base of response bodies (documentation; extra fields allowed for forward compatibility)."""

    model_config = ConfigDict(extra="allow")


# ---- leases (seed 001 "locks") -------------------------------------------------

class LockClaim(Strict):
    """``POST /api/coord/locks``: claim a lease."""

    project_key: Line
    resource: LongLine = Field(description="A path (`server/src/`), glob (`src/**/*.py`) or name (`deploy:staging`).")
    session_id: Line | None = Field(None, description="Must be the caller's own session (with auth).")
    description: LeaseText | None = Field(None, description="At most 4096 characters.")
    ttl_hours: float = Field(2.0, description="Hours until expiry; 0 = never (seed 001). Must be ≥ 0.")


class LockRenew(Strict):
    """``POST /api/coord/locks/{id}/renew``: extend a live lease."""

    ttl_hours: float | None = Field(None, description="New TTL from now; default: the lease's own TTL.")
    session_id: Line | None = None


class LeaseOut(Out):
    """A lease (seed 001 lock fields plus fence, kind, state and time left)."""

    id: str
    fence: int
    project_key: str
    resource: str
    kind: str
    session_id: str
    description: str | None
    ttl_hours: float
    acquired_at: str
    renewed_at: str | None
    expires_at: str | None
    expires_in_seconds: float | None
    state: str
    released_at: str | None
    released_by: str | None
    release_reason: str | None = Field(None, description="Why it ended, when a rule or a person said so "
                                                         "(a stale takeover records the holder's inactivity).")
    created_at: str = Field(description="Seed 001's field: the grant, as acquired_at.")
    updated_at: str = Field(description="Seed 001's field: the last change (grant, renewal, end).")


class ClaimOut(LeaseOut):
    """A claimed lease: a new grant, or the caller's live lease on the same resource, renewed."""

    renewed: bool = Field(description="True when the caller already held this resource: the same lease "
                                      "(same id and fence) renewed to the new TTL, not a second grant.")


class ReleaseOut(LeaseOut):
    """A released (or force-released, or taken-over) lease."""

    already: bool = Field(description="True when the lease had ended before this request (released, expired, "
                                      "revoked, or taken over by the caller): the request changed nothing.")


class ReleaseAllOut(Out):
    """Result of releasing every lease of a session."""

    session_id: str
    released: int
    lease_ids: list[str]


class ConflictsOut(Out):
    """What an edit would collide with."""

    leases: list[LeaseOut] = Field(description="Other sessions' overlapping live leases, the oldest 500 at most; "
                                               "empty only when there is none.")
    own: list[LeaseOut] = Field(description="The caller's own overlapping live leases, the oldest 500 at most.")
    halt: HaltOut | None = Field(description="The halt that covers the caller (the fleet's first), else null.")
    paused: PauseOut | None = Field(None, description="The caller's pause, else null.")
    leases_more: bool = Field(False, description="True when ``leases`` was cut (GET /locks?resource= pages on).")
    own_more: bool = Field(False, description="True when ``own`` was cut.")


class FenceCheckOut(Out):
    """Whether a fence is still the live grant covering a resource."""

    fence: int
    current: bool
    reason: str | None
    lease: LeaseOut | None


# ---- presence, events, notifications --------------------------------------------

class PresenceRegister(Strict):
    """``POST /api/coord/presence/register``."""

    client: Line | None = Field(None, description="The agent kind, e.g. claude-code, codex, cli.")
    client_session: Line | None = Field(None, description="The agent's own session id (Claude's session_id).")
    cwd: LongLine | None = None
    session_id: Line | None = Field(None, description="Must be the caller's own session (with auth).")


class PresenceBeat(Strict):
    """``POST /api/coord/presence/heartbeat``."""

    incarnation: int | None = Field(None, ge=1, le=2**31 - 1)
    session_id: Line | None = None


class PresenceEnd(Strict):
    """``POST /api/coord/presence/deregister``."""

    incarnation: int | None = Field(None, ge=1, le=2**31 - 1)
    release_leases: bool = False
    session_id: Line | None = None


class PresenceOut(Out):
    """One session's presence."""

    session_id: str
    incarnation: int
    state: str
    registered_at: str | None
    last_heartbeat: str | None
    seconds_since_heartbeat: float | None
    deregistered_at: str | None
    client: str | None
    client_session: str | None
    cwd: str | None
    paused: bool = Field(description="Paused after a resume: its writes answer 423 `paused` until it engages.")


class WhoamiOut(Out):
    """The caller."""

    session_id: str | None
    admin: bool
    presence: PresenceOut | None


class EventOut(Out):
    """One event of the log."""

    id: int
    kind: str
    session_id: str | None
    project_key: str | None
    subject_id: str | None
    target: str | None
    created_at: str
    payload: dict[str, Any]


class ClientEvent(Strict):
    """``POST /api/coord/events``: an event a client reports (the git guard's bypasses)."""

    kind: Annotated[str, Field(pattern=r"^(guard|hook)\.[a-z_][a-z0-9_.]{0,60}$")]
    project_key: Line | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class EventGap(Out):
    """Events after ``after`` up to ``pruned_through`` were removed by retention before they were read."""

    after: int
    pruned_through: int


class RetentionOut(Out):
    """``GET /api/coord/retention``: the policy, the event log's pruned bound and the pruner's progress."""

    policy: dict[str, float]
    events_pruned_through: int
    pruner: dict[str, Any]


class NotificationsOut(Out):
    """The caller's events after its notification cursor."""

    cursor: int
    events: list[EventOut]
    gap: EventGap | None = None


class NotificationsAck(Strict):
    """``POST /api/coord/notifications/ack``."""

    up_to: int = Field(ge=0, le=2**62)


# ---- todos -------------------------------------------------------------------------

class TodoAdd(Strict):
    """``POST /api/coord/todos`` (seed 000 fields; ``project``/``parent`` accepted as the CLI names them)."""

    text: Annotated[str, Field(min_length=1, max_length=65_536), AfterValidator(_text)]
    user: Line | None = None
    project_key: Line | None = None
    project: Line | None = Field(None, description="Alias of project_key.")
    parent_id: Line | None = None
    parent: Line | None = Field(None, description="Alias of parent_id.")
    source: Text | None = None
    auto: bool = False
    created_by: Line | None = Field(None, description="Must be the caller's own session (with auth).")
    created_by_user: Line | None = None
    created_by_machine: Line | None = Field(None, description="Must be the MACHINE part of the caller's session "
                                                             "(403 otherwise); default: that machine.")
    session_id: CallerName = None


class TodoDone(Strict):
    """``POST /api/coord/todos/{id}/done``."""

    completed_by: Line | None = Field(None, description="Must be the caller's own session (with auth).")
    session_id: CallerName = None


class TodoOut(Out):
    """A todo."""

    id: str
    text: str
    user: str | None
    project_key: str | None
    parent_id: str | None
    source: str | None
    auto: bool
    status: str
    created_by: str
    created_by_user: str | None
    created_by_machine: str | None
    completed_by: str | None
    created_at: str
    queued_at: str | None = Field(None, description="When the client first tried this write, if it was "
                                  "replayed from its softfail queue (X-Coord-Queued-At); else null.")
    updated_at: str
    completed_at: str | None


class TodoDoneOut(TodoOut):
    """A todo marked done."""

    already: bool = Field(description="True when the todo was done before this request: the request changed "
                                      "nothing (completed_by stays who marked it first).")


# ---- workflows and work items --------------------------------------------------

class WorkflowCreate(Strict):
    """``POST /api/coord/workflows``."""

    project_key: Line
    name: Line
    description: Text | None = None
    status: str = "planning"
    created_by: Line | None = None
    session_id: CallerName = None


class WorkflowPatch(Strict):
    """``PATCH /api/coord/workflows/{id}``."""

    status: str
    updated_by: Line | None = None
    session_id: CallerName = None


class WorkflowOut(Out):
    """A workflow."""

    id: str
    project_key: str
    name: str
    description: str | None
    status: str
    created_by: str
    created_at: str
    updated_at: str


class WorkItemCreate(Strict):
    """``POST /api/coord/work-items``."""

    workflow_id: Line
    title: LongLine
    project_key: Line | None = None
    description: Text | None = None
    status: str = "pending"
    priority: Annotated[int, Field(ge=-1_000_000, le=1_000_000)] = 0
    assigned_to: Line | None = None
    created_by: Line | None = None
    session_id: Line | None = None  # seed 001 named the caller so in any request ("body or query parameter")


class WorkItemPatch(Strict):
    """``PATCH /api/coord/work-items/{id}``; ``fence`` makes the update as a lease holder.

    A field left out keeps its value; ``description`` and ``assigned_to`` sent as null clear it, and
    ``status``, ``title`` and ``priority``, which always have one, refuse null (422).
    """

    status: Omittable[str] = None
    title: Omittable[LongLine] = None
    description: Text | None = None
    priority: Omittable[Annotated[int, Field(ge=-1_000_000, le=1_000_000)]] = None
    assigned_to: Line | None = None
    updated_by: Line | None = None
    session_id: Line | None = None  # seed 001's way to name the caller, as for every request
    fence: Fence | None = None


class WorkItemOut(Out):
    """A work item."""

    id: str
    workflow_id: str
    project_key: str
    title: str
    description: str | None
    status: str
    priority: int
    assigned_to: str | None
    created_by: str
    updated_by: str
    created_at: str
    updated_at: str


class WorkflowDetailOut(WorkflowOut):
    """A workflow with its work items."""

    work_items: list[WorkItemOut]


# ---- components -----------------------------------------------------------------

class ComponentState(Strict):
    """``PUT /api/coord/components/{project_key}/{component}``."""

    state: Line
    version: Line | None = None
    notes: Text | None = None
    updated_by: Line | None = Field(None, description="Must be the caller's own session (with auth).")
    session_id: CallerName = None
    fence: Fence | None = None


class ComponentSet(ComponentState):
    """``PUT /api/coord/components`` (seed 001 form, project and component in the body)."""

    project_key: Line
    component: Line


class ComponentOut(Out):
    """A component's deploy state."""

    project_key: str
    component: str
    state: str
    version: str | None
    notes: str | None
    updated_by: str
    created_at: str
    updated_at: str


# ---- halt and status -----------------------------------------------------------

ScopeText = Annotated[str, Field(min_length=1, max_length=210, description=(
    "`fleet` (the default), `machine:<m>` or `project:<p>`. Admin only, except `machine:<m>` for a session "
    "whose id is `<m>/…`."))]


class HaltSet(Strict):
    """``POST /api/coord/halt``."""

    reason: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_text)]
    scope: ScopeText | None = None
    kill: bool = Field(False, description="Also stop the orchestrator's running workers in the scope (their "
                       "assignments go back to the queue, work saved on their branches); without it they pause.")
    refresh: bool = Field(False, description="When the scope is halted already, replace that halt's `reason` "
                          "(200, `refreshed: true`; `halted_by` and `halted_at` stay) instead of answering 409, if "
                          "you may lift "
                          "it; allowed while that halt covers you. Seed 004's second halt rewrote its reason.")


class HaltOut(Out):
    """A halt: ``halted`` false (and nothing else) when none stands."""

    halted: bool
    scope: str | None = Field(None, description="`fleet`, `machine:<m>` or `project:<p>`.")
    halted_by: str | None = None
    reason: str | None = None
    halted_at: str | None = None
    killed: list[str] | None = Field(None, description="With `kill`: the assignments whose workers are stopped "
                                     "and re-queued.")
    refreshed: bool | None = Field(None, description="True when `refresh` replaced the reason of the halt that "
                                   "stood (200); absent for a new halt (201).")
    refreshed_by: str | None = Field(None, description="With `refreshed`: who gave the new reason (`halted_by` stays "
                                     "who halted, unless an admin took over a session's halt).")


class ListedHaltOut(HaltOut):
    """A standing halt, and whether it covers the caller."""

    applies: bool = Field(description="True when the halt covers the caller: its writes are refused.")


class PauseOut(Out):
    """A session's pause after a resume: it was active under a halt since lifted."""

    paused: bool
    paused_at: str
    scope: str | None = Field(description="The scope of the halt whose lifting paused the session.")


class HaltsOut(HaltOut):
    """``GET /api/coord/halt``: the fleet halt (the fields of :class:`HaltOut`), every standing halt, your pause."""

    halts: list[ListedHaltOut]
    paused: PauseOut | None = Field(description="The caller's pause, null when it may write.")


class ResumeIn(Strict):
    """``POST /api/coord/resume`` (the body is optional: without one, the fleet)."""

    scope: ScopeText | None = None
    engage_all: bool = Field(False, description="Clear the pause of every session in the scope instead of pausing "
                                                "the ones active under the halt.")


class ResumeOut(Out):
    """Result of a resume."""

    halted: bool
    scope: str
    resumed_by: str
    was: HaltOut | None
    paused: list[str] = Field(description="Sessions paused now: active under the halt, they write again after "
                                          "`POST /engage`.")
    engaged: list[str] = Field(description="Sessions whose pause `engage_all` cleared.")


class StatusOut(Out):
    """The seed 001 status overview."""

    server_time: str
    halt: HaltOut | None = Field(description="The fleet halt, null when none stands.")
    halts: list[ListedHaltOut]
    paused: PauseOut | None
    session_id: str | None
    active_locks: list[LeaseOut] = Field(description="The oldest 500 live leases (about 4 MiB at most).")
    active_locks_more: bool = Field(False, description="True when more live leases than ``active_locks`` hold.")
    active_locks_next_after_fence: int | None = Field(
        None, description="When ``active_locks_more``: GET /api/coord/locks?after_fence= this pages on.")
    components: list[ComponentOut] = Field(description="The 50 most recently updated (about 1 MiB at most).")
    active_workflows: list[WorkflowOut] = Field(description="Oldest first, about 1 MiB at most.")
    active_workflows_more: bool = Field(False, description="True when ``active_workflows`` left some out "
                                        "(GET /api/coord/workflows lists them all).")
    unread_messages: int | None = Field(description="The unread messages of ``session_id``; null when the request "
                                        "named no session (a --no-auth hub: ?session_id= or X-Coord-Session).")


ConflictsOut.model_rebuild()


def dump(model: Strict, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields a client actually sent (unset optional fields left out), minus ``exclude``."""
    return {k: v for k, v in model.model_dump(exclude_unset=True).items() if k not in exclude}
