"""The guard's decision: may these paths be committed (or pushed) by this session?

For each path (project-relative, as git names it):

* a live lease of **another** session overlapping it refuses the path (the
  hub says which: ``POST /locks/conflicts`` answers, for each path, the
  others' leases that overlap it by its own rule);
* a live lease of **the committer** overlapping it (decided here by
  :mod:`coordhub.core.paths`, the hub's rule) is accepted only if
  ``GET /locks/check`` says its fence is current (asked once per lease);
* a lease of the committer that the guard saw earlier and that is no longer
  live (see :mod:`coordhub.guard.ledger`) refuses the path unless a current
  lease of the committer covers it again, or the hub says it was released by
  its holder (then it is simply forgotten).

Requests (made by :mod:`coordhub.guard.run`): ``GET /whoami`` once, one
``POST /locks/conflicts`` per :data:`BATCH` paths, ``GET /locks?project_key=&session_id=``
(the committer's own live leases in the project, 500 a page), plus one
``GET /locks/check`` per own lease involved; never one per path, and none
that grows with the leases other sessions hold. A run that changes no path is
not evaluated here: it asks only for the halt (:func:`coordhub.guard.run._stop_only`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from coordhub.core import projects
from coordhub.core.paths import ResourceKind, classify, contains, overlaps
from coordhub.guard import ledger
from coordhub.hooks import leases as leases_text
from coordhub.hooks.project import asked_as
from coordhub.hooks.untrusted import one_line

FenceCheck = Callable[[int, str | None], dict[str, Any]]
Held = dict[str, list[dict[str, Any]]]  # path → other sessions' live leases overlapping it, as the hub answered
BATCH = 100  # paths one POST /locks/conflicts may name (the hub's bound: core.leasequeries.MAX_CONFLICT_RESOURCES)


class Problem(NamedTuple):
    """Why one path is refused: ``held`` by another session, or a ``stale`` lease of one's own."""

    path: str
    kind: str
    lease: dict[str, Any]
    reason: str | None = None

    def line(self) -> str:
        """One line naming the path, the holder or the stale lease, its id, purpose and end."""
        lease, path = self.lease, one_line(self.path)
        if self.kind == "held":
            return f"{path}: leased by {leases_text.held(lease)}"
        return (f"{path}: your lease {one_line(lease.get('id'))} on {one_line(lease.get('resource'))} "
                f"(fence {one_line(lease.get('fence'))}) is no longer current: {one_line(self.reason)}")


class Verdict(NamedTuple):
    """The outcome: problems (empty: accept), paths that could not be checked, ledger ids involved."""

    problems: list[Problem]
    unchecked: list[str]
    ended_ids: list[str]


def split(paths: list[str]) -> tuple[dict[str, str], list[str]]:
    """The ``paths`` to ask about (path → resource) and those left unchecked, each as :func:`asked_as` names it.

    A path that is no valid lease resource (a control character in the name, over the length limit, a name that
    is not UTF-8: git's bytes decoded with lone surrogates, which the hub's JSON refuses) is in both answers, asked
    about as the glob :func:`~coordhub.hooks.project.stand_in` makes of it: a lease overlapping it refuses the
    commit, otherwise ``COORD_HOOK_FAIL_MODE`` decides (6d00200; it was only unchecked, and the default fail mode
    accepted a commit of such a file under another session's lease). A name holding a backslash is asked about
    as its stand-in alone, a checked path (382a061: ``src/a\\b.py`` was asked as ``src/a/b.py``, which a lease of
    ``src/*.py`` does not cover, and was accepted)."""
    resources: dict[str, str] = {}
    unchecked = []
    for p in paths:
        resource, checked = asked_as(p)
        if resource is not None:
            resources[p] = resource
        if not checked:
            unchecked.append(p)
    return resources, unchecked


def _in_project(entry: ledger.Entry, project_key: str) -> bool:
    """Whether a ledger entry is a lease in ``project_key`` (folded); a ledger written before the hub folded project
    keys holds the spelling the hub had then (:mod:`coordhub.core.projects`)."""
    key = entry.get("project_key")
    return isinstance(key, str) and projects.fold(key) == project_key


def evaluate(paths: list[str], me: str | None, project_key: str, held: Held, own: list[dict[str, Any]],
             known: dict[str, ledger.Entry], check: FenceCheck) -> Verdict:
    """Decide on ``paths`` given the leases of others that the hub says overlap each (``held``), the committer's
    ``own`` live leases in the project (all of them: a ledger entry not among them has ended) and the ledger
    ``known`` (see the module docstring).

    ``check(fence, resource)`` asks the hub about a fence. ``known`` loses
    the entries of leases the hub says were released by their holder.
    ``ended_ids`` are the ledger entries of ended leases that overlap the
    paths (the caller drops them once the run is accepted or bypassed).
    Paths that are not valid resources (e.g. a control character in the
    name) are returned in ``unchecked``.
    """
    resources, unchecked = split(paths)
    problems = [Problem(p, "held", lease) for p in resources for lease in held.get(p, [])
                if lease.get("session_id") != me]
    covered: set[str] = set()
    for lease in (x for x in own if me is not None and x.get("session_id") == me):
        mine = [p for p, r in resources.items() if _overlaps(lease.get("resource"), r)]
        if not mine:
            continue
        answer = check(int(lease["fence"]), _concrete(lease, mine, resources))
        if answer.get("current"):
            covered.update(mine)
        else:
            problems += [Problem(p, "stale", lease, answer.get("reason")) for p in mine]
    live_ids = {str(x.get("id")) for x in own}
    ended_ids = []
    for lease_id, entry in list(known.items()):
        if lease_id in live_ids or entry.get("session_id") != me or not _in_project(entry, project_key):
            continue
        touched = [p for p, r in resources.items() if _overlaps(entry.get("resource"), r)]
        if not touched:
            continue
        ended_ids.append(lease_id)
        todo = [p for p in touched if p not in covered]
        if not todo:
            continue
        answer = check(int(entry["fence"]), None)
        lease = answer.get("lease") or {"id": lease_id, **entry}
        if lease.get("state") == "released":
            del known[lease_id]  # its holder let it go: editing on without it is the holder's choice
        elif not answer.get("current"):
            problems += [Problem(p, "stale", lease, _ended(answer, lease)) for p in todo]
    return Verdict(problems, unchecked, ended_ids)


def _overlaps(resource: Any, path_resource: str) -> bool:
    try:
        return isinstance(resource, str) and overlaps(resource, path_resource)
    except ValueError:
        return True  # a lease we cannot parse may cover anything: sound, never miss


def _concrete(lease: dict[str, Any], mine: list[str], resources: dict[str, str]) -> str | None:
    """A path of ``mine`` the lease contains, to pass to ``/locks/check`` (None: ask about the fence alone)."""
    for p in mine:
        r = resources[p]
        try:
            if classify(r) is ResourceKind.PATH and contains(lease["resource"], r):
                return r
        except ValueError:
            continue
    return None


def _ended(answer: dict[str, Any], lease: dict[str, Any]) -> str:
    """The hub's reason, with who ended the lease and when if the hub says."""
    reason = str(answer.get("reason") or f"the lease is {lease.get('state')}")
    if lease.get("released_at"):
        reason += f" since {leases_text.when(lease['released_at'])}"
        if lease.get("released_by"):
            reason += f" (by {lease['released_by']})"
    return reason
