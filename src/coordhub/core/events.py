"""The event log: every mutation appends one event in its own transaction.

Event ids increase strictly in commit order (the store has one writer), so a
reader that remembers the last id it saw can follow the log with no gaps and
no duplicates (push and audit build on this). Kinds are ``noun.verb``:
``lease.granted``, ``lease.released``, ``lease.expired``, ``lease.revoked``,
``lease.renewed``, ``message.sent``, ``message.read``, ``message.acked``,
``todo.added``, ``todo.done``, ``workflow.created``, ``work_item.created``,
``work_item.updated``, ``component.set``, ``halt.set``, ``halt.lifted``,
``token.created``, ``token.revoked``.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.store.tx import Tx


def emit(
    tx: Tx,
    kind: str,
    now: float,
    *,
    session_id: str | None,
    project_key: str | None = None,
    subject_id: str | None = None,
    **payload: Any,
) -> int:
    """Append an event; return its id. ``payload`` must be JSON-serialisable."""
    return tx.events.append({
        "kind": kind,
        "session_id": session_id,
        "project_key": project_key,
        "subject_id": subject_id,
        "payload": json.dumps(payload, separators=(",", ":"), default=str),
        "created_at": now,
    })
