"""The status overview (seed 001 ``GET /api/coord/status``).

One consistent snapshot: live leases, recent component states, active
workflows, the caller's unread message count (null for no caller), the fleet halt if one stands
(``halt``, seed 001's field), every standing halt (``halts``, each saying
whether it covers the caller) and the caller's pause (``paused``).

``active_locks`` holds the oldest :data:`~coordhub.core.leasequeries.PAGE` live
leases (about :data:`~coordhub.core.leasequeries.PAGE_BYTES` at most); when there
are more, ``active_locks_more`` is true and ``GET /api/coord/locks`` pages
through them all (``after_fence=`` ``active_locks_next_after_fence``).
``components`` (the :data:`RECENT_COMPONENTS` most recently updated) and
``active_workflows`` hold about :data:`SECTION_BYTES` of text each (at least
one); ``active_workflows_more`` is true when some active workflows were left
out (``GET /api/coord/workflows`` lists them all).
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import components, halt, leasequeries, messages, paging, workflows
from coordhub.store.tx import Tx

RECENT_COMPONENTS = 50
SECTION_BYTES = paging.PAGE_BYTES // 4  # text of the components, and of the active workflows, one overview holds


def overview(tx: Tx, session_id: str | None, now: float, project_key: str | None = None) -> dict[str, Any]:
    """Snapshot of the fleet, optionally narrowed to one project; unread count is the caller's (``session_id``),
    None when no session is named (``session_id`` None: a ``--no-auth`` request that names none)."""
    active, more = workflows.active(tx, project_key, SECTION_BYTES)
    stop = halt.for_session(tx, session_id)
    locks, after = leasequeries.page(tx, now, project_key=project_key)
    return {
        "server_time": isoformat(now),
        "halt": halt.current(tx),
        "halts": stop["halts"],
        "paused": stop["paused"],
        "session_id": session_id,
        "active_locks": locks,
        "active_locks_more": after is not None,
        "active_locks_next_after_fence": after,
        "components": components.find(tx, project_key, RECENT_COMPONENTS, SECTION_BYTES),
        "active_workflows": active,
        "active_workflows_more": more,
        # no session named (a --no-auth request naming none): no inbox was counted, and 0 said "nothing waits"
        "unread_messages": messages.unread_count(tx, session_id) if session_id else None,
    }
