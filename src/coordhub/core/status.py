"""The status overview (seed 001 ``GET /api/coord/status``).

One consistent snapshot: live leases, recent component states, active
workflows, the caller's unread message count, the fleet halt if one stands
(``halt``, seed 001's field), every standing halt (``halts``, each saying
whether it covers the caller) and the caller's pause (``paused``).

``active_locks`` holds the oldest :data:`~coordhub.core.leases.PAGE` live
leases (about :data:`~coordhub.core.leases.PAGE_BYTES` at most); when there
are more, ``active_locks_more`` is true and ``GET /api/coord/locks`` pages
through them all (``after_fence=`` ``active_locks_next_after_fence``).
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import components, halt, leases, messages, workflows
from coordhub.store.tx import Tx

RECENT_COMPONENTS = 50


def overview(tx: Tx, session_id: str | None, now: float, project_key: str | None = None) -> dict[str, Any]:
    """Snapshot of the fleet, optionally narrowed to one project; unread count is the caller's."""
    active = [workflows.render_workflow(r) for r in tx.workflows.in_states(workflows.ACTIVE_WORKFLOW_STATUSES)
              if project_key is None or r["project_key"] == project_key]
    stop = halt.for_session(tx, session_id)
    locks, after = leases.page(tx, now, project_key=project_key)
    return {
        "server_time": isoformat(now),
        "halt": halt.current(tx),
        "halts": stop["halts"],
        "paused": stop["paused"],
        "session_id": session_id,
        "active_locks": locks,
        "active_locks_more": after is not None,
        "active_locks_next_after_fence": after,
        "components": components.find(tx, project_key)[:RECENT_COMPONENTS],
        "active_workflows": active,
        "unread_messages": messages.unread_count(tx, session_id) if session_id else 0,
    }
