"""Proposals from the planning brain (``coord plan``), approved into assignments or carried out as splits.

Seed 003's brain kept its proposals in a JSON file overwritten by every plan
and cleared by every approve, dropped the model the LLM proposed, and its
split replaced the parent issue's body (research claude-coordinator.md §4.6,
§4.8). Here a proposal is a row with a state (:data:`TRANSITIONS`):

* ``assign``: an issue for a machine (or any capable one) with a model,
  briefing and likely files. :func:`approve` queues it through
  :func:`coordhub.core.assignments.create` — the path ``coord assign``
  takes, with its refusals (``upstream_in_flight`` while a repo it depends
  on has work in flight, ``already_assigned``) — and marks it ``approved``
  with the assignment's id in the same transaction, so approving twice
  queues once.
* ``split``: sub-issues to create under a parent issue. ``coord split``
  creates them with ``gh`` on the caller's machine and records each number
  here as it goes (:func:`record_split`), so a retry creates only what is
  missing; the parent's body is never touched.

A newer plan that proposes the same issue (same kind) supersedes the older
pending proposal. Who may: like ``assign`` — people's sessions and admins,
never an orchestrator worker or host (:func:`coordhub.core.assignments.may_direct`).
"""

from __future__ import annotations

import enum
import json
import re
import secrets
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator, paging, quota, repodeps
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.orchestrator_config import MODEL_NAME, Config
from coordhub.errors import Conflict, Invalid, NotFound
from coordhub.store.base import Row
from coordhub.store.tx import Tx

MAX_PROPOSALS = 50       # one plan
MAX_CHILDREN = 20        # sub-issues of one split
MAX_TITLE = 256          # characters: GitHub's issue title limit (counted in characters, not bytes)
MAX_BODY_BYTES = 65_536  # a sub-issue's body, as a briefing
MAX_RATIONALE = 2000
MAX_FILES = 200
_MODEL = re.compile(MODEL_NAME)


class State(enum.StrEnum):
    """A proposal's state."""

    PENDING = "pending"
    APPROVED = "approved"
    SPLIT = "split"
    SUPERSEDED = "superseded"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.APPROVED, State.SPLIT, State.SUPERSEDED}),
    State.APPROVED: frozenset(), State.SPLIT: frozenset(), State.SUPERSEDED: frozenset(),
}


class ProposalClosed(Conflict):
    """The proposal was superseded, or is of the other kind's state (409); details give its state."""

    code = "proposal_closed"


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a proposal."""
    return {"id": row["id"], "plan_id": row["plan_id"], "kind": row["kind"], "state": row["state"],
            "repo": row["repo"], "issue": row["issue"], "title": row["title"], "labels": _loads(row["labels"], []),
            "machine": row["machine"], "model": row["model"], "briefing": row["briefing"],
            "files_likely": _loads(row["files_likely"], []), "rationale": row["rationale"],
            "children": _loads(row["children"], []), "created": _loads(row["created"], {}),
            "assignment_id": row["assignment_id"], "created_by": row["created_by"],
            "created_at": isoformat(row["created_at"]), "decided_by": row["decided_by"],
            "decided_at": isoformat(row["decided_at"]), "updated_at": isoformat(row["updated_at"])}


def get_row(tx: Tx, proposal_id: int) -> Row:
    """The proposal's row; ``NotFound`` if there is none."""
    row = tx.proposals.get(proposal_id)
    if row is None:
        raise NotFound(f"no proposal {proposal_id} (see `coord plan` for the pending ones)")
    return row


PAGE = 1000  # proposals one list answer carries at most (``limit``'s bound)
TEXT = ("title", "labels", "briefing", "files_likely", "rationale", "children", "created")  # what paging counts


def find(tx: Tx, state: str | None = None, repo: str | None = None, limit: int = 200,
         cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Proposals, newest first after ``cursor``, and the cursor of the ones that follow (None: none follow);
    ``state`` one of :class:`State`.

    At most ``limit`` (:data:`PAGE` at most) and about :data:`~coordhub.core.paging.PAGE_BYTES` of their text
    (at least one): a split proposal holds up to 20 sub-issue bodies of 64 KiB, so 1,000 of them made one
    answer of about a gigabyte (review DoS). ``Invalid`` for another state or a cursor not from this list.
    """
    if state is not None and state not in {s.value for s in State}:
        raise Invalid(f"state must be one of {', '.join(s.value for s in State)}", field="state")
    rows, more = paging.page(lambda k, after: tx.proposals.find(state, repo, k, after),
                             max(1, min(limit, PAGE)), TEXT, tx.proposals.key, cursor)
    return [render(r) for r in rows], more


def _move(tx: Tx, row: Row, to: State, now: float, by: str | None, **changes: Any) -> Row:
    """Change a proposal's state (checked against :data:`TRANSITIONS`) and emit ``proposal.<state>``."""
    current = State(row["state"])
    if to not in TRANSITIONS[current]:
        raise ProposalClosed(f"proposal {row['id']} is {current.value}; it cannot become {to.value}",
                             state=current.value)
    changes = {**changes, "state": to.value, "updated_at": now}
    tx.proposals.set(row["id"], changes)
    new = {**row, **changes}
    emit(tx, f"proposal.{to.value}", now, session_id=by, project_key=new["repo"], subject_id=str(new["id"]),
         proposal_id=new["id"], proposal_kind=new["kind"], repo=new["repo"], issue=new["issue"],
         assignment_id=new["assignment_id"])
    return new


# ---- storing a plan -----------------------------------------------------------------------------

def _text(value: Any, field: str, limit: int, *, required: bool = False, chars: bool = False) -> str:
    """``value`` as a string of at most ``limit`` UTF-8 bytes (``chars``: characters, as GitHub counts a title)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(f"{field} must be a{' non-empty' if required else ''} string", field=field)
    if (len(value) if chars else len(value.encode("utf-8"))) > limit:
        raise Invalid(f"{field} is over {limit} {'characters' if chars else 'bytes'}", field=field, limit=limit)
    return value


def _strings(value: Any, field: str, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v and len(v) <= 1024 for v in value):
        raise Invalid(f"{field} must be a list of non-empty strings", field=field)
    if len(value) > limit:
        raise Invalid(f"{field} has {len(value)} items; at most {limit}", field=field)
    return list(value)


def check(config: Config, p: Any, where: str) -> Row:
    """One proposal as the brain gave it, checked against the config; the row's columns (without ids, times).

    ``p``: ``{kind: assign|split, repo, issue, title?, labels?, rationale?}``
    plus, for ``assign``, ``machine`` (null: any capable machine), ``model``
    (null: the config decides; see :func:`_model`), ``briefing``, ``files_likely``; for
    ``split``, ``children: [{title, body, labels?}]`` (2 to
    :data:`MAX_CHILDREN`). ``Invalid`` naming ``where`` and the field.
    """
    if not isinstance(p, dict):
        raise Invalid(f"{where} is not an object", field=where)
    kind = p.get("kind")
    if kind not in ("assign", "split"):
        raise Invalid(f"{where}.kind must be assign or split", field=f"{where}.kind")
    repo, issue = p.get("repo"), p.get("issue")
    if not isinstance(repo, str) or config.repo(repo) is None:
        raise Invalid(f"{where}.repo {str(repo)[:64]!r} is not a repo of coordinator.yml", field=f"{where}.repo")
    if not isinstance(issue, int) or isinstance(issue, bool) or not 0 < issue < 2**31:
        raise Invalid(f"{where}.issue must be an issue number", field=f"{where}.issue")
    row: Row = {"kind": kind, "repo": repo, "issue": issue,
                "title": _text(p.get("title"), f"{where}.title", MAX_TITLE, chars=True) or None,
                "labels": json.dumps(_strings(p.get("labels"), f"{where}.labels", 50)),
                "rationale": _text(p.get("rationale"), f"{where}.rationale", MAX_RATIONALE),
                "machine": None, "model": None, "briefing": "", "files_likely": "[]", "children": "[]"}
    if kind == "assign":
        try:
            row["machine"] = assignments.check_target(config, p.get("machine"), repo, [])
        except Invalid as exc:
            raise Invalid(f"{where}: {exc.message}", field=f"{where}.machine") from None
        row["model"] = _model(config, p.get("model"), json.loads(row["labels"]), where)
        row["briefing"] = _text(p.get("briefing"), f"{where}.briefing", assignments.MAX_BRIEFING_BYTES)
        files = _strings(p.get("files_likely"), f"{where}.files_likely", MAX_FILES)
        try:
            assignments.check_files_likely(files)
        except Invalid as exc:
            raise Invalid(f"{where}.{exc}", field=f"{where}.files_likely") from None
        row["files_likely"] = json.dumps(files)
        return row
    children = p.get("children")
    if not isinstance(children, list) or not 2 <= len(children) <= MAX_CHILDREN:
        raise Invalid(f"{where}.children must list 2 to {MAX_CHILDREN} sub-issues", field=f"{where}.children")
    row["children"] = json.dumps([
        {"title": _text(c.get("title") if isinstance(c, dict) else None, f"{where}.children[{i}].title", MAX_TITLE,
                        required=True, chars=True),
         "body": _text(c.get("body"), f"{where}.children[{i}].body", MAX_BODY_BYTES),
         "labels": _strings(c.get("labels"), f"{where}.children[{i}].labels", 20)}
        for i, c in enumerate(children)])
    return row


def _model(config: Config, model: Any, labels: list[str], where: str) -> str | None:
    """The model an assign proposal keeps: None when a ``models.labels`` rule applies to ``labels`` (the rule
    wins, as the planner is told) or none was proposed; else ``model``, which must be one coordinator.yml names
    (the escalation ladder, the default, a label rule's): the planner reads issue bodies anyone may write, so
    what it proposes is held to the models the user configured. ``Invalid`` otherwise."""
    if model is None:
        return None
    if not isinstance(model, str) or not _MODEL.fullmatch(model):
        raise Invalid(f"{where}.model {str(model)[:64]!r} is not a model name", field=f"{where}.model")
    models = config.models
    named = {*models.escalation, models.default, *models.labels.values()}
    if model not in named:
        raise Invalid(f"{where}.model {model!r} is not a model coordinator.yml names (models: "
                      f"{', '.join(sorted(named))})", field=f"{where}.model")
    return None if any(label in models.labels for label in labels) else model


def store(tx: Tx, actor: Actor, now: float, proposals: list[Any], *, dry_run: bool = False) -> dict[str, Any]:
    """Check and store one plan's proposals as ``pending``: ``{plan_id, proposals, superseded}``.

    All or nothing: one bad proposal (``Invalid``, naming it) stores none.
    A pending proposal of the same kind for the same issue is superseded
    (its id in ``superseded``). ``dry_run`` checks and writes nothing (the
    proposals carry ``id: null``). ``Forbidden`` for a worker or host.
    Each proposal stored counts against its session's daily write quota
    (:func:`coordhub.core.quota.charge`, 429 ``write_quota``): proposals are never pruned.
    """
    assignments.may_direct(actor)
    config = coordinator.require(tx)
    if len(proposals) > MAX_PROPOSALS:
        raise Invalid(f"a plan has at most {MAX_PROPOSALS} proposals, not {len(proposals)}", field="proposals")
    rows = [check(config, p, f"proposals[{i}]") for i, p in enumerate(proposals)]
    seen: set[tuple[str, int, str]] = set()
    for i, r in enumerate(rows):
        key = (r["repo"], r["issue"], r["kind"])
        if key in seen:
            raise Invalid(f"proposals[{i}]: {r['repo']}#{r['issue']} is proposed twice ({r['kind']})",
                          field=f"proposals[{i}]")
        seen.add(key)
    plan_id = secrets.token_hex(4)
    base: Row = {"plan_id": plan_id, "state": State.PENDING.value, "created": "{}", "assignment_id": None,
                 "created_by": actor.session_id, "created_at": now, "decided_by": None, "decided_at": None,
                 "updated_at": now}
    if dry_run:
        return {"plan_id": None, "dry_run": True, "superseded": [],
                "proposals": [render({**base, **r, "id": None, "plan_id": None}) for r in rows]}
    out, superseded = [], []
    for r in rows:
        for old in tx.proposals.pending_for(r["repo"], r["issue"], r["kind"]):
            _move(tx, old, State.SUPERSEDED, now, actor.session_id, decided_by=actor.session_id, decided_at=now)
            superseded.append(old["id"])
        # never pruned, and a split's sub-issue bodies make a row of up to ~1 MiB (the body limit): counted as todos
        quota.charge(tx, actor, now, quota.size_of(*(r[f] for f in TEXT if isinstance(r.get(f), str))), "proposal")
        row = {**base, **r, "id": tx.proposals.next_id()}
        tx.proposals.add(row)
        emit(tx, "proposal.pending", now, session_id=actor.session_id, project_key=row["repo"],
             subject_id=str(row["id"]), proposal_id=row["id"], proposal_kind=row["kind"], repo=row["repo"],
             issue=row["issue"], plan_id=plan_id)
        out.append(render(row))
    return {"plan_id": plan_id, "dry_run": False, "superseded": superseded, "proposals": out}


# ---- approving ----------------------------------------------------------------------------------

def approve(tx: Tx, actor: Actor, now: float, ids: list[int], *, freshness: str | None = None,
            dry_run: bool = False) -> dict[str, Any]:
    """Queue each ``assign`` proposal of ``ids`` as ``coord assign`` would; ``{results: [...]}`` in ``ids`` order.

    Each result: ``{proposal, assignment, already, depends_on}`` —
    ``already`` true when it had been approved before (its assignment is
    returned, nothing is queued again); ``depends_on`` the repos whose
    freshness the target machine checks first (empty with ``freshness``
    ``skip``). ``freshness``: None (``workers.auto_pull``), ``pull`` or
    ``skip``. All or nothing, in one transaction: the first refusal
    (``UpstreamInFlight``, ``AlreadyAssigned``, ``ProposalClosed``,
    ``Invalid`` for a split proposal, ``NotFound``) queues none. ``dry_run``
    makes every check and writes nothing (each assignment as ``coord assign
    --dry-run`` shows it).
    """
    assignments.may_direct(actor)
    config = coordinator.require(tx)
    if not ids:
        raise Invalid("give at least one proposal id", field="ids")
    results = []
    for pid in dict.fromkeys(ids):
        row = get_row(tx, pid)
        if row["kind"] != "assign":
            raise Invalid(f"proposal {pid} is a split of {row['repo']}#{row['issue']}: carry it out with "
                          f"`coord split {pid}`", field="ids")
        deps = [] if freshness == "skip" else repodeps.upstream(config, row["repo"])
        if row["state"] == State.APPROVED.value:
            a = assignments.get(tx, row["assignment_id"])
            results.append({"proposal": render(row), "assignment": a, "already": True, "depends_on": deps})
            continue
        if row["state"] != State.PENDING.value:
            raise ProposalClosed(f"proposal {pid} is {row['state']}: nothing to approve", state=row["state"])
        a = assignments.create(
            tx, actor, now, machine=row["machine"], repo=row["repo"], issue=row["issue"], model=row["model"],
            labels=_loads(row["labels"], []), title=row["title"], briefing=row["briefing"],
            files_likely=_loads(row["files_likely"], []), freshness=freshness, model_source="proposal",
            dry_run=dry_run)
        if dry_run:
            results.append({"proposal": render(row), "assignment": a, "already": False, "depends_on": deps})
            continue
        row = _move(tx, row, State.APPROVED, now, actor.session_id, assignment_id=a["id"],
                    decided_by=actor.session_id, decided_at=now)
        results.append({"proposal": render(row), "assignment": a, "already": False, "depends_on": deps})
    return {"results": results, "dry_run": dry_run}


# ---- splitting ----------------------------------------------------------------------------------

def record_split(tx: Tx, actor: Actor, now: float, proposal_id: int, created: list[dict[str, Any]],
                 done: bool = False) -> dict[str, Any]:
    """Record sub-issues ``coord split`` created (``[{index, number, url}]``); with ``done``, close the split.

    Recording an index again with the same number changes nothing (a
    retry); with another number it is a ``Conflict`` (two sub-issues for
    one child: the caller must not create more). ``done`` needs every child
    recorded (``Invalid`` otherwise) and moves the proposal to ``split``;
    on a proposal already ``split`` it is a no-op. ``Invalid`` for an
    ``assign`` proposal or an index out of range; ``ProposalClosed`` for a
    superseded one.
    """
    assignments.may_direct(actor)
    row = get_row(tx, proposal_id)
    if row["kind"] != "split":
        raise Invalid(f"proposal {proposal_id} is an assignment: approve it with `coord approve {proposal_id}`",
                      field="id")
    if row["state"] == State.SUPERSEDED.value:
        raise ProposalClosed(f"proposal {proposal_id} was superseded by a newer plan", state=row["state"])
    children = _loads(row["children"], [])
    have: dict[str, Any] = _loads(row["created"], {})
    for c in created:
        index, number = c.get("index"), c.get("number")
        if not isinstance(index, int) or not 0 <= index < len(children):
            raise Invalid(f"index {index!r} is not a child of proposal {proposal_id} (0 to {len(children) - 1})",
                          field="created")
        known = have.get(str(index))
        if known is not None and known["number"] != number:
            raise Conflict(f"child {index} of proposal {proposal_id} is already issue #{known['number']}",
                           index=index, number=known["number"])
        have[str(index)] = {"number": number, "url": c.get("url")}
    if have != _loads(row["created"], {}):
        tx.proposals.set(row["id"], {"created": json.dumps(have, sort_keys=True), "updated_at": now})
        row = {**row, "created": json.dumps(have, sort_keys=True), "updated_at": now}
    if done and row["state"] == State.PENDING.value:
        missing = [i for i in range(len(children)) if str(i) not in have]
        if missing:
            raise Invalid(f"proposal {proposal_id}: children {missing} have no sub-issue yet", field="done")
        row = _move(tx, row, State.SPLIT, now, actor.session_id, decided_by=actor.session_id, decided_at=now)
    return render(row)
