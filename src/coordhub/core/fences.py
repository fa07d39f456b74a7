"""Fencing tokens: whether a fence is the live grant of its lease and covers what its holder is about to act on.

Each grant carries a fence, a number that only grows (Kleppmann's fencing token, "How to do distributed
locking", 2016). Whatever acts as a holder presents it: a deploy script or the git guard asks
:func:`check_fence` first; a component or work-item write that carries a fence is applied only if
:func:`assert_fence` finds it a live lease of the writer that *names* the object (:func:`covers`).
"""

from __future__ import annotations

from typing import Any

from coordhub.core import paths, projects
from coordhub.core.identity import Actor
from coordhub.core.leases import render
from coordhub.errors import Invalid, StaleFence
from coordhub.store.base import Row
from coordhub.store.tables.leases import is_live
from coordhub.store.tx import Tx


def _contains(lease_resource: str, resource: str) -> bool:
    try:
        return paths.contains(lease_resource, resource)
    except ValueError as exc:
        raise Invalid(f"resource {resource!r}: {exc}", field="resource") from exc


def check_fence(tx: Tx, fence: int, now: float, resource: str | None = None,
                project_key: str | None = None) -> dict[str, Any]:
    """Whether ``fence`` is the live grant of its lease and, if given, covers ``resource`` in ``project_key``
    (compared case-insensitively: :mod:`coordhub.core.projects`).

    Anything about to act as a holder (a deploy script, the git guard) asks
    this first. Never raises for a stale fence: ``current`` is False and
    ``reason`` says why.
    """
    row = tx.leases.by_fence(fence)
    reason = None
    if row is None:
        reason = "no lease was granted with this fence"
    elif not is_live(row, now):
        reason = f"the lease is {render(row, now)['state']}"
    elif project_key is not None and row["project_key"] != projects.fold(project_key):
        reason = f"the lease is in project {row['project_key']!r}"
    elif resource is not None and not _contains(row["resource"], resource):
        reason = f"the lease is on {row['resource']!r}, which does not cover {resource!r}"
    return {"fence": fence, "current": reason is None, "reason": reason,
            "lease": None if row is None else render(row, now)}


def covers(lease_resource: str, names: tuple[str, ...]) -> bool:
    """Whether a lease on ``lease_resource`` names one of ``names``: equal after ``paths.normalize``.

    Equality, not overlap or containment: a fence guards a component or a work
    item only through a lease on a resource that *names* it (see
    :func:`coordhub.core.components.fence_names`,
    :func:`coordhub.core.workflows.fence_names`), so a lease on ``src/`` or
    on the whole project guards no component by accident. A name that is not
    a valid resource names nothing.
    """
    held = paths.normalize(lease_resource)
    for name in names:
        try:
            if paths.normalize(name) == held:
                return True
        except ValueError:
            continue
    return False


def assert_fence(tx: Tx, actor: Actor, fence: int, now: float, project_key: str, *,
                 names: tuple[str, ...], what: str) -> Row:
    """Raise ``StaleFence`` unless ``fence`` is a live lease of the actor in ``project_key`` that covers ``what``.

    Covering: the lease's resource is one of ``names`` (see :func:`covers`);
    ``what`` describes the guarded object in the refusal (e.g. ``component 'api'``).
    Returns the lease row.
    """
    row = tx.leases.by_fence(fence)
    why = None
    if row is None:
        why = "no such grant"
    elif row["session_id"] != actor.session_id:
        why = f"held by {row['session_id']}"
    elif not is_live(row, now):
        why = f"lease is {render(row, now)['state']}"
    elif row["project_key"] != project_key:
        why = f"it is a lease in project {row['project_key']!r}, not {project_key!r}"
    elif not covers(row["resource"], names):
        why = (f"its lease is on {row['resource']!r}, which does not cover {what}: lease "
               f"{' or '.join(repr(n) for n in names)} for that")
    if why is not None:
        raise StaleFence(f"fence {fence} is not current ({why}); the write is refused", fence=fence)
    assert row is not None
    return row
