"""Workflows and their work items (seed 001).

A workflow is a multi-step initiative; work items are its tasks. Statuses are
seed 001's and are enforced here. A work-item update may carry the ``fence``
of a lease the caller holds; it is refused unless that lease is live, in the
item's project and *covers* the item: its resource is ``work-item:<id>`` or
``workflow:<workflow id>`` (:func:`fence_names`; contract §2.3).
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import fences, paging, projects, quota
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.errors import Invalid, NotFound
from coordhub.ids import new_id
from coordhub.store.base import Row
from coordhub.store.tx import Tx

WORKFLOW_STATUSES = ("planning", "active", "blocked", "completed", "cancelled")
WORK_ITEM_STATUSES = ("pending", "in_progress", "blocked", "completed", "cancelled")
ACTIVE_WORKFLOW_STATUSES = ("planning", "active", "blocked")
PAGE = 1000  # workflows, or work items of one workflow, one answer holds at most (and about paging.PAGE_BYTES)
WORKFLOW_TEXT = ("name", "description")  # what paging.size counts of a workflow …
ITEM_TEXT = ("title", "description")     # … and of a work item
LONG = ("description",)  # what a brief list leaves out of either (paging.page's blank)
EVENT_TEXT = 200  # characters of a description a work_item.updated event carries


def _status(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise Invalid(f"{what} status must be one of {', '.join(allowed)}, not {value[:80]!r}", field="status")
    return value


def render_workflow(row: Row) -> dict[str, Any]:
    """The JSON form of a workflow."""
    return {"id": row["id"], "project_key": row["project_key"], "name": row["name"],
            "description": row["description"], "status": row["status"], "created_by": row["created_by"],
            "created_at": isoformat(row["created_at"]), "updated_at": isoformat(row["updated_at"])}


def render_item(row: Row) -> dict[str, Any]:
    """The JSON form of a work item."""
    return {"id": row["id"], "workflow_id": row["workflow_id"], "project_key": row["project_key"],
            "title": row["title"], "description": row["description"], "status": row["status"],
            "priority": row["priority"], "assigned_to": row["assigned_to"], "created_by": row["created_by"],
            "updated_by": row["updated_by"], "created_at": isoformat(row["created_at"]),
            "updated_at": isoformat(row["updated_at"])}


def create(tx: Tx, actor: Actor, *, project_key: str, name: str, description: str | None = None,
           status: str = "planning", now: float) -> dict[str, Any]:
    """Create a workflow (default status ``planning``)."""
    status = _status(status, WORKFLOW_STATUSES, "workflow")
    project_key = projects.fold(project_key)
    quota.charge(tx, actor, now, quota.size_of(project_key, name, description), "workflow")
    row: Row = {"id": new_id(), "project_key": project_key, "name": name, "description": description,
           "status": status, "created_by": actor.session_id, "created_at": now, "updated_at": now}
    tx.workflows.add(row)
    emit(tx, "workflow.created", now, session_id=actor.session_id, project_key=project_key, subject_id=row["id"],
         name=name)
    return render_workflow(row)


def _workflow(tx: Tx, workflow_id: str) -> Row:
    row = tx.workflows.get(workflow_id)
    if row is None:
        raise NotFound(f"no workflow {workflow_id!r}")
    return row


def get_workflow(tx: Tx, workflow_id: str, cursor: str | None = None,
                 brief: bool = False) -> tuple[dict[str, Any], str | None]:
    """A workflow with its work items (highest priority first, after ``cursor``), and the cursor of the items
    that follow (None: none follow); ``NotFound`` if there is no such workflow.

    At most :data:`PAGE` items and about :data:`~coordhub.core.paging.PAGE_BYTES` of their text (at least one);
    ``brief``: the workflow's and each item's ``description`` is null (:data:`LONG`).
    """
    out = render_workflow(_workflow(tx, workflow_id))
    if brief:
        out.update(dict.fromkeys(LONG))
    rows, more = paging.page(lambda k, a: tx.work_items.find(k, a, workflow_id=workflow_id), PAGE, ITEM_TEXT,
                             tx.work_items.key, cursor, LONG if brief else ())
    out["work_items"] = [render_item(r) for r in rows]
    return out, more


def page(tx: Tx, *, project_key: str | None = None, status: str | None = None,
         cursor: str | None = None, brief: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    """Workflows, optionally of one project and one status, oldest first after ``cursor``, and the cursor of the
    ones that follow (None: none follow).

    At most :data:`PAGE` and about :data:`~coordhub.core.paging.PAGE_BYTES` of their text (at least one);
    ``brief``: each ``description`` is null (:data:`LONG`). Raises ``Invalid`` for an unknown status or a cursor
    not from this list.
    """
    if status is not None:
        _status(status, WORKFLOW_STATUSES, "workflow")
    project_key = projects.fold(project_key)
    rows, more = paging.page(lambda k, a: tx.workflows.find(k, a, project_key=project_key, status=status), PAGE,
                             WORKFLOW_TEXT, tx.workflows.key, cursor, LONG if brief else ())
    return [render_workflow(r) for r in rows], more


def active(tx: Tx, project_key: str | None, budget: int) -> tuple[list[dict[str, Any]], bool]:
    """Workflows not yet completed or cancelled (of one project), oldest first: as many of the first :data:`PAGE`
    as about ``budget`` bytes of their text hold (encoded, see :mod:`~coordhub.core.paging`; at least one), and
    whether more are left out."""
    project_key = projects.fold(project_key)
    rows, more = paging.take(paging.keyed(lambda k, a: tx.workflows.in_states(ACTIVE_WORKFLOW_STATUSES, k,
                                                                             project_key, a), tx.workflows.key),
                             PAGE, WORKFLOW_TEXT, budget)
    return [render_workflow(r) for r in rows], more


def set_workflow_status(tx: Tx, actor: Actor, workflow_id: str, status: str, now: float) -> dict[str, Any]:
    """Change a workflow's status."""
    row = _workflow(tx, workflow_id)
    tx.workflows.change(workflow_id, {"status": _status(status, WORKFLOW_STATUSES, "workflow"), "updated_at": now})
    emit(tx, "workflow.updated", now, session_id=actor.session_id, project_key=row["project_key"],
         subject_id=workflow_id, status=status)
    return render_workflow(_workflow(tx, workflow_id))


def add_item(tx: Tx, actor: Actor, *, workflow_id: str, title: str, project_key: str | None = None,
             description: str | None = None, status: str = "pending", priority: int = 0,
             assigned_to: str | None = None, now: float) -> dict[str, Any]:
    """Add a work item to a workflow; ``project_key`` defaults to the workflow's."""
    wf = _workflow(tx, workflow_id)
    project_key = projects.fold(project_key)
    quota.charge(tx, actor, now, quota.size_of(title, project_key, description, assigned_to), "work item")
    row: Row = {"id": new_id(), "workflow_id": workflow_id, "project_key": project_key or wf["project_key"],
           "title": title, "description": description, "status": _status(status, WORK_ITEM_STATUSES, "work item"),
           "priority": priority, "assigned_to": assigned_to, "created_by": actor.session_id,
           "updated_by": actor.session_id, "created_at": now, "updated_at": now}
    tx.work_items.add(row)
    emit(tx, "work_item.created", now, session_id=actor.session_id, project_key=row["project_key"],
         subject_id=row["id"], workflow_id=workflow_id, title=title)
    return render_item(row)


def owner(tx: Tx, workflow_id: str) -> str:
    """The session that created workflow ``workflow_id`` (its ``created_by``); ``NotFound`` if there is none.

    Seed 001 names whoever creates a workflow (``created_by``) and nobody on its work-item calls, so on a
    ``--no-auth`` hub a work-item write that names nobody acts as this session (api/routes/workflows.py).
    """
    return str(_workflow(tx, workflow_id)["created_by"])


def item_owner(tx: Tx, item_id: str) -> str:
    """:func:`owner` of the workflow work item ``item_id`` belongs to; ``NotFound`` if there is no such item."""
    row = tx.work_items.get(item_id)
    if row is None:
        raise NotFound(f"no work item {item_id!r}")
    return owner(tx, row["workflow_id"])


def fence_names(item: Row) -> tuple[str, ...]:
    """The lease resources whose fence may guard an update of work item ``item``.

    ``work-item:<id>`` for the item alone, ``workflow:<workflow id>`` for
    every item of its workflow.
    """
    return (f"work-item:{item['id']}", f"workflow:{item['workflow_id']}")


def update_item(tx: Tx, actor: Actor, item_id: str, changes: dict[str, Any], *, fence: int | None,
                now: float) -> dict[str, Any]:
    """Apply ``changes`` (status, title, description, priority, assigned_to) to a work item.

    With ``fence``, the update is made as a lease holder: it is refused with
    ``StaleFence`` unless that fence is a live lease of the actor covering the
    item (:func:`fence_names`).
    """
    row = tx.work_items.get(item_id)
    if row is None:
        raise NotFound(f"no work item {item_id!r}")
    if fence is not None:
        fences.assert_fence(tx, actor, fence, now, row["project_key"], names=fence_names(row),
                            what=f"work item {item_id}")
    if "status" in changes:
        _status(changes["status"], WORK_ITEM_STATUSES, "work item")
    quota.charge(tx, actor, now, quota.size_of(*(v for v in changes.values() if isinstance(v, str))), "work item")
    tx.work_items.change(item_id, {**changes, "updated_by": actor.session_id, "updated_at": now})
    # the event names what changed, its description cut as todo.added cuts a todo's text: every session's event
    # stream carries it, and a 512 KiB description went whole to each stream on every update (review)
    shown = {k: v[:EVENT_TEXT] if k == "description" and isinstance(v, str) else v for k, v in changes.items()}
    emit(tx, "work_item.updated", now, session_id=actor.session_id, project_key=row["project_key"],
         subject_id=item_id, changes=shown, fence=fence)
    updated = tx.work_items.get(item_id)
    assert updated is not None
    return render_item(updated)


def get_item(tx: Tx, item_id: str) -> dict[str, Any]:
    """One work item; ``NotFound`` if there is none."""
    row = tx.work_items.get(item_id)
    if row is None:
        raise NotFound(f"no work item {item_id!r}")
    return render_item(row)
