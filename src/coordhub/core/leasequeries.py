"""Reading leases: the live list (seed 001's query), conflict queries and one lease.

Nothing here writes. Overlap is decided as a claim decides it, through the
scope index of :mod:`coordhub.core.leases` (its module docstring): only the
candidate leases are read, and the exact check runs on those within one
:class:`paths.Budget` per request, so an answer may over-report, never miss.
Lists are pages: the oldest grants first, at most :data:`PAGE` leases and
about :data:`PAGE_BYTES`, with the fence to page on after.

Project keys compare case-insensitively: every function here that takes one
folds it first (:mod:`coordhub.core.projects`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from coordhub.core import paths, projects
from coordhub.core.leases import candidates, get_row, overlaps_in, parse_resource, parse_stored, render
from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

PAGE = 500  # leases a list answers at most (GET /locks, /status, /locks/conflicts) …
PAGE_BYTES = 4 << 20  # … and about this many bytes of them (at least one lease)
MAX_CONFLICT_RESOURCES = 100  # resources one conflict query may name (POST /locks/conflicts; one work budget)
MAX_CONFLICT_CANDIDATES = 10_000  # candidate leases its resources after the first may bring, in all


def overlapping(tx: Tx, project_key: str, res: paths.Resource, now: float, *, exclude: str | None = None,
                budget: paths.Budget | None = None, first_only: bool = False) -> Iterator[Row]:
    """Live leases of ``project_key`` (not held by ``exclude``) that overlap ``res``, through the scope index.

    Reads only candidates (see the module docstring); ``first_only`` stops the
    scan beneath the scope at one row when every such row must overlap (a
    literal claim). Leases granted before the index existed are always
    candidates. Sound: may over-report (an exhausted ``budget`` counts as an
    overlap), never misses.
    """
    seen = candidates(tx, project_key, res, now, exclude=exclude, first_only=first_only, due=False)
    return overlaps_in(tx, project_key, res, now, seen, exclude=exclude, budget=budget)


def live(tx: Tx, now: float, project_key: str | None = None, resource: str | None = None,
         session_id: str | None = None) -> list[dict[str, Any]]:
    """Live leases, filtered by project, holder, and by overlap with ``resource`` (seed 001's query); at most
    :data:`PAGE` leases and about :data:`PAGE_BYTES` (see :func:`page`)."""
    return page(tx, now, project_key, resource, session_id)[0]


Page = tuple[list[dict[str, Any]], int | None]  # rendered leases, and the fence to page on after (None: last page)


def page(tx: Tx, now: float, project_key: str | None = None, resource: str | None = None,
         session_id: str | None = None, *, after_fence: int = 0, limit: int = PAGE) -> Page:
    """Live leases as :func:`live` filters them, oldest grant first after ``after_fence``: at most ``limit``
    (≤ :data:`PAGE`) and about :data:`PAGE_BYTES` of them (at least one), and the fence to page on after
    (None: this is the last page)."""
    limit = max(1, min(limit, PAGE))
    project_key = projects.fold(project_key)
    if resource is None:
        rows = tx.leases.live(now, project_key=project_key, session_id=session_id, after_fence=after_fence,
                              limit=limit + 1)
        return _cut(rows, limit, now)
    found = [r for r in _overlapping_any(tx, now, project_key, resource)
             if (session_id is None or r["session_id"] == session_id) and r["fence"] > after_fence]
    return _whole_page(tx, found, limit, now)


def conflicts(tx: Tx, now: float, project_key: str, resource: str, me: str | None) -> tuple[Page, Page]:
    """The live leases of ``project_key`` overlapping ``resource``: (others' page, ``me``'s own page), each as
    :func:`page` answers it (the oldest :data:`PAGE` and the fence to page on after, None when complete).

    Split before the cut, so others' leases are never crowded out of the answer by the caller's own: the first
    list is empty only when no other session holds an overlapping live lease (the edit hook allows on that).
    """
    found = _overlapping_any(tx, now, projects.fold(project_key), resource)
    return (_whole_page(tx, [r for r in found if r["session_id"] != me], PAGE, now),
            _whole_page(tx, [r for r in found if r["session_id"] == me], PAGE, now))


def conflicts_of(tx: Tx, now: float, project_key: str, resources: list[str],
                 me: str | None) -> tuple[Page, Page, list[list[str]]]:
    """:func:`conflicts` for several resources at once: (others' page, ``me``'s own page, and for each resource in
    order the ids of the leases of others' page that overlap it, oldest grant first).

    A lease overlapping several resources is listed once. The pages are cut as :func:`conflicts` cuts them
    (others' first list is empty only when no other session's live lease overlaps any resource); a resource's ids
    name only leases in that page. All checks share one :class:`paths.Budget` (sound: may over-report once it is
    spent). ``Invalid`` (422, ``field="resources"``) for no resources, more than :data:`MAX_CONFLICT_RESOURCES`,
    or one that is no valid resource (naming its index).

    The first resource may bring any number of candidate leases to compare, as :func:`conflicts` (one ``GET``)
    may; the others at most :data:`MAX_CONFLICT_CANDIDATES` in all, else ``Invalid`` (422, ``limit``) before any
    is compared. A changed file's candidates are the few leases at and above its path (the git guard's case); a
    directory or glob brings every lease beneath it, and 100 of ``lib/`` in a project of 20,000 leases took one
    request 40 s of a reader thread (review), a hundred ``GET``'s work for one request of the rate limit.
    """
    if not 1 <= len(resources) <= MAX_CONFLICT_RESOURCES:
        raise Invalid(f"resources must name 1 to {MAX_CONFLICT_RESOURCES} resources, not {len(resources)}",
                      field="resources")
    project_key = projects.fold(project_key)
    parsed = []
    for i, resource in enumerate(resources):
        try:
            parsed.append(paths.parse(resource))
        except ValueError as exc:
            raise Invalid(f"resources[{i}] {resource!r}: {exc}", field="resources") from exc
    budget = paths.Budget()
    found: dict[str, Row] = {}
    hits: list[list[str]] = []
    brought = 0
    for i, res in enumerate(parsed):
        seen = candidates(tx, project_key, res, now, exclude=None, first_only=False, due=False)
        brought += (len(seen.at_scopes) + len(seen.unscoped) + len(seen.beneath)) if i else 0
        if brought > MAX_CONFLICT_CANDIDATES:
            raise Invalid(f"resources[1:] are too broad to check in one query (over {MAX_CONFLICT_CANDIDATES} "
                          f"leases to compare by resources[{i}] {resources[i]!r}): name files, or ask about a "
                          "directory or glob alone (GET /locks/conflicts)", field="resources",
                          limit=MAX_CONFLICT_CANDIDATES)
        rows = list(overlaps_in(tx, project_key, res, now, seen, exclude=None, budget=budget))
        found.update((r["id"], r) for r in rows)
        hits.append([r["id"] for r in sorted(rows, key=lambda r: r["fence"]) if r["session_id"] != me])
    others = _whole_page(tx, [r for r in found.values() if r["session_id"] != me], PAGE, now)
    own = _whole_page(tx, [r for r in found.values() if r["session_id"] == me], PAGE, now)
    shown = {lease["id"] for lease in others[0]}
    return others, own, [[i for i in ids if i in shown] for ids in hits]


def _overlapping_any(tx: Tx, now: float, project_key: str | None, resource: str) -> list[Row]:
    """Live leases overlapping ``resource`` (in ``project_key``, or in every project), in no order; rows may
    lack their description (see :func:`_whole_page`)."""
    res, budget = parse_resource(resource), paths.Budget()
    if project_key is not None:
        return list(overlapping(tx, project_key, res, now, budget=budget))
    # every project: no index to narrow by, the budget still bounds the work
    return [r for r in tx.leases.live(now, brief=True) if parse_stored(r).overlaps(res, budget=budget)]


def _whole_page(tx: Tx, found: list[Row], limit: int, now: float) -> Page:
    """The oldest ``limit`` of ``found`` (by fence) as :func:`page` answers them, read whole."""
    found = sorted(found, key=lambda r: r["fence"])[:limit + 1]
    whole = tx.leases.full([r["id"] for r in found if "description" not in r])
    return _cut([whole.get(r["id"], r) for r in found], limit, now)


def _cut(rows: list[Row], limit: int, now: float) -> Page:
    """The first ``limit`` of ``rows`` (fetched one past it) rendered, stopping at about :data:`PAGE_BYTES`;
    and the fence to page on after, None when nothing was left out."""
    out: list[dict[str, Any]] = []
    size = 0
    for row in rows[:limit]:
        if out and size >= PAGE_BYTES:
            break
        out.append(render(row, now))
        size += 400 + len(row["resource"]) + len(row.get("description") or "")
    more = len(out) < len(rows)
    return out, (out[-1]["fence"] if more else None)


def get(tx: Tx, lease_id: str, now: float) -> dict[str, Any]:
    """One lease in any state; ``NotFound`` if there is none."""
    return render(get_row(tx, lease_id), now)
