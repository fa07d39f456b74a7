"""The event log: every mutation appends one event in its own transaction.

Event ids increase strictly in commit order (the store has one writer), so a
reader that remembers the last id it saw can follow the log with no gaps and
no duplicates (push and audit build on this). Kinds are ``noun.verb``:
``lease.granted``, ``lease.released``, ``lease.expired``, ``lease.revoked``,
``lease.renewed``, ``lease.stale_takeover``, ``message.sent``, ``message.read``, ``message.acked``,
``message.redelivered``, ``message.dead_lettered``, ``todo.added``,
``todo.done``, ``workflow.created``, ``workflow.updated``,
``work_item.created``, ``work_item.updated``, ``component.set``,
``halt.set``, ``halt.lifted`` (both with the halt's ``scope``), ``session.paused``,
``session.engaged``, ``token.created``, ``token.revoked``,
``presence.registered``, ``presence.deregistered``, the orchestrator's
``assignment.<state>`` (``queued``, ``dispatched``, ``running``, ``done``,
``failed``, ``stuck``, ``needs_input``, ``cancelled``), ``assignment.telemetry``,
``assignment.adopted``, ``host.registered``, ``host.stale``, ``host.stopped``, ``host.back``, ``host.stopping``,
``orchestrator.config_applied`` and ``orchestrator.paused``, the dashboard's
``web.signed_in`` and ``web.signed_out``, and the
client-reported ``guard.*`` and ``hook.*``. An event's ``project_key`` (a
repository's name, for the orchestrator's) is stored folded, and a filter's is
folded to match (:mod:`coordhub.core.projects`).
"""

from __future__ import annotations

import json
from typing import Any

from coordhub import jsonbytes, strictjson
from coordhub.clock import isoformat
from coordhub.core import projects
from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx


def emit(
    tx: Tx,
    kind: str,
    now: float,
    *,
    session_id: str | None,
    project_key: str | None = None,
    subject_id: str | None = None,
    target: str | None = None,
    **payload: Any,
) -> int:
    """Append an event; return its id. ``payload`` must be JSON-serialisable.

    Times in ``payload`` (keys ending in ``_at``) may be given as epoch seconds:
    they are stored as ISO 8601, so no emitter can put a float time in an event.

    ``target`` is the session the event is *for* (``"*"``: everyone): it
    feeds that session's notifications and, for direct-message events, limits
    who may see the event (see :func:`visible`).
    """
    return tx.events.append(_row(kind, now, session_id, project_key, subject_id, target, payload))


def emit_nowait(
    tx: Tx,
    kind: str,
    now: float,
    *,
    session_id: str | None,
    project_key: str | None = None,
    subject_id: str | None = None,
    target: str | None = None,
    **payload: Any,
) -> None:
    """:func:`emit` for a caller that needs no id: the store may send the insert with the unit's next
    statement (``Executor.defer``; on PostgreSQL no round trip of its own). Same order, same log."""
    tx.events.append_nowait(_row(kind, now, session_id, project_key, subject_id, target, payload))


def _row(kind: str, now: float, session_id: str | None, project_key: str | None, subject_id: str | None,
         target: str | None, payload: dict[str, Any]) -> Row:
    return {
        "kind": kind,
        "session_id": session_id,
        "project_key": projects.fold(project_key),
        "subject_id": subject_id,
        "target": target,
        "payload": jsonbytes.dumps(_times(payload), default=str).decode(),
        "created_at": now,
    }


def _times(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with every time as ISO 8601 (issue 7 point 20): a number under a key ending in ``_at`` is
    epoch seconds (the store's form) and is rendered like every other timestamp the hub answers with."""
    return {k: isoformat(v) if k.endswith("_at") and isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in payload.items()}


# seen only by their parties when aimed at one session (or one machine's sessions)
PRIVATE_KINDS = ("message.", "conversation.turn", "conversation.released", "conversation.refused")
# a ``target`` naming every session of a machine (``MACHINE/name`` ids; ``:`` is never in a session id)
MACHINE_TARGET = "machine:"


def public(row: Row) -> bool:
    """Whether every session may see an event (:func:`visible` is then True whoever asks)."""
    return not row["kind"].startswith(PRIVATE_KINDS) or row["target"] in (None, "*")


def visible(row: Row, session_id: str, is_admin: bool) -> bool:
    """Whether a session may see an event: direct messages', conversation turns' and refused turns' only by
    their parties (and admins): the session that caused it, and its target (a session, or with
    :data:`MACHINE_TARGET` every session named after that machine)."""
    if is_admin or public(row):
        return True
    target = str(row["target"])
    if session_id in (target, row["session_id"]):
        return True
    if target.startswith(MACHINE_TARGET) and "/" in session_id:
        return session_id.split("/", 1)[0].lower() == target[len(MACHINE_TARGET):]
    return False


def render(row: Row) -> dict[str, Any]:
    """The JSON form of an event.

    A stored payload that is not strict JSON (a row written before client
    details were validated: NaN, a lone surrogate, nesting too deep, or not
    JSON at all) renders as ``{"unreadable": "<why>"}`` rather than failing
    the whole read, so one bad row cannot break ``/audit`` or a stream.
    """
    return {"id": row["id"], "kind": row["kind"], "session_id": row["session_id"],
            "project_key": row["project_key"], "subject_id": row["subject_id"], "target": row["target"],
            "created_at": isoformat(row["created_at"]), "payload": _payload(row["payload"])}


def _payload(text: str) -> Any:
    try:  # the hub wrote it from a dict (no key named twice): only the other rules are checked
        return strictjson.loads(text, keys_unique=True)
    except ValueError as exc:
        return {"unreadable": str(exc).replace("body", "stored payload", 1)}


def check_detail(detail: dict[str, Any], max_bytes: int) -> None:
    """Refuse a client event's ``detail`` over ``max_bytes`` of UTF-8 JSON with 422 (``Invalid``, field ``detail``).

    Events are metadata: a client's event names what happened, and bodies
    live in their own tables, so the cap is a few KiB (issue 8: unbounded
    details let one token fill the hub's memory through the event ring).
    The request body was already held to strict JSON by the input guard.
    """
    try:
        size = len(json.dumps(detail, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except ValueError:  # a number that overflowed to infinity (1e400): the parser let it through as a float
        raise Invalid("detail holds a number that is not finite", field="detail") from None
    if size > max_bytes:
        raise Invalid(f"detail is {size} bytes of JSON; the limit is {max_bytes} (events are metadata)",
                      field="detail", limit=max_bytes)


class Filter:
    """What one event stream keeps: the events ``viewer`` may see (:func:`visible`) that pass its subscription
    filters (:func:`matches`); call it with an event row.

    ``asked`` is the subscription filters alone (kinds, project key, target
    session, acting session), hashable: for a :func:`public` event, streams
    with equal ``asked`` keep the same events whoever views, so a fan-out
    decides once per distinct ``asked`` (:mod:`coordhub.api.fanout`).
    """

    __slots__ = ("viewer", "admin", "asked")

    def __init__(self, viewer: str, admin: bool, kinds: tuple[str, ...] = (), project_key: str | None = None,
                 to_session: str | None = None, session_id: str | None = None) -> None:
        self.viewer = viewer
        self.admin = admin
        self.asked = (kinds, projects.fold(project_key), to_session, session_id)

    def __call__(self, row: Row) -> bool:
        return visible(row, self.viewer, self.admin) and matches(row, *self.asked)


def matches(row: Row, kinds: tuple[str, ...] = (), project_key: str | None = None,
            to_session: str | None = None, session_id: str | None = None) -> bool:
    """Whether an event passes the subscription filters (``kinds`` are prefixes)."""
    return ((not kinds or row["kind"].startswith(kinds))
            and (project_key is None or row["project_key"] == project_key)
            and (to_session is None or row["target"] in (to_session, "*"))
            and (session_id is None or row["session_id"] == session_id))
