"""Component deploy states (seed 001): the fleet's shared view of what is deployed where.

Upserted on (project_key, component). States are a convention, not enforced
(seed 001): :data:`CONVENTIONAL_STATES`. A write may carry the ``fence`` of a
lease the caller holds; it is refused unless that lease is live, in the same
project and *covers* the component: its resource is ``component:<name>`` or
the component's name itself (:func:`fence_names`). Project keys compare
case-insensitively (:mod:`coordhub.core.projects`): each function folds the one
it is given.
"""

from __future__ import annotations

import enum
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import fences, paging, projects, quota
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.store.base import Row
from coordhub.store.tx import Tx

CONVENTIONAL_STATES = ("building", "built", "deploying", "deployed", "degraded", "unknown")
PAGE = 1000  # components one answer holds at most (and about paging.PAGE_BYTES of their text)
TEXT = ("component", "state", "version", "notes")  # what paging.size counts of a component
LONG = ("notes",)  # what a brief list leaves out (paging.page's blank)


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a component state."""
    return {"project_key": row["project_key"], "component": row["component"], "state": row["state"],
            "version": row["version"], "notes": row["notes"], "updated_by": row["updated_by"],
            "created_at": isoformat(row["created_at"]), "updated_at": isoformat(row["updated_at"])}


def fence_names(component: str) -> tuple[str, ...]:
    """The lease resources whose fence may guard writes to ``component``: ``component:<name>`` and the name itself.

    The name itself lets a component named like a resource (``deploy:staging``,
    ``server/``) be guarded by the lease on it.
    """
    return (f"component:{component}", component)


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


KEEP = Keep.KEEP  # "not given": the component's previous value stays (``None`` clears it)


def set_state(tx: Tx, actor: Actor, *, project_key: str, component: str, state: str,
              version: str | None | Keep = KEEP, notes: str | None | Keep = KEEP, fence: int | None = None,
              now: float) -> dict[str, Any]:
    """Record a component's state, version and notes, attributed to the actor.

    ``version`` and ``notes`` left as :data:`KEEP` keep the values the
    component had (none for a new one), so a state change does not erase the
    deployed version (issue 7 point 20); ``None`` clears them.
    """
    project_key = projects.fold(project_key)
    if fence is not None:
        fences.assert_fence(tx, actor, fence, now, project_key, names=fence_names(component),
                            what=f"component {component!r}")
    quota.charge(tx, actor, now, quota.size_of(project_key, component, state, *(
        v for v in (version, notes) if isinstance(v, str))), "component")
    before = tx.components.get(project_key, component)
    if isinstance(version, Keep):
        version = before["version"] if before is not None else None
    if isinstance(notes, Keep):
        notes = before["notes"] if before is not None else None
    tx.components.upsert({"project_key": project_key, "component": component, "state": state,
                          "version": version, "notes": notes, "updated_by": actor.session_id,
                          "created_at": now, "updated_at": now})
    emit(tx, "component.set", now, session_id=actor.session_id, project_key=project_key, subject_id=component,
         state=state, version=version)
    row = tx.components.get(project_key, component)
    assert row is not None
    return render(row)


def find(tx: Tx, project_key: str | None = None, limit: int = PAGE,
         budget: int | None = None) -> list[dict[str, Any]]:
    """Component states, most recently updated first, optionally of one project: at most ``limit`` and about
    ``budget`` bytes of their text (encoded; default :data:`~coordhub.core.paging.PAGE_BYTES`; at least one)."""
    project_key = projects.fold(project_key)
    rows, _ = paging.take(paging.keyed(lambda k, after: tx.components.find(project_key, k, after),
                                       tx.components.key), limit, TEXT, paging.PAGE_BYTES if budget is None else budget)
    return [render(r) for r in rows]


def page(tx: Tx, project_key: str | None = None, cursor: str | None = None,
         brief: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    """Component states as :func:`find` lists them, after ``cursor``, and the cursor of the ones that follow
    (None: none follow); at most :data:`PAGE` and about :data:`~coordhub.core.paging.PAGE_BYTES` of their text
    (at least one); ``brief``: each ``notes`` is null (:data:`LONG`). Raises ``Invalid`` for a cursor not from
    this list."""
    project_key = projects.fold(project_key)
    rows, more = paging.page(lambda k, a: tx.components.find(project_key, k, a), PAGE, TEXT, tx.components.key,
                             cursor, LONG if brief else ())
    return [render(r) for r in rows], more
