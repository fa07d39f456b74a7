"""Rows read ahead for a PostgreSQL write batch (``store/pgahead.py``, issue 15).

The rows follow the batch's own writes without asking the database again; these
tests hold the pieces that rule depends on: the sender's upsert as mirrored in
Python (``tables.sessions.acted``) gives the row the database stores, on both
backends, and every statement of ours that writes a table read ahead is
recognised, with no more latitude than its SQL says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import random
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import pq

from coordhub.clock import ManualClock
from coordhub.core import events, leases, messages, quota
from coordhub.core.hub import Hub, Operation
from coordhub.core.identity import Actor
from coordhub.errors import Conflict
from coordhub.store import Store, open_store, postgres
from coordhub.store.base import STALE_RETRIES, Ahead, Scan
from coordhub.store.pgahead import MAX_AHEAD, PLAN_BY_INDEX, Layout, RowsAhead, effect, query
from coordhub.store.pgpipe import Pipe, numbered
from coordhub.store.tables import quota as quota_table
from coordhub.store.tables.leases import BRIEF, Candidates
from coordhub.store.tables.sessions import ACT, READ_AHEAD, SEEN_RESOLUTION, acted
from coordhub.store.tx import Tx
from tests.conftest import scratch_database
from tests.core.test_batched_writes import _batch

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "coordhub"


@contextlib.contextmanager
def _hub_on(prefix: str, options: str = "", start: float = 1_800_000_000.0) -> Iterator[tuple[Hub, ManualClock]]:
    """A hub on a manual clock at ``start`` over a new PostgreSQL database (``scratch_database``'s arguments)."""
    with scratch_database(prefix, options) as url:
        store = open_store(url)
        store.open()
        try:
            clock = ManualClock(start)
            yield Hub(store, clock), clock
        finally:
            store.close()


def _row(store: Store, session_id: str) -> dict[str, object]:
    row = store.read_sync(lambda tx: tx.ex.one("SELECT * FROM sessions WHERE session_key = lower(?)", (session_id,)))
    assert row is not None
    return dict(row)


def _claim_and_release(hub: Hub, actor: Actor, scan: Scan) -> tuple[Any, Any]:
    """Claim ``src/a.py`` in project ``p`` (``scan`` its claim's scan, read ahead), then release it: two batches;
    each one's answer."""
    [claimed] = _batch(hub, [(actor, lambda tx, now: leases.claim(
        tx, actor, project_key="p", resource="src/a.py", description=None, ttl_hours=1, now=now))],
        [Ahead(scans=(scan,))])
    lease_id = claimed["id"]
    [released] = _batch(hub, [(actor, lambda tx, now: leases.release(tx, actor, lease_id, now))],
                        [Ahead(leases=(lease_id,))])
    return claimed, released


@pytest.mark.parametrize("known_before", [False, True])
def test_the_upsert_mirrored_in_python_gives_the_row_the_database_stores(store: Store, known_before: bool) -> None:
    """A session addressed only (no ``known_since``) or already known acts at a later time: ``acted`` of the
    row before, at that time, equals the row after, column for column."""
    store.write_sync(lambda tx: tx.sessions.address("M/Main", 100.0))
    if known_before:
        store.write_sync(lambda tx: tx.sessions.act("m/main", 150.0))
    before = _row(store, "M/Main")
    store.write_sync(lambda tx: tx.ex.one(ACT, ("m/MAIN", "m/MAIN", 200.0, 200.0, 200.0)))
    assert acted(before, 200.0) == _row(store, "M/Main")


@pytest.mark.parametrize("before", ["no row", "the same day", "an earlier day"])
def test_the_charge_mirrored_in_python_gives_the_row_the_database_stores(store: Store, before: str) -> None:
    """A send's charge of its sender's day, as ``tables.quota.charged`` follows it from the row read ahead
    (none, one of the same day, one of an earlier day), leaves the row the database stores."""
    day, who = 20_000, "M/Main"
    if before != "no row":
        prior_day = day if before == "the same day" else day - 3
        store.write_sync(lambda tx: tx.ex.execute(quota_table.CHARGE, (who, prior_day, 700)))

    def row() -> dict[str, object] | None:
        got = store.read_sync(lambda tx: tx.ex.one(
            "SELECT day, messages, bytes FROM message_quota WHERE session_id = ?", (who,)))
        return None if got is None else dict(got)

    was = row()
    store.write_sync(lambda tx: tx.ex.execute(quota_table.CHARGE, (who, day, 1234)))
    assert quota_table.charged(was, day, 1234) == row()


def test_every_statement_that_writes_a_table_read_ahead_is_recognised() -> None:
    """Each SQL text in the code that writes ``sessions`` or ``leases`` (found by a looser search than the
    rule's) is one the rule sees; only a plain ``INSERT`` counts as adding rows and only ``UPDATE … WHERE
    <key> = ?`` as changing one; reads are not taken for writes."""
    loose = re.compile(r"(INSERT INTO|UPDATE|DELETE FROM)\s+(sessions|leases|message_quota)\b")
    found = []
    for path in SRC.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for match in loose.finditer(line):
                found.append((match.group(2), line[match.start():]))
    assert len(found) >= 12, found  # the tables' own, conversations', retention's
    assert all(table in {t for t, _ in effect(text)} for table, text in found), found
    assert effect(ACT) == (("sessions", ACT),)
    for charge in (quota_table.CHARGE, quota_table.CHARGE_RETURNING):
        assert effect(charge) == (("message_quota", "charge"),)
    assert effect("DELETE FROM message_quota WHERE day < ?") == (("message_quota", "other"),)
    assert effect("UPDATE leases SET state = ?, updated_at = ? WHERE id = ?") == (("leases", "one row"),)
    assert effect("UPDATE sessions SET last_heartbeat = ? WHERE session_id = ?") == (("sessions", "one row"),)
    assert effect("INSERT INTO leases (id, fence) VALUES (?, ?)") == (("leases", "adds"),)
    for other in ("UPDATE sessions SET paused_at = NULL WHERE session_id = ? AND paused_at IS NOT NULL",
                  "UPDATE sessions SET incarnation = incarnation + 1 WHERE session_id = ?",
                  "UPDATE leases SET state = 'expired' WHERE state = 'active' AND expires_at <= ?",
                  "DELETE FROM leases WHERE id IN (?, ?)", "INSERT INTO sessions (session_id) VALUES (?) "
                  "ON CONFLICT (session_key) DO NOTHING", "TRUNCATE sessions",
                  "UPDATE leases SET id = ? WHERE id = ?",  # moves a row onto another key
                  "UPDATE sessions SET session_key = ? WHERE session_id = ?"):
        assert [kind for _, kind in effect(other)] == ["other"], other
    assert set(effect("TRUNCATE sessions, leases")) == {("sessions", "other"), ("leases", "other")}
    for read in ("SELECT * FROM sessions WHERE session_key = lower(?)", "SELECT * FROM leases WHERE id = ?",
                 "SELECT 1 FROM sessions s WHERE s.last_seen >= ?", "UPDATE counters SET value = value + 1"):
        assert effect(read) == ()


def test_only_well_formed_keys_are_read_ahead_each_once_and_bounded() -> None:
    """Keys the core would refuse are not read (their lookups are asked as before); duplicates are read
    once; at most MAX_AHEAD per table and batch."""
    lease = "019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12"
    reads = dict(query(Ahead(sessions=("A/x", "a/X", "A/x", "bad id", "x'; DROP TABLE sessions; --", "é/x"),
                             leases=(lease, lease, "not-a-lease'"))))
    assert reads["sessions"][1] == (["A/x", "a/X"],) and reads["leases"][1] == ([lease],)
    assert "?" in reads["sessions"][0] and "A/x" not in reads["sessions"][0]  # keys are parameters, not text
    assert query(Ahead(sessions=("no good", ""))) == []
    many = dict(query(Ahead(sessions=tuple(f"S/{n}" for n in range(MAX_AHEAD + 50)))))
    assert many["sessions"][1] == ([f"S/{n}" for n in range(MAX_AHEAD)],)


def _scanned(scans: dict[Scan, list[dict[str, Any]]], due_at: float | None = None) -> RowsAhead:
    """Rows ahead as a batch's BEGIN would leave them: each scan's filed rows as given, nothing beneath."""
    ahead = RowsAhead()
    filed = [row for rows in scans.values() for row in rows]
    ahead.load(Ahead(scans=tuple(scans)), {"filed": filed, "beneath": [], "due": [{"due_at": due_at}]})
    return ahead


def test_a_scan_is_dropped_by_any_write_that_may_move_a_lease_into_it() -> None:
    """Writes our code never gives, followed as the rule says: a one-row update that makes a lease active or
    sets what files it (project, scope, kind) drops every scan, whichever lease it names; an insert whose
    columns cannot be read, or another statement, drops them and what is known of expiry; a one-row update of
    another lease, or an insert of an ended one, drops nothing. An insert or a renewal lowers the earliest
    expiry."""
    scan = Scan("p", ("", "src", "src/a.py"), "src/a.py")
    row = {"id": "l1", "project_key": "p", "scope": "src", "kind": "path", "state": "active", "expires_at": 50.0}

    def after(sql: str, params: tuple[Any, ...]) -> RowsAhead:
        ahead = _scanned({scan: [row]}, due_at=50.0)
        ahead.wrote(sql, params)
        return ahead

    assert after("UPDATE leases SET description = ? WHERE id = ?", ("x", "l2")).scanned(scan) is not None
    assert after("UPDATE leases SET description = ? WHERE id = ?", ("x", "l1")).scanned(scan) is None
    for sql, params in (("UPDATE leases SET state = ? WHERE id = ?", ("active", "l9")),
                        ("UPDATE leases SET scope = ?, scope_is_dir = ? WHERE id = ?", ("src", 0, "l9")),
                        ("UPDATE leases SET project_key = ? WHERE id = ?", ("p", "l9")),
                        ("UPDATE leases SET kind = ? WHERE id = ?", ("path", "l9")),
                        ("INSERT INTO leases SELECT * FROM old_leases", ()),
                        ("INSERT INTO leases (id, project_key, scope) VALUES (?, ?, ?)", ("l9", "q", "x")),
                        ("DELETE FROM leases WHERE id = ?", ("l9",))):
        ahead = after(sql, params)
        assert ahead.scanned(scan) is None, sql
    assert after("UPDATE leases SET state = ? WHERE id = ?", ("released", "l9")).scanned(scan) is not None
    ended = "INSERT INTO leases (id, project_key, scope, kind, state, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
    assert after(ended, ("l9", "p", "src", "path", "released", 1.0)).scanned(scan) == (
        [row], [], True, 50.0)
    elsewhere = after(ended, ("l9", "p", "lib", "path", "active", 20.0)).scanned(scan)
    assert elsewhere is not None and elsewhere.due_at == 20.0
    assert after(ended, ("l9", "p", "src/a.py/x", "path", "active", 90.0)).scanned(scan) is None  # beneath
    assert after(ended, ("l9", "p", "src/a.pyc", "path", "active", 90.0)).scanned(scan) is not None
    assert after(ended, ("l9", "p", "src/a.py/x", "name", "active", 90.0)).scanned(scan) is not None
    renewed = after("UPDATE leases SET ttl_hours = ?, expires_at = ? WHERE id = ?", (1.0, 10.0, "l9"))
    assert renewed.scanned(scan) == ([row], [], True, 10.0)


def _actual(tx: Tx, scan: Scan, now: float, exclude: str | None, limit: int | None) -> Candidates:
    """What the claim's queries answer now, asked of the database (Leases.candidates' own SQL), each row whole:
    a scan read ahead keeps the ``description`` its own queries leave out (``Leases._ahead``)."""
    t = tx.leases
    queries = [t._at_scopes(scan.project_key, list(scan.scopes), now, None), t._unscoped(scan.project_key, now, None),
               t._due(now)]
    if scan.beneath is not None:
        queries.append(t._beneath_scope(scan.project_key, scan.beneath, now, exclude, limit))
    whole = [(sql.replace(f"SELECT {BRIEF} ", "SELECT * ", 1), params) for sql, params in queries]
    assert all(sql.startswith("SELECT * ") for sql, _ in whole), whole
    rows = tx.ex.parts(whole, "fence")
    return Candidates(rows[0], rows[1], rows[3] if scan.beneath is not None else [], rows[2])


def _typed(found: Candidates) -> list[list[list[tuple[str, type, Any]]]]:
    """``found`` with each value's type beside it, in column order: ``1`` and ``1.0`` compare equal in Python
    but are not the same answer."""
    return [[[(c, type(v), v) for c, v in row.items()] for row in rows] for rows in found]


@pytest.mark.postgres
def test_scans_read_ahead_answer_as_the_database_does_through_mixed_batches() -> None:
    """Random batches of claims (files, directories, globs, names, the whole project), releases, renewals and
    moves of the clock on PostgreSQL, with a check after every unit: each scan the batch read ahead that is
    still current answers what the claim's own queries answer at that moment, for every holder excluded and
    both limits, and says nothing is due only when nothing is."""
    rng = random.Random(1530)
    actors = [Actor(f"{n}/main") for n in "ABC"]
    paths = ["src/a.py", "src/b.py", "src/", "src/x/y.py", "src/x", "lib/z.py", "src/**/*.py", "*.md", "name:db",
             "name:web", ".", "doc/r.md"]
    with _hub_on("coordhub_scan") as (hub, clock):
        held: list[tuple[Actor, str]] = []
        checked = mismatched = 0
        for _ in range(16):
            calls: list[tuple[Actor, Operation]] = []
            named: list[Ahead | None] = []
            scans = []
            for _ in range(rng.randint(4, 10)):
                actor, roll = rng.choice(actors), rng.random()
                if roll < 0.55 or not held:
                    resource, ttl = rng.choice(paths), rng.choice([0, 0.001, 1])
                    about = rng.choice([None, "", "café", "x"])
                    calls.append((actor, lambda tx, now, a=actor, r=resource, t=ttl, d=about: leases.claim(
                        tx, a, project_key="p", resource=r, description=d, ttl_hours=t, now=now)))
                    scan = leases.claim_scan("p", resource)
                    assert scan is not None
                    scans.append(scan)
                    named.append(Ahead(scans=(scan,)))
                elif roll < 0.75:
                    owner, lease_id = rng.choice(held)
                    calls.append((owner, lambda tx, now, a=owner, x=lease_id: leases.release(tx, a, x, now)))
                    named.append(Ahead(leases=(lease_id,)))
                elif roll < 0.9:
                    owner, lease_id = rng.choice(held)
                    calls.append((owner, lambda tx, now, a=owner, x=lease_id: leases.renew(tx, a, x, 0.002,
                                                                                            now)))
                    named.append(None)
                else:
                    calls.append((actor, lambda tx, now: clock.advance(rng.choice([1, 5, 10]))))
                    named.append(None)

                def check(tx: Tx, now: float, scans: list[Scan] = scans) -> None:
                    nonlocal checked, mismatched
                    for scan in set(scans):
                        for exclude in (None, *(a.session_id for a in actors)):
                            for limit in (None, 1):
                                got = tx.leases._ahead(scan, now, exclude, limit, due=True)
                                if got is None:
                                    continue
                                checked += 1
                                if _typed(got) != _typed(_actual(tx, scan, now, exclude, limit)):
                                    mismatched += 1

                calls.append((actors[0], check))
                named.append(None)
            for (actor, _), out in zip(calls, _batch(hub, calls, named), strict=True):
                if isinstance(out, dict) and out.get("fence") and out.get("state") == "active":
                    held.append((actor, out["id"]))
        assert mismatched == 0 and checked > 250, (mismatched, checked)


@pytest.mark.postgres
def test_the_reads_ahead_keep_plans_by_index_made_while_the_tables_were_empty() -> None:
    """Each read ahead is prepared once, and after its fifth use the server may keep one generic plan for good.
    Plans made on a fresh database, then used after 20,000 leases and 2,000 sessions were added (no ANALYZE in
    between, as in the first minute of a busy hub): every read still finds its rows by index, with no
    sequential scan and no hash or merge join (:data:`PLAN_BY_INDEX`). A read the server kept one plan of
    (``filed`` and ``due`` here) is explained as kept; one it plans at each use is planned, as the hub plans
    it, under :data:`PLAN_BY_INDEX` (without the settings the sessions' read is kept as a hash join)."""
    a = Actor("A/main")
    scan = leases.claim_scan("p", "src/a.py")
    assert scan is not None and scan.beneath is not None
    with _hub_on("coordhub_plans") as (hub, clock):
        lease_id = ""
        for _ in range(8):  # past the fifth use of each read
            lease_id = _claim_and_release(hub, a, scan)[0]["id"]
        hub.store.write_sync(lambda tx: tx.ex.execute(
            "INSERT INTO leases (id, fence, project_key, resource, kind, session_id, ttl_hours, acquired_at, state, "
            "updated_at, scope) SELECT 'x' || g, 1000000 + g, 'p', 'src/f' || g, 'path', 'A/main', 1, 0, "
            "CASE WHEN g % 100 = 0 THEN 'active' ELSE 'released' END, 0, 'src/f' || g "
            "FROM generate_series(1, 20000) g"))
        hub.store.write_sync(lambda tx: tx.ex.execute(
            "INSERT INTO sessions (session_id, session_key, first_seen, last_seen) "
            "SELECT 'S' || g || '/x', 's' || g || '/x', 0, 0 FROM generate_series(1, 2000) g"))

        def plans(tx: Tx) -> dict[str, tuple[int, str]]:
            pipe = tx.ex.pipe
            quote = pq.Escaping(pipe._pg).escape_literal
            names = {sql: name for (sql, _), name in pipe._prepared.items()}
            generic = {r["name"]: r["generic_plans"] for r in pipe.simple(
                b"SELECT name, generic_plans FROM pg_prepared_statements")[0].rows}
            out = {}
            for read, (sql, params) in query(Ahead(sessions=(a.session_id,), leases=(lease_id,), scans=(scan,))):
                name = names[numbered(sql)].decode()
                values = ", ".join("ARRAY[" + ", ".join(quote(v.encode()).decode() for v in p) + "]::text[]"
                                   for p in params)
                explain = f"EXPLAIN (FORMAT JSON) EXECUTE {name}" + (f"({values})" if values else "")
                answers = pipe.simple(f"{PLAN_BY_INDEX}; {explain}".encode())
                out[read] = (generic[name], json.dumps(answers[1].rows[0]))
            return out

        found = hub.store.write_sync(plans)
        assert set(found) == {"sessions", "leases", "filed", "beneath", "due"}, found
        # (without PLAN_BY_INDEX the sessions' read kept a generic plan from here on: a hash join over a whole scan)
        assert any(generic for generic, _ in found.values()), found  # some plan explained was kept from the start
        for read, (_, plan) in found.items():
            assert not any(node in plan for node in ("Seq Scan", "Hash Join", "Merge Join")), (read, plan)


@pytest.mark.postgres
def test_the_planner_settings_are_given_back_before_any_unit_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unit, in batches begun alone and begun with the last one's ``COMMIT``, runs with the connection's
    own planner settings: those of :data:`PLAN_BY_INDEX` hold for the reads ahead only."""
    chained: list[bool] = []
    commit_and_begin = postgres._Connection.commit_and_begin

    def counted(self: Any, ahead: Ahead | None) -> Any:
        begun = commit_and_begin(self, ahead)
        chained.append(begun is not None)
        return begun

    monkeypatch.setattr(postgres._Connection, "commit_and_begin", counted)
    a = Actor("A/main")
    scan = leases.claim_scan("p", "src/a.py")
    assert scan is not None
    seen: list[tuple[str, ...]] = []

    def settings(tx: Tx, now: float) -> None:
        row = tx.ex.one("SELECT current_setting('enable_seqscan') AS s, current_setting('enable_hashjoin') AS h, "
                        "current_setting('enable_mergejoin') AS m")
        assert row is not None
        seen.append((row["s"], row["h"], row["m"]))

    with _hub_on("coordhub_settings") as (hub, clock):
        writer = hub.store._writer  # type: ignore[attr-defined]
        writer._max_batch = 4  # 24 units queued at once: six batches, five begun with the last one's COMMIT
        chained_before = writer.batches
        _batch(hub, [(a, settings)] * 24, [Ahead(scans=(scan,), leases=(str(uuid.uuid4()),))] * 24)
        _batch(hub, [(a, settings)], [Ahead(scans=(scan,))])  # begun alone
        assert writer.batches - chained_before >= 7 and chained.count(True) >= 4, (writer.batches, chained)
        assert seen == [("on", "on", "on")] * 25, seen


@pytest.mark.postgres
def test_a_column_added_to_leases_while_the_hub_runs() -> None:
    """A newer hub's migration (or an operator) adds a column to ``leases`` while this hub runs; the server then
    refuses every statement prepared with whole rows of it. The reads ahead are prepared again at the next
    batch's ``BEGIN``, a read is run again on its connection, and a batch whose unit reads whole rows is run
    again (the statement prepared anew): no claim, release, read or write fails, alone or in a batch."""
    a = Actor("A/main")
    scan = leases.claim_scan("p", "src/a.py")
    assert scan is not None

    def whole(tx: Tx) -> Any:
        return tx.ex.all("SELECT * FROM leases ORDER BY fence LIMIT ?", (1,))[0]

    def add_column(name: str) -> None:
        with psycopg.connect(hub.store.url, autocommit=True) as other:  # type: ignore[attr-defined]
            other.execute(f"ALTER TABLE leases ADD COLUMN {name} TEXT")

    with _hub_on("coordhub_alter") as (hub, clock):
        for _ in range(7):  # each read past its fifth use
            _claim_and_release(hub, a, scan)
        assert isinstance(hub.store.write_sync(whole), dict)
        for _ in range(3):  # prepared on the reader's connection (one after another: the same thread)
            assert "added_later" not in hub.store.read_sync(whole)
        add_column("added_later")
        for _ in range(3):
            claimed, released = _claim_and_release(hub, a, scan)
            assert claimed.get("state") == "active" and released.get("state") == "released", (claimed, released)
        assert "added_later" in hub.store.read_sync(whole)
        assert "added_later" in hub.store.write_sync(whole)
        add_column("added_again")
        assert all(isinstance(row, dict) and "added_again" in row for row in _one_batch(hub.store, [whole] * 3))


def _one_batch(store: Store, units: list[Any]) -> list[Any]:
    """Run ``units`` in one write batch (queued while a unit holds the writer); each one's result, or its
    exception."""
    entered, gate = threading.Event(), threading.Event()

    def hold(tx: Tx) -> None:
        entered.set()
        gate.wait(10)

    held = store.submit_write(hold)
    assert entered.wait(10)
    queued = [store.submit_write(unit) for unit in units]
    gate.set()
    held.result(10)
    return [future.exception(10) or future.result(10) for future in queued]


@pytest.mark.postgres
def test_a_batch_meeting_more_refused_statements_than_it_may_run_again_fails_only_their_units() -> None:
    """Each run of a batch reports one statement the server refused as prepared; past ``STALE_RETRIES`` runs
    again, a unit that meets one more fails alone (its statement is prepared anew for its caller's retry), and
    the other units commit."""
    ran: list[str] = []

    def whole(n: int) -> Any:  # distinct texts: distinct prepared statements
        return lambda tx: tx.ex.all(f"SELECT * FROM leases WHERE fence > ? ORDER BY fence LIMIT {n}", (0,))

    def plain(tx: Tx) -> Any:
        ran.append("plain")
        return tx.ex.one("SELECT 1 AS one")

    units = [whole(n) for n in range(1, STALE_RETRIES + 3)]
    with _hub_on("coordhub_stale") as (hub, clock):
        assert all(type(r) is list for r in _one_batch(hub.store, units))  # each one prepared
        with psycopg.connect(hub.store.url, autocommit=True) as other:  # type: ignore[attr-defined]
            other.execute("ALTER TABLE leases ADD COLUMN added_later TEXT")
        done = _one_batch(hub.store, [*units, plain])
        assert [type(r).__name__ for r in done] == ["list"] * STALE_RETRIES + ["FeatureNotSupported"] * 2 + ["dict"]
        assert ran == ["plain"]  # the runs before the last stopped at a refused statement before it
        assert all(type(r) is list for r in _one_batch(hub.store, units))  # each one prepared anew


@pytest.mark.postgres
def test_another_error_of_an_unsupported_feature_fails_its_unit_once() -> None:
    """SQLSTATE 0A000 for another reason than a statement prepared before (here a value the function refuses,
    in a statement prepared in the same round trip) is the unit's own error: it is not run again, and the
    batch's other units commit."""
    ran: list[str] = []

    def refused(tx: Tx) -> Any:
        ran.append("refused")
        return tx.ex.one("SELECT array_position(?::int[], 1) AS n", ("{{1,2},{3,4}}",))

    def plain(tx: Tx) -> Any:
        ran.append("plain")
        return tx.ex.one("SELECT 1 AS one")

    with _hub_on("coordhub_unsupported") as (hub, clock):
        done = _one_batch(hub.store, [plain, refused, plain])
        assert [type(r).__name__ for r in done] == ["dict", "FeatureNotSupported", "dict"]
        assert ran == ["plain", "refused", "plain"]


@pytest.mark.postgres
def test_the_event_feed_refused_as_prepared_after_a_failed_last_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A column is added to ``events`` while a batch runs (by its first unit, from another connection, before
    the batch touches the table), and the batch's last unit fails. The feed's whole-row read of the batch's
    events is the batch's, not that unit's: it travels with the ``COMMIT`` (one round trip), is refused as
    prepared, and the batch runs again with it prepared anew. The failed unit's caller gets its own error, the
    other unit commits, and the feed delivers its event."""
    delivered: list[list[str]] = []
    runs: list[list[str]] = []
    run = Pipe.run

    def spied(pipe: Pipe, statements: Any) -> Any:
        runs.append([sql if isinstance(sql, str) else sql.decode() for sql, _ in statements])
        return run(pipe, statements)

    def logging(tx: Tx) -> Any:
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS added_later TEXT")
        events.emit_nowait(tx, "test.logged", 1.0, session_id=None)
        return "logged"

    def failing(tx: Tx) -> Any:
        tx.ex.one("SELECT 1 AS one")
        raise Conflict("its own refusal")

    with _hub_on("coordhub_feed") as (hub, clock):
        url = hub.store.url  # type: ignore[attr-defined]
        hub.feed_commits(0, lambda after, rows: delivered.append([row["kind"] for row in rows]))
        hub.store.write_sync(lambda tx: None)  # the feed's read prepared
        monkeypatch.setattr(Pipe, "run", spied)
        done = _one_batch(hub.store, [logging, failing])
        assert done[0] == "logged" and isinstance(done[1], Conflict), done
        assert delivered[-1] == ["test.logged"], delivered
        begun = max(n for n, texts in enumerate(runs) if texts[0].startswith("BEGIN"))  # the batch's last run
        assert [texts for texts in runs[begun:] if "COMMIT" in texts
                and any(text.startswith("SELECT * FROM events WHERE id >") for text in texts)], runs[begun:]


@pytest.mark.postgres
def test_a_check_left_waiting_refused_as_prepared_runs_its_batch_again() -> None:
    """A unit's whole-row read whose answer it left waiting (``Executor.expect``, settled with the next unit's
    round trip) is refused as prepared after a column is added: the batch runs again with it prepared anew,
    and both units commit."""
    seen: list[int] = []

    def waiting(tx: Tx) -> Any:
        tx.ex.expect("SELECT * FROM leases ORDER BY fence LIMIT ?", (1,), lambda rows: seen.append(len(rows)))
        return "waited"

    def reading(tx: Tx) -> Any:
        return tx.ex.one("SELECT 2 AS two")

    with _hub_on("coordhub_waiting") as (hub, clock):
        assert _one_batch(hub.store, [waiting, reading]) == ["waited", {"two": 2}]
        with psycopg.connect(hub.store.url, autocommit=True) as other:  # type: ignore[attr-defined]
            other.execute("ALTER TABLE leases ADD COLUMN added_later TEXT")
        assert _one_batch(hub.store, [waiting, reading]) == ["waited", {"two": 2}]
        assert seen and set(seen) == {0}, seen


def test_only_scans_in_printable_ascii_are_read_ahead() -> None:
    """A scan spelled otherwise (its text could be other text in a database in another encoding, and no
    PostgreSQL text holds a NUL) is asked as before; the reads of the others bound what they keep."""
    plain = Scan("p", ("", "src", "src/a.py"), "src/a.py")
    others = [Scan("café", ("",), ""), Scan("p", ("", "é"), "é"), Scan("p\x00x", ("",), ""),
              Scan("p", ("name:\x00",), None)]
    reads = dict(query(Ahead(scans=(plain, *others, plain))))
    assert set(reads) == {"filed", "beneath", "due"}
    assert reads["filed"][1] == (["p"], ["", "src", "src/a.py"])
    assert reads["beneath"][1] == (["0"], ["p"], ["src/a.py"])
    assert query(Ahead(scans=tuple(others))) == []
    assert reads["filed"][0].endswith(f"LIMIT {MAX_AHEAD + 1}")


@pytest.mark.postgres
@pytest.mark.parametrize("latin1_database", [True, False])
def test_a_claim_in_another_client_encoding_still_sees_its_conflict(latin1_database: bool,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On a LATIN1 database, or a UTF-8 one reached in LATIN1, a second claim of ``café/a.py`` named for
    reading ahead is refused as the first holds it (a UTF-8 literal there would read other text, find no
    lease, and grant it twice)."""
    if not latin1_database:
        monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    options = "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" if latin1_database else ""
    with _hub_on("coordhub_enc", options) as (hub, clock):
        a, b = Actor("A/main"), Actor("B/main")
        claims = [((who, lambda tx, now, who=who: leases.claim(tx, who, project_key="p", resource="café/a.py",
                                                               description=None, ttl_hours=1, now=now)),
                   Ahead.of(scans=(leases.claim_scan("p", "café/a.py"),))) for who in (a, b)]
        hub.mutate_sync(*claims[0][0])
        assert _batch(hub, [claims[1][0]], [claims[1][1]]) == ["LeaseConflict"]


@pytest.mark.postgres
def test_a_database_whose_lower_folds_ascii_otherwise_reads_no_session_ahead() -> None:
    """Under a Turkish collation ``lower('IAN/x')`` is ``ıan/x``: ``IAN/x`` and ``ian/x`` are two sessions
    there, which Python's fold would take for one. Such a database reads no session ahead: a send to ``ian/x``
    (addressed only) after ``IAN/x`` acted in the same batch still finds ``ian/x`` unknown."""
    options = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR'"
    with _hub_on("coordhub_tr", options) as (hub, clock):
        a, upper = Actor("A/main"), Actor("IAN/x")
        hub.mutate_sync(a, lambda tx, now: messages.send(tx, a, to_session="ian/x", subject="hi", body="",
                                                         now=now))
        got = _batch(hub, [(upper, lambda tx, now: None),
                           (a, lambda tx, now: messages.send(tx, a, to_session="ian/x", subject="s", body="b",
                                                             now=now))],
                     [None, Ahead(sessions=("ian/x",))])
        assert got[1]["recipient_known"] is False and got[1]["to_session"] == "ian/x", got


@pytest.mark.postgres
def test_a_send_is_judged_from_its_senders_row_read_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sends that name their sender's quota (as the send route does) are judged from its row read with the
    batch's ``BEGIN``, followed through the batch's own charges: no judgement waits for an answer of the
    database. A unit that fails after its charge leaves the row unknown (asked again), a new day starts it
    again, and the bound holds exactly."""
    monkeypatch.setattr(quota, "MAX_MESSAGES_PER_DAY", 3)
    asked: list[str] = []
    expect = postgres.PostgresExecutor.expect

    def counted(self: postgres.PostgresExecutor, sql: str, params: tuple[Any, ...], check: Any) -> None:
        asked.append(sql)
        expect(self, sql, params, check)

    monkeypatch.setattr(postgres.PostgresExecutor, "expect", counted)
    with _hub_on("coordhub_quota_ahead") as (hub, clock):
        me = Actor("A/main")
        named = Ahead(quotas=(me.session_id,))

        def send(n: int) -> tuple[Actor, Operation]:
            return me, lambda tx, now: messages.send(tx, me, to_session="NOBODY/ghost", subject=f"s{n}", body="x",
                                                     now=now)

        def used() -> object:
            day = int(clock.now() // quota.DAY)
            return hub.store.read_sync(lambda tx: tx.message_quota.used(me.session_id, day))

        def fails_after_its_charge(tx: Tx, now: float) -> None:
            messages.send(tx, me, to_session="NOBODY/ghost", subject="lost", body="x", now=now)
            raise RuntimeError("after the charge")

        got = _batch(hub, [send(0), send(1), send(2), send(3)], [named] * 4)
        assert [type(g).__name__ for g in got] == ["dict", "dict", "dict", "str"] and got[3] == \
            "MessageQuotaExceeded", got
        assert not any(sql == quota_table.CHARGE_RETURNING for sql in asked), asked
        assert used() == {"messages": 3, "bytes": 3 * quota.size_of("s0", "x")}
        clock.advance(quota.DAY)
        got = _batch(hub, [send(4), (me, fails_after_its_charge), send(5), send(6), send(7)], [named] * 5)
        assert got[1] == "RuntimeError" and got[4] == "MessageQuotaExceeded", got
        assert all(isinstance(g, dict) for g in (got[0], got[2], got[3])), got
        assert used() == {"messages": 3, "bytes": 3 * quota.size_of("s4", "x")}
        assert asked.count(quota_table.CHARGE_RETURNING) == 3, asked  # after the failure: asked, as unnamed


@pytest.mark.postgres
def test_a_lease_read_ahead_follows_its_renewal_and_its_end_column_for_column() -> None:
    """A renewal (a whole-number TTL included) and a release change the lease's row read ahead as they change
    the stored one: after each, the row kept equals a live ``SELECT`` of it, types included (``2`` hours is
    read back as ``2.0``), so a later lookup of it in the batch asks nothing and answers the same."""
    a = Actor("A/main")
    # A clock at a whole number: renewed_at and released_at go from NULL to an int, read back as a float.
    with _hub_on("coordhub_follow", start=1_800_000_000) as (hub, clock):
        lease_id = hub.mutate_sync(a, lambda tx, now: leases.claim(tx, a, project_key="p", resource="src/a.py",
                                                                  description=None, ttl_hours=1, now=now)).body["id"]
        seen: list[tuple[Any, Any]] = []

        def compare(tx: Tx, now: float) -> None:
            known, row = tx.ex.ahead("leases", lease_id)
            live = tx.ex.one("SELECT * FROM leases WHERE id = ?", (lease_id,))
            seen.append((known, row == live and all(type(row[c]) is type(live[c]) for c in live)))

        ops: list[tuple[Actor, Operation]] = [
            (a, lambda tx, now: leases.renew(tx, a, lease_id, 2, now)), (a, compare),
            (a, lambda tx, now: leases.claim(tx, a, project_key="p", resource="src/a.py", description=None,
                                             ttl_hours=3, now=now)), (a, compare),
            (a, lambda tx, now: leases.release(tx, a, lease_id, now)), (a, compare)]
        got = _batch(hub, ops, [Ahead(leases=(lease_id,))] * len(ops))
        assert got[2]["renewed"] is True and got[4]["state"] == "released", got
        assert seen == [(True, True)] * 3, seen


@pytest.mark.postgres
def test_a_session_read_ahead_holds_what_its_readers_ask_and_by_key_the_whole_row() -> None:
    """A session's row is read ahead narrow (:data:`READ_AHEAD`, what the sender's check and a recipient's
    lookup ask): before and after the sender's own upsert in the batch it equals a live ``SELECT`` of those
    columns, types included; ``by_key`` in the same unit still answers every column of the table."""
    a, b = Actor("A/main"), Actor("B/main")
    with _hub_on("coordhub_narrow") as (hub, clock):
        hub.mutate_sync(b, lambda tx, now: None)
        hub.mutate_sync(a, lambda tx, now: tx.ex.execute(
            "UPDATE sessions SET machine = ?, project = ? WHERE session_id = ?", ("m1", "p1", a.session_id)))
        columns = ", ".join(READ_AHEAD)
        seen: list[tuple[Any, ...]] = []

        def compare(tx: Tx, now: float) -> None:
            for session in (a, b):
                known, row = tx.ex.ahead("sessions", session.session_id)
                live = tx.ex.one(f"SELECT {columns} FROM sessions WHERE session_id = ?", (session.session_id,))
                whole = tx.sessions.by_key(session.session_id.upper())
                assert row is not None and live is not None and whole is not None
                seen.append((known, set(row) == set(READ_AHEAD),
                             {c: row[c] for c in READ_AHEAD} == live,
                             all(type(row[c]) is type(live[c]) for c in live), len(whole) > len(READ_AHEAD),
                             {c: whole[c] for c in READ_AHEAD} == live))

        clock.advance(5)
        got = _batch(hub, [(a, compare), (a, lambda tx, now: None), (a, compare)],
                     [Ahead(sessions=(b.session_id,))] * 3)
        assert got == [None] * 3, got
        assert len(seen) == 4 and all(seen_one[1:] == (True,) * 5 for seen_one in seen), seen
        assert all(known for known, *_ in seen), seen  # answered from the rows read ahead, not asked again


def test_a_known_sender_seen_within_a_second_is_not_written_again(hub: Hub, clock: ManualClock) -> None:
    """A write moves its sender's ``last_seen`` once :data:`SEEN_RESOLUTION` has passed since the stored one, not
    before; a session only addressed so far (``known_since`` NULL) is made known by its first write however
    recent its row; and the check every write makes still reads the row as it stands (a pause set within the
    second refuses the next write). On PostgreSQL the row is read with the batch's ``BEGIN``, on SQLite by the
    unit itself (``Executor.local``): within the second, its upsert is not run at all."""
    a, b = Actor("A/main"), Actor("B/main")
    upserts: list[str] = []
    if hub.store.name == "sqlite":  # count the upserts the writer's connection runs
        hub.store.write_sync(lambda tx: tx.ex.conn.set_trace_callback(
            lambda sql: upserts.append(sql) if sql.startswith("INSERT INTO sessions") else None))

    def write(actor: Actor, op: Operation = lambda tx, now: None) -> object:
        try:
            return asyncio.run(hub.mutate(actor, op)).body
        except Exception as exc:
            return type(exc).__name__

    start = clock.now()
    write(a)
    written = len(upserts)
    clock.advance(SEEN_RESOLUTION / 2)
    write(a)
    assert _row(hub.store, a.session_id)["last_seen"] == start
    assert len(upserts) == written
    clock.advance(SEEN_RESOLUTION / 2)
    write(a)
    assert _row(hub.store, a.session_id)["last_seen"] == start + SEEN_RESOLUTION
    assert len(upserts) == written + (hub.store.name == "sqlite")

    write(a, lambda tx, now: tx.sessions.address(b.session_id, now))
    assert _row(hub.store, b.session_id)["known_since"] is None
    clock.advance(SEEN_RESOLUTION / 4)
    write(b)
    row = _row(hub.store, b.session_id)
    assert row["known_since"] == row["last_seen"] == start + SEEN_RESOLUTION * 1.25, row

    write(a, lambda tx, now: tx.sessions.pause(a.session_id, "*", now))
    assert write(a) == "Paused"


@pytest.mark.postgres
def test_the_hub_speaks_utf8_whatever_pgclientencoding_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``PGCLIENTENCODING=EUC_JP`` Python's codec would send ``‾`` and ``¥`` as ``~`` and ``\\``: a lease on
    ``src/x‾.py`` would be stored as ``src/x~.py``, collide with a glob it does not match, and differ from the
    row a batch follows. The hub's connections speak UTF-8: the lease is stored as claimed, the row kept for
    the batch equals a live read of it, and a glob on ``src/*~.py`` claimed in the same batch is granted."""
    monkeypatch.setenv("PGCLIENTENCODING", "EUC_JP")
    a, b = Actor("A/main"), Actor("B/main")
    scan = leases.claim_scan("p", "src/")
    with _hub_on("coordhub_euc") as (hub, clock):
        seen: list[bool] = []

        def compare(tx: Tx, now: float) -> None:
            got = tx.leases._ahead(scan, now, None, None, due=False)
            seen.append(got is not None and _typed(got) == _typed(_actual(tx, scan, now, None, None)))

        got = _batch(hub, [
            (a, lambda tx, now: leases.claim(tx, a, project_key="p", resource="src/x\u203e.py", description="\u00a5",
                                             ttl_hours=1, now=now)),
            (a, compare),
            (b, lambda tx, now: leases.claim(tx, b, project_key="p", resource="src/*~.py", description=None,
                                             ttl_hours=1, now=now))],
            [Ahead.of(scans=(scan,)), None, Ahead.of(scans=(leases.claim_scan("p", "src/*~.py"),))])
        assert got[0]["resource"] == "src/x\u203e.py" and got[2]["resource"] == "src/*~.py", got
        assert seen == [True]
        stored = hub.store.read_sync(lambda tx: tx.ex.one("SELECT resource, description FROM leases WHERE id = ?",
                                                          (got[0]["id"],)))
        assert stored == {"resource": "src/x\u203e.py", "description": "\u00a5"}


@pytest.mark.postgres
def test_on_a_database_not_in_utf8_only_ascii_rows_are_followed_into_scans() -> None:
    """A LATIN1 database may store a character other than it was given (or refuse it): an insert of a lease with
    any non-ASCII text drops the batch's scans (claims read again); an ASCII one is followed as on UTF-8."""
    options = "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    a = Actor("A/main")
    scan = leases.claim_scan("p", "src/")
    with _hub_on("coordhub_latin1", options) as (hub, clock):
        kept: list[bool] = []

        def claim(resource: str, description: str) -> Operation:
            return lambda tx, now: leases.claim(tx, a, project_key="p", resource=resource, description=description,
                                                ttl_hours=1, now=now)

        def look(tx: Tx, now: float) -> None:
            kept.append(tx.leases._ahead(scan, now, None, None, due=False) is not None)

        _batch(hub, [(a, claim("src/a.py", "plain")), (a, look), (a, claim("src/b.py", "caf\u00e9")), (a, look)],
               [Ahead.of(scans=(scan,)), None, None, None])
        assert kept == [True, False]


def test_the_row_an_insert_stores_is_known_only_when_every_column_is_certain() -> None:
    """``Layout.row`` (planned once per ``INSERT`` shape) gives the row a plain ``INSERT`` stores, in the table's
    column order, or None where the database, not Python, decides: a column it does not know, one named twice,
    one left out that is not NULL when omitted, a value of another type; a whole number for a DOUBLE PRECISION
    column comes back a float."""
    layout = Layout([{"column_name": "id", "data_type": "text", "null_when_omitted": False},
                     {"column_name": "fence", "data_type": "bigint", "null_when_omitted": False},
                     {"column_name": "expires_at", "data_type": "double precision", "null_when_omitted": True},
                     {"column_name": "note", "data_type": "text", "null_when_omitted": True}])
    assert layout.row(("fence", "id"), (3, "x")) == {"id": "x", "fence": 3, "expires_at": None, "note": None}
    assert list(layout.row(("fence", "id", "expires_at"), (3, "x", 7)) or {}) == ["id", "fence", "expires_at", "note"]
    assert layout.row(("fence", "id", "expires_at"), (3, "x", 7)) == {"id": "x", "fence": 3, "expires_at": 7.0,
                                                                     "note": None}
    assert type((layout.row(("id", "fence", "expires_at"), ("x", 3, 7)) or {})["expires_at"]) is float
    assert layout.row(("id",), ("x",)) is None  # fence may not be left out
    assert layout.row(("id", "fence", "other"), ("x", 3, "y")) is None  # a column the table does not have
    assert layout.row(("id", "fence", "fence"), ("x", 3, 4)) is None  # named twice: the database refuses it
    assert layout.row(("id", "fence"), ("x", True)) is None  # a bool for a bigint: the database decides
    assert layout.row(("id", "fence"), ("x", "3")) is None
    assert layout.row(("id", "fence", "note"), ("x", 3, None)) == {"id": "x", "fence": 3, "expires_at": None,
                                                                  "note": None}
    assert Layout([]).row(("id",), ("x",)) is None  # the table's layout unknown


def test_a_new_lease_joins_the_scans_it_may_belong_to_in_their_order() -> None:
    """``RowsAhead._joining``: a new active lease is offered to the scans at its scope and those above it (each
    once, in the order they were read) and to no other."""
    rows = RowsAhead()
    own = Scan("p", ("src/a.py",), None)
    above = Scan("p", ("src",), "src")
    whole = Scan("p", (".",), "")
    elsewhere = Scan("p", ("lib/z.py",), None)
    rows.load(Ahead(scans=(whole, elsewhere, own, above)), {"filed": [], "beneath": [], "due": [{"due_at": None}]})
    assert rows._joining({"project_key": "p", "scope": "src/a.py"}) == [whole, own, above]
    assert rows._joining({"project_key": "p", "scope": "lib/z.py"}) == [whole, elsewhere]
    assert rows._joining({"project_key": "p", "scope": "doc/r.md"}) == [whole]
    assert rows._joining({"project_key": "q", "scope": "src/a.py"}) == []
    rows.clear()
    rows.load(Ahead(scans=(own,)), {"filed": [], "beneath": [], "due": [{"due_at": None}]})
    assert rows._joining({"project_key": "p", "scope": "src/a.py"}) == [own]
    assert rows._joining({"project_key": "p", "scope": "src/b.py"}) == []
