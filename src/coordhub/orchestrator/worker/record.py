"""A worker's record in the host's state file, from which a restarted host rebuilds the worker.

The record's fields are :mod:`~coordhub.orchestrator.hoststate`'s; each part of
the worker writes its own as they change (the worktree, the leases, the
process, the log offsets, the telemetry, the phase, the pending final report)
and reads them back when the worker is re-attached.
"""

from __future__ import annotations

from typing import Any

from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.worker.context import Context


class Record:
    """The record of one attempt in ``ctx.state``; every write also carries the attempt and the dispatch payload."""

    def __init__(self, ctx: Context, d: Dispatch) -> None:
        self.ctx, self.d = ctx, d

    def put(self, **fields: Any) -> None:
        """Create or update the record with ``fields`` (others kept) and write the state file."""
        self.ctx.state.put(self.d.id, attempt=self.d.attempt, payload=self.d.raw, **fields)

    def drop(self) -> None:
        """Forget the record: the worker is over and its final report delivered."""
        self.ctx.state.drop(self.d.id)
