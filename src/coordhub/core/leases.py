"""Leases on resources, with fencing tokens (contract §2.3 and §2.4).

A lease is a row with an expiry (rq's ``StartedJobRegistry`` pattern): claim is
one transaction that checks every live lease of the project for overlap and
inserts the grant with the next value of the one persisted fencing counter.
Expiry is decided by the hub's clock alone: a lease whose ``expires_at`` has
passed stops conflicting at once (every query filters on it) and the sweeper,
or the next claim, records it as ``expired``.

Field names and ``ttl_hours`` semantics (default 2, 0 = no expiry) are seed
001's. A session's own leases never conflict with its new claims, and a claim
of a resource the session already holds live in the project (equal after
``paths.normalize``) is a renewal of that lease, not a second grant: same id,
same fence, the new TTL from now, answered with ``renewed: true``. A claim of
a resource that merely *overlaps* one the session holds (``src/`` while
holding ``src/a.py``) is a new grant with its own fence: the two leases end
independently, so one cannot stand for the other.

Overlap index (issue 8): each lease row carries its ``scope`` (the longest
literal segment prefix of its resource, see ``paths.Resource.scope``). Two
resources can only overlap if one's scope is an ancestor of, equal to, or
beneath the other's, or one has no scope at all (a leading wildcard, the
root), so a claim reads the leases filed at its scope's ancestors, beneath
its scope, and at the root, never the whole project. The exact check then
runs on those candidates only, within one :class:`paths.Budget` per request.
A path written without ``/`` is a directory when a live lease shows it
(``Leases.shows_directory``); see ``coordhub.core.paths``.

Project keys compare case-insensitively: every function here that takes one
folds it first (:mod:`coordhub.core.projects`).

This module changes leases; reading them (the live list, conflict queries,
one lease) is :mod:`coordhub.core.leasequeries`, through the same index.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import paths, projects
from coordhub.core.events import emit_nowait
from coordhub.core.identity import Actor, require_admin
from coordhub.errors import Conflict, Forbidden, Invalid, LeaseConflict, NotFound, StaleFence
from coordhub.ids import new_id
from coordhub.store.base import Row, Scan
from coordhub.store.tables.leases import Candidates, is_live
from coordhub.store.tx import Tx

DEFAULT_TTL_HOURS = 2.0  # seed 001: "use 2 for normal work"
MAX_TTL_HOURS = 24.0 * 365
STALE_AFTER_HOURS = 2.0  # seed 001's stale-lock rule: 2 hours without activity
STALE_TAKEOVER = "stale_takeover"
MAX_DESCRIPTION = 4096  # characters; seed 001's descriptions are one line ("Adding credential endpoints")
MAX_LIVE_PER_SESSION = 1000  # live leases one session may hold at once (a claim past it: 409 lease_limit)


class LeaseLimit(Conflict):
    """The session holds :data:`MAX_LIVE_PER_SESSION` live leases (409; ``limit``): release some first."""

    code = "lease_limit"


def check_description(description: str | None) -> str | None:
    """Return ``description`` if it is at most :data:`MAX_DESCRIPTION` characters; raise ``Invalid`` otherwise."""
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise Invalid(f"description must be at most {MAX_DESCRIPTION} characters, not {len(description)}",
                      field="description")
    return description


def render(row: Row, now: float) -> dict[str, Any]:
    """The JSON form of a lease (seed 001 fields plus fence, state and time left).

    Seed 001's lock carried ``created_at`` and ``updated_at``, as every record of its schema did; they were missing
    here: ``created_at`` is the grant (``acquired_at``), ``updated_at`` the last change (grant, renewal or end),
    the text of whichever of those it is, so a lease list renders no more timestamps than before (issue 15).
    """
    expires_at = row["expires_at"]
    live = row["state"] == "active" and (expires_at is None or expires_at > now)
    acquired, renewed, released = (isoformat(row["acquired_at"]), isoformat(row["renewed_at"]),
                                   isoformat(row["released_at"]))
    changed = row.get("updated_at")
    updated = (released if changed is not None and changed == row["released_at"] else
               renewed if changed is not None and changed == row["renewed_at"] else
               acquired if changed is None or changed == row["acquired_at"] else isoformat(changed))
    return {
        "id": row["id"],
        "fence": row["fence"],
        "project_key": row["project_key"],
        "resource": row["resource"],
        "kind": row["kind"],
        "session_id": row["session_id"],
        "description": row["description"],
        "ttl_hours": row["ttl_hours"],
        "acquired_at": acquired,
        "renewed_at": renewed,
        "expires_at": isoformat(expires_at),
        "expires_in_seconds": None if expires_at is None else max(0.0, round(expires_at - now, 3)),
        "state": row["state"] if not (row["state"] == "active" and not live) else "expired",
        "released_at": released,
        "released_by": row["released_by"],
        "release_reason": row.get("release_reason"),
        "created_at": acquired,
        "updated_at": updated,
    }


def check_ttl(ttl_hours: float) -> float:
    """Return ``ttl_hours`` if it is finite, ≥ 0 and ≤ one year; raise ``Invalid`` otherwise."""
    if not math.isfinite(ttl_hours) or ttl_hours < 0:
        raise Invalid(f"ttl_hours must be a number ≥ 0 (0 = no expiry), not {ttl_hours!r}", field="ttl_hours")
    if ttl_hours > MAX_TTL_HOURS:
        raise Invalid(f"ttl_hours must be at most {MAX_TTL_HOURS:g} (one year); use 0 for no expiry",
                      field="ttl_hours")
    return ttl_hours


def _expiry(ttl_hours: float, now: float) -> float | None:
    return None if ttl_hours == 0 else now + ttl_hours * 3600.0


def parse_resource(resource: str) -> paths.Resource:
    """The parsed resource; ``Invalid`` (422) naming the rule it breaks (length, control character, size …)."""
    try:
        return paths.parse(resource)
    except ValueError as exc:
        raise Invalid(f"resource {resource!r}: {exc}", field="resource") from exc


def _scope_is_dir(res: paths.Resource) -> bool:
    """Whether the lease shows its scope is a directory (anything but a plain file or a NAME)."""
    if res.kind is paths.ResourceKind.NAME:
        return False
    return res.directory or not res.literal or len(res.alternatives) > 1


def _ancestors(scope: str) -> list[str]:
    """``scope`` and every segment prefix of it, plus "" (where leases without a scope are filed), sorted."""
    parts = scope.split("/") if scope else []
    return sorted({"", *("/".join(parts[:n]) for n in range(1, len(parts) + 1))})


def _scan(project_key: str, res: paths.Resource) -> Scan:
    """The live leases of ``project_key`` that may overlap ``res``, as :meth:`Leases.candidates` reads them: those
    filed at its scope or an ancestor (a NAME: at its own text only), and, except for a NAME, the path and glob
    leases filed beneath its scope."""
    if res.kind is paths.ResourceKind.NAME:  # a NAME overlaps only itself, filed under its own text
        return Scan(project_key, (res.scope,), None)
    scope = "" if res.universal else res.scope
    return Scan(project_key, tuple(_ancestors(scope)), scope)


def claim_scan(project_key: str, resource: str) -> Scan | None:
    """What a claim of ``resource`` in ``project_key`` will read (for reading it ahead:
    :class:`~coordhub.store.base.ReadsAhead`), or None when ``resource`` is refused (the claim fails itself)."""
    try:
        return _scan(projects.fold(project_key), parse_resource(resource))
    except Invalid:
        return None


def candidates(tx: Tx, project_key: str, res: paths.Resource, now: float, *, exclude: str | None,
                first_only: bool, due: bool) -> Candidates:
    """Every lease row that may overlap ``res`` (see the module docstring), read in one go; with ``due``, also the
    leases waiting to be recorded as expired. ``at_scopes`` includes the scope of ``res`` itself, anyone's.

    ``first_only`` stops the scan beneath the scope at one row when every such row must overlap (a literal
    claim). Leases granted before the index existed are always candidates (``unscoped``)."""
    scan = _scan(project_key, res)
    # Every path or glob filed strictly beneath a single literal path overlaps it (it shows the path
    # is a directory), so one such row settles a claim.
    single = res.literal and not res.universal and len(res.alternatives) == 1 and scan.beneath is not None
    return tx.leases.candidates(project_key, now, scopes=list(scan.scopes), beneath=scan.beneath, exclude=exclude,
                                beneath_limit=1 if first_only and single else None, due=due)


def overlaps_in(tx: Tx, project_key: str, res: paths.Resource, now: float, seen: Candidates, *,
              exclude: str | None, budget: paths.Budget | None) -> Iterator[Row]:
    """The rows of ``seen`` (not held by ``exclude``) that overlap ``res``: those at its scope and above, then
    (except for a NAME) the unscoped ones, then those beneath it. Sound: may over-report (an exhausted ``budget``
    counts as an overlap), never misses."""
    known: dict[str, bool] = {}

    def is_dir(key: str) -> bool:
        if key not in known:
            known[key] = tx.leases.shows_directory(project_key, key, now)
        return known[key]

    groups = (seen.at_scopes,) if res.kind is paths.ResourceKind.NAME else (seen.at_scopes, seen.unscoped,
                                                                            seen.beneath)
    for rows in groups:
        for row in rows:
            if row["session_id"] != exclude and parse_stored(row).overlaps(res, is_dir, budget):
                yield row


def parse_stored(row: Row) -> paths.Resource:
    """The parsed resource of a stored lease ``row``; one the rules now refuse parses as the root (covers anything)."""
    try:
        return paths.parse(row["resource"])
    except ValueError:
        return paths.parse(".")  # a stored resource the rules now refuse may cover anything: sound


def claim(tx: Tx, actor: Actor, *, project_key: str, resource: str, description: str | None,
          ttl_hours: float, now: float) -> dict[str, Any]:
    """Grant a lease or raise ``LeaseConflict`` (409) naming the live holder of an overlapping one.

    Atomic (one unit of work). Paths conflict by hierarchy, globs with every
    path or glob they could share a file with, names by equality (see
    ``coordhub.core.paths``). Returns the new lease with its ``fence``, taken
    from the one strictly increasing counter, and ``renewed: false``; when the
    actor already holds a live lease on the same normalised resource in the
    project, returns that lease renewed to ``ttl_hours`` from ``now`` (same id
    and fence, description unchanged) with ``renewed: true`` — so a repeated
    claim is idempotent and never leaves the holder two grants to release.
    """
    project_key = projects.fold(project_key)
    res = parse_resource(resource)
    ttl_hours = check_ttl(ttl_hours)
    description = check_description(description)
    # One read for everything the claim decides on (a round trip on PostgreSQL); when leases are due to be
    # recorded as expired, or wait to be filed under their scope, that is done first and the rows read again.
    seen = candidates(tx, project_key, res, now, exclude=actor.session_id, first_only=True, due=True)
    if seen.due or seen.unscoped:
        expire_due(tx, now)
        _file_unscoped(tx, project_key, now)
        seen = candidates(tx, project_key, res, now, exclude=actor.session_id, first_only=True, due=False)
    held = _held_by(actor, res, seen.at_scopes)
    if held is not None:
        return {**_extend(tx, actor, _whole(tx, held), ttl_hours, now, reclaimed=True), "renewed": True}
    budget = paths.Budget()
    for held in overlaps_in(tx, project_key, res, now, seen, exclude=actor.session_id, budget=budget):
        raise _conflict(_whole(tx, held), resource, now, undecided=budget.exhausted)
    _take_room(tx, actor.session_id)
    row: Row = {
        "id": new_id(), "fence": tx.leases.next_fence(), "project_key": project_key,
        "resource": resource, "kind": res.kind.value, "session_id": actor.session_id, "description": description,
        "ttl_hours": ttl_hours, "acquired_at": now, "renewed_at": None, "expires_at": _expiry(ttl_hours, now),
        "state": "active", "released_at": None, "released_by": None, "updated_at": now,
        "scope": "" if res.universal else res.scope, "scope_is_dir": int(_scope_is_dir(res)),
    }
    tx.leases.add(row)
    tx.assignments.lease_changed(row)  # an issue lease holds its queued assignment back (dispatch)
    # The description goes with the event: the dashboard's lease view shows a lease from this event alone
    # (no read per grant), and an operator reads the description to learn what the holder is doing.
    emit_nowait(tx, "lease.granted", now, session_id=actor.session_id, project_key=project_key, subject_id=row["id"],
         resource=resource, fence=row["fence"], expires_at=row["expires_at"], description=description)
    return {**render(row, now), "renewed": False}


#: Per store connection (its executor), per session: how many more leases the session may be granted before its
#: active leases are counted again. A count (one query; a round trip on PostgreSQL) on every claim would cost the
#: hot path (issue 15), so the session's leases are counted only when this runs out: a grant takes one, a release
#: gives none back (so it may run out early, never late). Another hub process granting leases to the same session
#: is not seen here: the bound holds per process that writes (one on SQLite).
_ROOM: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()
_ROOM_SESSIONS = 10_000  # sessions remembered per connection; past it all are forgotten (and counted again)


def _take_room(tx: Tx, session_id: str) -> None:
    """Refuse a new grant to a session holding :data:`MAX_LIVE_PER_SESSION` live leases (:class:`LeaseLimit`),
    counting them only when :data:`_ROOM` says the session may be near the bound; else take one of its room."""
    room = _ROOM.setdefault(tx.leases.ex, {})
    left = room.get(session_id, 0)
    if left <= 0:
        # Due leases were recorded as expired by the claim, so the session's active leases are its live ones.
        held = tx.leases.active_of(session_id, MAX_LIVE_PER_SESSION)
        if held >= MAX_LIVE_PER_SESSION:
            room.pop(session_id, None)
            raise LeaseLimit(f"session {session_id} holds {MAX_LIVE_PER_SESSION} live leases, the most one "
                             "session may hold; release some (or claim a directory or glob that covers them) first",
                             limit=MAX_LIVE_PER_SESSION)
        left = MAX_LIVE_PER_SESSION - held
    if session_id not in room and len(room) >= _ROOM_SESSIONS:
        room.clear()
    room[session_id] = left - 1


def _whole(tx: Tx, row: Row) -> Row:
    """``row`` with its ``description``: overlap checks read leases without it (``Leases.BRIEF``)."""
    if "description" in row:
        return row
    return tx.leases.get(row["id"]) or {**row, "description": None}


def _held_by(actor: Actor, res: paths.Resource, at_scopes: list[Row]) -> Row | None:
    """The actor's live lease on the same normalised resource (the oldest), or None, among ``at_scopes``
    (the project's live leases filed at the scope of ``res`` and its ancestors, oldest first): such a lease
    is filed under the same scope."""
    scope = "" if res.universal else res.scope
    for row in at_scopes:
        if row["scope"] == scope and row["session_id"] == actor.session_id and parse_stored(row).key == res.key:
            return row
    return None


def _file_unscoped(tx: Tx, project_key: str, now: float) -> None:
    """File the project's live leases granted before the scope index existed (once; then there are none)."""
    for row in tx.leases.unscoped(project_key, now, None):
        res = parse_stored(row)
        tx.leases.file_scope(row["id"], "" if res.universal else res.scope, _scope_is_dir(res))


def _conflict(held: Row, resource: str, now: float, undecided: bool = False) -> LeaseConflict:
    expires_at = held["expires_at"]
    left = None if expires_at is None else round(expires_at - now, 3)
    when = "never expires" if left is None else f"expires in {left / 60:.0f} min"
    verb = ("could not be told apart within the hub's work bound from" if undecided else "overlaps")
    return LeaseConflict(
        f"{resource!r} {verb} {held['resource']!r}, leased by {held['session_id']} "
        f"({held['description'] or 'no description'}); lease {held['id']} {when}",
        holder=held["session_id"], lease_id=held["id"], resource=held["resource"],
        description=held["description"], expires_at=isoformat(expires_at), expires_in_seconds=left,
        fence=held["fence"],
    )


def get_row(tx: Tx, lease_id: str) -> Row:
    """The stored row of lease ``lease_id`` in any state (see :func:`render` for its JSON form); ``NotFound``."""
    row = tx.leases.get(lease_id)
    if row is None:
        raise NotFound(f"no lease {lease_id!r}")
    return row


def check_stale_after(hours: float) -> float:
    """Return ``hours`` if it is a valid stale-takeover threshold (finite, 0 ≤ hours ≤ one year; 0 = never)."""
    if not math.isfinite(hours) or not 0 <= hours <= MAX_TTL_HOURS:
        raise ValueError(f"stale_after_hours must be between 0 and {MAX_TTL_HOURS:g}, not {hours!r}")
    return hours


def last_activity(tx: Tx, row: Row) -> float:
    """When the holder of ``row`` last showed life: its latest write or heartbeat, or this lease's grant or renewal.

    Writes are every mutation the hub applied for the session (``sessions.last_seen``,
    touched in the same transaction), heartbeats the presence ones; reads leave no trace.
    """
    session = tx.sessions.get(row["session_id"]) or {}
    seen = (session.get("last_seen"), session.get("last_heartbeat"), row["acquired_at"], row["renewed_at"])
    return float(max(t for t in seen if t is not None))


def stale_in(tx: Tx, row: Row, now: float, stale_after_hours: float) -> float | None:
    """Seconds until a live lease may be taken over as stale (≤ 0: now); None if it never may.

    Only a no-expiry lease (``ttl_hours`` 0) ever goes stale: one with a TTL
    ends by itself, and a takeover would only race its expiry.
    """
    if row["expires_at"] is not None or stale_after_hours == 0:
        return None
    return last_activity(tx, row) + stale_after_hours * 3600.0 - now


def release(tx: Tx, actor: Actor, lease_id: str, now: float, *, stale_after_hours: float = STALE_AFTER_HOURS,
            reason: str | None = None) -> dict[str, Any]:
    """Release a lease held by the actor, or take over a stale one; 403 for anyone else.

    The holder's release records ``released``. Any other session may release a
    *stale* lease (seed 001's stale-lock rule, made safe): no expiry
    (``ttl_hours`` 0) and no activity of its holder for ``stale_after_hours``
    (see :func:`last_activity`); it is recorded as ``stale_takeover`` with the
    taker in ``released_by`` and the inactivity (and ``reason``, if given) in
    ``release_reason``, and its fence is stale from then on. A lease whose
    holder was active more recently is refused with ``Forbidden`` and
    ``stale_in_seconds``; admins force-release with :func:`revoke`.
    Releasing a lease that already ended returns it unchanged, whoever asks
    (a retried release or takeover is harmless, and an ended lease is no
    one's: a non-holder is told it ended, not refused). The answer is the
    lease (:func:`render`) plus ``already``: True when this call changed
    nothing because the lease had ended before it (released, expired,
    revoked, or taken over), so a front end can say so.
    """
    row = get_row(tx, lease_id)
    if row["session_id"] != actor.session_id:
        if not is_live(row, now):
            # An ended lease (expired, released, revoked, taken over) is no one's: seed 001's stale-lock rule has
            # any session release a lock past 2 hours, which by then has expired, and a 403 told that session it
            # may not free what was already free. It is answered as the holder's retried release is: unchanged.
            return {**render(row, now), "already": True}
        return _take_over(tx, actor, row, now, stale_after_hours, reason)
    already = row["state"] != "active"
    if not already:
        row = _end(tx, row, "released" if is_live(row, now) else "expired", now, actor.session_id)
    return {**render(row, now), "already": already}


def _take_over(tx: Tx, actor: Actor, row: Row, now: float, stale_after_hours: float,
               reason: str | None) -> dict[str, Any]:
    """A non-holder's release of a live lease: a stale takeover, or ``Forbidden``."""
    holder = row["session_id"]
    refusal = f"lease {row['id']} is held by {holder}, not {actor.session_id}; only the holder may release it " \
              "(an admin can force-release)"
    wait = stale_in(tx, row, now, stale_after_hours)
    if wait is None:
        why = (f"it expires in {(row['expires_at'] - now) / 60:.0f} min" if row["expires_at"] is not None else
               "stale takeovers are turned off on this hub")
        raise Forbidden(f"{refusal}; {why}", holder=holder, stale_in_seconds=None)
    idle = now - last_activity(tx, row)
    if wait > 0:
        raise Forbidden(f"{refusal}; its holder was active {idle / 60:.0f} min ago, so it is not stale: it may be "
                        f"taken over after {stale_after_hours:g} h without activity, in {wait / 60:.0f} min",
                        holder=holder, stale_in_seconds=round(wait, 3))
    why = (f"stale takeover by {actor.session_id}: no activity of {holder} for {idle / 3600:.1f} h "
           f"(threshold {stale_after_hours:g} h, seed 001's stale-lock rule)") + (f": {reason}" if reason else "")
    tx.leases.end(row["id"], STALE_TAKEOVER, now, actor.session_id, why)
    tx.assignments.lease_changed(row)
    # The holder is the target: if it comes back, its notifications say who took the lease and why.
    emit_nowait(tx, f"lease.{STALE_TAKEOVER}", now, session_id=actor.session_id, project_key=row["project_key"],
         subject_id=row["id"], target=holder, resource=row["resource"], fence=row["fence"], holder=holder,
         by=actor.session_id, reason=why, inactive_seconds=round(idle, 3))
    return {**render(get_row(tx, row["id"]), now), "already": False}


def revoke(tx: Tx, actor: Actor, lease_id: str, now: float) -> dict[str, Any]:
    """Force-release any lease (admin only); the old holder's fence stops being current.

    Answers as :func:`release`: the lease plus ``already`` (True when it had ended before this call).
    """
    require_admin(actor, "force-release")
    row = get_row(tx, lease_id)
    already = row["state"] != "active"
    if not already:  # one that already ran out is recorded as expired, not revoked
        row = _end(tx, row, "revoked" if is_live(row, now) else "expired", now, actor.session_id)
    return {**render(row, now), "already": already}


def _end(tx: Tx, row: Row, state: str, now: float, by: str | None) -> Row:
    """End the lease ``row`` in ``state``; return the row as it now stands (no read: the UPDATE sets just these)."""
    tx.leases.end(row["id"], state, now, by)
    tx.assignments.lease_changed(row)
    emit_nowait(tx, f"lease.{state}", now, session_id=row["session_id"], project_key=row["project_key"],
         subject_id=row["id"], resource=row["resource"], fence=row["fence"], by=by)
    return {**row, "state": state, "released_at": now, "released_by": by, "release_reason": None, "updated_at": now}


def renew(tx: Tx, actor: Actor, lease_id: str, ttl_hours: float | None, now: float) -> dict[str, Any]:
    """Extend a live lease held by the actor to ``now + ttl_hours`` (default: its own TTL).

    The fence does not change. 403 for a non-holder; ``StaleFence`` (409) when
    the lease already expired, was released or was revoked — the holder must
    claim again and take a new fence.
    """
    row = get_row(tx, lease_id)
    if row["session_id"] != actor.session_id:
        raise Forbidden(f"lease {lease_id} is held by {row['session_id']}; only the holder may renew it")
    if not is_live(row, now):
        raise StaleFence(f"lease {lease_id} is no longer live ({render(row, now)['state']}); claim again",
                         lease_id=lease_id, fence=row["fence"])
    return _extend(tx, actor, row, check_ttl(row["ttl_hours"] if ttl_hours is None else ttl_hours), now)


def _extend(tx: Tx, actor: Actor, row: Row, ttl: float, now: float, reclaimed: bool = False) -> dict[str, Any]:
    """Renew a live lease of the actor to ``ttl`` hours from ``now``; the fence stays. Answers from the row as the
    UPDATE leaves it (it sets just these), as :func:`_end` does: no read after the write."""
    expires_at = _expiry(ttl, now)
    tx.leases.extend(row["id"], ttl, expires_at, now)
    tx.assignments.lease_changed(row)
    emit_nowait(tx, "lease.renewed", now, session_id=actor.session_id, project_key=row["project_key"],
         subject_id=row["id"], fence=row["fence"], ttl_hours=ttl, reclaimed=reclaimed)
    return render({**row, "ttl_hours": ttl, "expires_at": expires_at, "renewed_at": now, "updated_at": now}, now)


def release_all(tx: Tx, actor: Actor, session_id: str, now: float) -> dict[str, Any]:
    """Release every live lease of ``session_id`` (the actor's own, or any session's for an admin)."""
    if session_id != actor.session_id:
        require_admin(actor, f"releasing the leases of {session_id}")
    rows = tx.leases.live(now, session_id=session_id)
    for row in rows:
        _end(tx, row, "released" if session_id == actor.session_id else "revoked", now, actor.session_id)
    return {"session_id": session_id, "released": len(rows), "lease_ids": [r["id"] for r in rows]}


def revoke_session(tx: Tx, actor: Actor, session_id: str, now: float) -> list[str]:
    """Record every live lease of ``session_id`` as ``revoked`` by the actor (admin only); return their ids.

    For a session whose credential ends: its fences go stale at once, and
    what it held is free for others.
    """
    require_admin(actor, f"revoking the leases of {session_id}")
    rows = tx.leases.live(now, session_id=session_id)
    for row in rows:
        _end(tx, row, "revoked", now, actor.session_id)
    return [r["id"] for r in rows]


def expire_due(tx: Tx, now: float) -> int:
    """Record every lease past its ``expires_at`` as expired; return how many. Idempotent."""
    rows = tx.leases.due(now)
    for row in rows:
        _end(tx, row, "expired", now, None)
    return len(rows)
