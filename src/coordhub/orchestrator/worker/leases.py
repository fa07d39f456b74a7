"""The files an attempt leases before claude starts: its briefing's ``files_likely``, leased as the worker.

The leases are taken with the worker's own token (its session; project = the
repo), so the hub's hooks deny the worker's edits of files others hold. A
file held by another session fails the attempt with ``files_busy`` — never
two workers editing one file. A lease lasts the wall clock plus ten minutes.
"""

from __future__ import annotations

from typing import Any

from coordhub.client import Unreachable
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.link import Busy, Refused, WorkerLink
from coordhub.orchestrator.worker.context import Context, EndEarly, Limits
from coordhub.orchestrator.worker.record import Record


class FileLeases:
    """The leases one attempt holds (``ids``) and the worker's own link to the hub that took them."""

    def __init__(self) -> None:
        self.link: WorkerLink | None = None
        self.ids: list[str] = []

    def take(self, link: WorkerLink, d: Dispatch, limits: Limits, record: Record) -> None:
        """Lease each of ``d.files_likely`` through ``link``, recording the ids as they come.

        ``EndEarly`` ``failed`` on the first that cannot be leased:
        ``files_busy`` (another session holds it), ``lease_refused``,
        ``hub_unreachable``. The leases taken until then stay held, for
        :meth:`release`.
        """
        self.link = link
        ttl = ((d.wall_clock_seconds or limits.wall_clock) + 600) / 3600
        for path in d.files_likely:
            try:
                lease = link.lease(d.repo, path, ttl, f"assignment {d.id}: issue #{d.issue} (files_likely)")
            except Busy as busy:
                who = f" held by {busy.holder}" if busy.holder else ""
                raise EndEarly("failed", f"files_busy: {busy.resource}{who}") from None
            except Refused as exc:
                raise EndEarly("failed", f"lease_refused: {path}: {exc}") from None
            except Unreachable as exc:
                raise EndEarly("failed", f"hub_unreachable: could not lease {path}: {exc}") from None
            self.ids.append(str(lease.get("id")))
            record.put(leases=self.ids)

    def release(self) -> None:
        """Release every lease and close the link; nothing without a link (none taken, or already released)."""
        if self.link is not None:
            for lease_id in self.ids:
                self.link.release(lease_id)
            self.ids = []
            self.link.close()
            self.link = None

    def restore(self, rec: dict[str, Any], ctx: Context, d: Dispatch) -> None:
        """Hold again the leases a previous host process recorded (with a link, to release them, given a token)."""
        self.ids = [str(x) for x in rec.get("leases") or []]
        if self.ids and d.worker_token:
            self.link = WorkerLink(ctx.worker_settings(d))
