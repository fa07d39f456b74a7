"""Repo dependencies (``depends_on``): what is upstream of a repo, and whether upstream work is in flight.

Seed 003 computed ``blocked_repos()`` (a repo is blocked while a repo it
depends on has running work) and only warned about it; here it is enforced
at ``coord assign`` (409 ``upstream_in_flight``), by the scheduler, and by the
merge queue, which lands an upstream repo's earlier entries first. Work is
in flight (seed 003: "running work") while a worker of the repo is
dispatched or running, or one of its branches is in the merge queue
(queued, running, fixing or waiting for a human); a queued assignment is
not yet in flight.
"""

from __future__ import annotations

from coordhub.core.orchestrator_config import Config
from coordhub.errors import Conflict
from coordhub.store.tx import Tx

ACTIVE_ASSIGNMENT = ("dispatched", "running")
MERGE_IN_FLIGHT = ("queued", "running", "fixing", "needs_input")


class UpstreamInFlight(Conflict):
    """A repo this one depends on has work in flight (409); ``details.upstream`` lists it."""

    code = "upstream_in_flight"


def upstream(config: Config, repo: str) -> list[str]:
    """Every repo ``repo`` depends on, directly or through others (the config has no cycles), sorted."""
    seen: set[str] = set()
    todo = [repo]
    while todo:
        r = config.repo(todo.pop())
        for dep in r.depends_on if r else []:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


def in_flight(tx: Tx, config: Config, repo: str) -> list[str]:
    """What upstream of ``repo`` is in flight, one line each (``lib#3 assignment 1a2b3c4d running``); [] if nothing."""
    out: list[str] = []
    for dep in upstream(config, repo):
        for a in tx.assignments.find(ACTIVE_ASSIGNMENT, repo=dep, limit=20):
            out.append(f"{dep}#{a['issue']} assignment {a['id']} {a['state']}")
        for e in tx.merge_entries.in_states(MERGE_IN_FLIGHT, repo=dep, limit=20):
            out.append(f"{dep}#{e['issue']} merge entry {e['id']} {e['state']}")
    return out


def check_assign(tx: Tx, config: Config, repo: str) -> None:
    """Refuse (``UpstreamInFlight``) to queue work for ``repo`` while an upstream repo has work in flight."""
    busy = in_flight(tx, config, repo)
    if busy:
        raise UpstreamInFlight(f"{repo} depends on {', '.join(upstream(config, repo))}, which has work in flight "
                               f"({'; '.join(busy[:5])}); assign it once that has merged", upstream=busy[:20])


def merging_repos(tx: Tx) -> set[str]:
    """Repos with a branch in the merge queue (queued, running, fixing or waiting for a human)."""
    return {e["repo"] for e in tx.merge_entries.in_states(MERGE_IN_FLIGHT)}
