"""What a PostgreSQL write batch keeps between its units stays current through units that fail (issue 15).

A batch keeps the rows and scans it read ahead with its ``BEGIN`` (``RowsAhead``, following its own writes)
and the standing halts (``Halts``). A unit that fails is rolled back to its savepoint; what the batch keeps is
dropped only when that unit changed it (``RowsAhead.writes``, ``Halts.unit_begins``), so that a refused claim
costs no round trip. Random batches mix claims (refused or not), releases, renewals, sends, halts set and
lifted, and units failing at once, after writing, after sending writes ahead (``SEND_AHEAD``), after raw SQL,
or catching their own refusal; after every unit, everything the batch keeps must equal the database.
Dropping nothing on a rollback fails every seed; never dropping the halts fails most.
"""
from __future__ import annotations

import random
from typing import Any

import pytest

from coordhub.core import leases, messages
from coordhub.core.hub import Operation
from coordhub.core.identity import Actor
from coordhub.errors import CoordError, Invalid
from coordhub.store.base import Ahead
from coordhub.store.tables.sessions import READ_AHEAD
from coordhub.store.tables.system import Halts
from coordhub.store.tx import Tx
from tests.core.test_batched_writes import _batch
from tests.store.test_rows_ahead import _actual, _hub_on, _typed

SEEDS = 10
HALT = {"scope": "project:zz", "reason": "r", "halted_by": "admin", "halted_at": 1.0}


def _mismatches(tx: Tx, now: float, seen: dict[str, int]) -> list[str]:
    """What the batch keeps that differs from the database now; counts in ``seen`` what was compared."""
    out: list[str] = []
    ra = tx.ex.rows_ahead
    seen["rows"] += len(ra.rows.get("leases", {})) + len(ra.rows.get("sessions", {}))
    seen["halts"] += tx.halts._standing is not None
    for scan in list(ra.scans):
        seen["scans"] += 1
        got = tx.leases._ahead(scan, now, None, None, due=False)
        if got is not None and _typed(got)[:3] != _typed(_actual(tx, scan, now, None, None))[:3]:
            out.append(f"scan {scan}")
    for key, row in dict(ra.rows.get("leases", {})).items():
        db = tx.ex.one("SELECT * FROM leases WHERE id = ?", (key,))
        if (row is None) != (db is None) or (row is not None and dict(row) != dict(db)):
            out.append(f"lease {key}: ahead {row} db {db}")
    for key, row in dict(ra.rows.get("sessions", {})).items():
        db = tx.ex.one(f"SELECT {', '.join(READ_AHEAD)} FROM sessions WHERE session_key = lower(?)", (key,))
        if (row is None) != (db is None) or (row is not None and dict(row) != dict(db)):
            out.append(f"session {key}: ahead {row} db {db}")
    standing = tx.halts._standing
    if standing is not None and [dict(r) for r in standing] != [dict(r) for r in tx.ex.all(Halts.STANDING)]:
        out.append(f"halts: kept {standing}")
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("seed", range(SEEDS))
def test_what_a_batch_keeps_stays_current_through_failing_units(seed: int) -> None:
    rng = random.Random(seed)
    seen = {"scans": 0, "rows": 0, "halts": 0}
    actors = [Actor(f"{n}/main") for n in "ABC"]
    paths = ["src/a.py", "src/b.py", "src/", "src/x/y.py", "lib/z.py", "src/**/*.py", "name:db", "."]
    bad: list[str] = []
    with _hub_on("coordhub_kept") as (hub, clock):
        held: list[tuple[Actor, str]] = []
        for _ in range(14):
            calls: list[tuple[Actor, Operation]] = []
            named: list[Ahead | None] = []
            for _ in range(rng.randint(4, 12)):
                actor = rng.choice(actors)
                resource = rng.choice(paths)
                scan = leases.claim_scan("p", resource)
                assert scan is not None

                def claim(tx: Tx, now: float, a: Actor = actor, r: str = resource) -> Any:
                    return leases.claim(tx, a, project_key="p", resource=r, description=rng.choice([None, "d", "é"]),
                                        ttl_hours=rng.choice([0, 1]), now=now)
                kind = rng.choice(["send", "send_fail", "renew", "raw_many_fail", "claim", "claim", "claim_fail",
                                   "fail", "many_fail", "catch", "halt_fail", "halt_read_fail", "halt", "lift",
                                   "release", "release_fail", "tick"])
                if kind in ("send", "send_fail"):
                    to = rng.choice(actors + [Actor("new/one"), Actor("NEW/one")]).session_id

                    def op(tx: Tx, now: float, a: Actor = actor, t: str = to, k: str = kind) -> Any:
                        out = messages.send(tx, a, to_session=t, subject="s", body="b" * rng.randint(1, 50), now=now)
                        if k == "send_fail":
                            raise Invalid("after a send")
                        return out
                    calls.append((actor, op))
                    named.append(Ahead(sessions=(to,), quotas=(actor.session_id,), scans=(scan,)))
                    continue
                elif kind == "renew" and held:
                    owner, lease_id = rng.choice(held)
                    calls.append((owner, lambda tx, now, a=owner, x=lease_id: leases.renew(tx, a, x, 0.002, now)))
                    named.append(Ahead(leases=(lease_id,), scans=(scan,)))
                    continue
                elif kind == "raw_many_fail":
                    def op(tx: Tx, now: float) -> Any:
                        tx.ex.many([("UPDATE leases SET description = 'raw' WHERE state = 'active'", ())])
                        raise Invalid("after raw")
                elif kind == "claim":
                    op: Operation = claim
                elif kind == "claim_fail":
                    def op(tx: Tx, now: float, c: Any = claim) -> Any:
                        c(tx, now)
                        raise Invalid("after a claim")
                elif kind == "fail":
                    def op(tx: Tx, now: float) -> Any:
                        raise Invalid("at once")
                elif kind == "many_fail":  # past SEND_AHEAD, then fails
                    def op(tx: Tx, now: float) -> Any:
                        for i in range(40):
                            tx.meta.put(f"k{i}", "v")
                        if held:
                            o, x = rng.choice(held)
                            tx.leases.extend(x, 1.0, now + 99, now)
                        raise Invalid("after many")
                elif kind == "catch":
                    def op(tx: Tx, now: float, c: Any = claim, a: Actor = actor) -> Any:
                        try:
                            c(tx, now)
                        except CoordError:
                            pass
                        return leases.claim(tx, a, project_key="p", resource="other/q.py", description="q",
                                            ttl_hours=1, now=now)
                elif kind == "halt_fail":
                    def op(tx: Tx, now: float) -> Any:
                        tx.halts.put(dict(HALT))
                        raise Invalid("after a halt")
                elif kind == "halt_read_fail":
                    def op(tx: Tx, now: float) -> Any:
                        tx.halts.put(dict(HALT))
                        tx.halts.all()
                        raise Invalid("after a halt read")
                elif kind == "halt":
                    def op(tx: Tx, now: float) -> Any:
                        tx.halts.put(dict(HALT))
                elif kind == "lift":
                    def op(tx: Tx, now: float) -> Any:
                        tx.halts.clear(HALT["scope"])
                elif kind in ("release", "release_fail") and held:
                    owner, lease_id = rng.choice(held)
                    actor = owner

                    def op(tx: Tx, now: float, a: Actor = owner, x: str = lease_id, k: str = kind) -> Any:
                        out = leases.release(tx, a, x, now)
                        if k == "release_fail":
                            raise Invalid("after a release")
                        return out
                    calls.append((actor, op))
                    named.append(Ahead(leases=(lease_id,), scans=(scan,)))
                    continue
                else:
                    def op(tx: Tx, now: float) -> Any:
                        clock.advance(rng.choice([1, 2]))
                calls.append((actor, op))
                named.append(Ahead(scans=(scan,), leases=tuple(x for _, x in held[-3:])))

                def check(tx: Tx, now: float, k: str = kind) -> None:
                    bad.extend(f"after {k}: {m}" for m in _mismatches(tx, now, seen))
                calls.append((actors[0], check))
                named.append(None)
            for (actor, _), out in zip(calls, _batch(hub, calls, named), strict=True):
                if isinstance(out, dict) and out.get("fence") and out.get("state") == "active":
                    held.append((actor, out["id"]))
    assert not bad, "\n".join(bad[:20])
    assert min(seen.values()) > 0, seen  # scans, rows and halts were kept, and compared
