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
that grows with the leases other sessions hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from coordhub.core.paths import MAX_LENGTH, ResourceKind, classify, contains, overlaps, parse
from coordhub.guard import ledger
from coordhub.hooks import leases as leases_text
from coordhub.hooks.project import as_resource
from coordhub.hooks.untrusted import one_line

FenceCheck = Callable[[int, str | None], dict[str, Any]]
Held = dict[str, list[dict[str, Any]]]  # path → other sessions' live leases overlapping it, as the hub answered
_UNNAMEABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")  # in no resource: control, not UTF-8
_GLOB_SYNTAX = re.compile(r"[*?\[\]{}\\]")  # what coordhub.core.paths reads as a pattern (a \\ is a /)
BATCH = 100  # paths one POST /locks/conflicts may name (the hub's bound: core.leases.MAX_CONFLICT_RESOURCES)


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
    """The ``paths`` to ask about (path → resource, as :func:`as_resource` names it), and those that are no valid
    lease resource (a control character in the name, over the length limit, a name that is not UTF-8: git's bytes
    decoded with lone surrogates, which the hub's JSON refuses), which no lease can name exactly.

    Such a path is asked about all the same, as the glob :func:`stand_in` makes of it (a lease of ``src/`` or
    ``*.py`` covers ``src/caf\\xe9.py`` whatever its name): it is in both answers, so a lease overlapping it
    refuses the commit, and otherwise it stays unchecked (``COORD_HOOK_FAIL_MODE``). It was only unchecked, and
    under the default fail mode a commit of such a file under another session's lease was accepted. A name holding
    a backslash is asked about as its stand-in alone (checked, conservatively): the rules read ``\\`` as ``/``, so
    ``src/a\\b.py`` was asked as ``src/a/b.py``, which a lease of ``src/*.py`` does not cover, and was accepted."""
    resources: dict[str, str] = {}
    unchecked = []
    for p in paths:
        if "\\" in p:  # one byte of a segment in git's name, a / to the rules (Windows): src/a\\b.py is no src/a/b.py
            cover = stand_in(p)
            if cover is not None:
                resources[p] = cover
            else:
                unchecked.append(p)
            continue
        try:
            resources[p] = _valid(as_resource(p))
        except ValueError:
            unchecked.append(p)
            cover = stand_in(p)
            if cover is not None:
                resources[p] = cover
    return resources, unchecked


def _valid(resource: str) -> str:
    """``resource`` if the hub takes it (UTF-8 text that :func:`parse` accepts), else ``ValueError``."""
    resource.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
    parse(resource)
    return resource


def stand_in(path: str) -> str | None:
    """A glob resource covering every file ``path`` (no valid resource) may be, or None if none can be made.

    Each run of characters no resource holds (control characters, lone surrogates) becomes ``*``, which matches
    any run within a segment; a segment that also holds glob syntax becomes ``*`` whole, so its own text is never
    read as a pattern narrower than the name (as does one holding a backslash, which the rules read as ``/``);
    segments past the length bound become one ``**``. Sound, never
    narrower than the path: a lease overlapping the path overlaps the glob (it may over-report, never miss).
    """
    segments = ["*" if "\\" in seg or (_UNNAMEABLE.search(seg) and _GLOB_SYNTAX.search(seg))
                else _UNNAMEABLE.sub("*", seg) for seg in path.split("/")]
    kept: list[str] = []
    for seg in segments:
        if len(as_resource("/".join([*kept, seg, "**"]))) > MAX_LENGTH:
            kept.append("**")
            break
        kept.append(seg)
    try:
        return _valid(as_resource("/".join(kept)))
    except ValueError:
        return None


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
        if lease_id in live_ids or entry.get("session_id") != me or entry.get("project_key") != project_key:
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
