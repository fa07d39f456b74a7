"""Rows a PostgreSQL write batch reads with its ``BEGIN`` (issue 15: a round trip per send, per release, per claim).

A send looks its recipient up (:meth:`~coordhub.store.tables.sessions.Sessions.address`),
a release the lease it ends (:meth:`~coordhub.store.tables.leases.Leases.get`)
and a claim the live leases it could collide with
(:meth:`~coordhub.store.tables.leases.Leases.candidates`, a
:class:`~coordhub.store.base.Scan`) before any can decide anything, and on
PostgreSQL each lookup was a round trip of its own, one per unit of a batch.
Units that name their lookups (:class:`~coordhub.store.base.ReadsAhead`) have
those rows read in the batch's first round trip instead, and a lookup is
answered from them while they are current. Of a lease the whole row is read; of
a session only the columns its lookups in a write ask
(:data:`~coordhub.store.tables.sessions.READ_AHEAD`). A send also charges its
sender's day of sending (:class:`~coordhub.store.tables.quota.MessageQuota`),
whose row read ahead lets the bound be judged before the ``COMMIT`` is sent,
not in a round trip of its own.

Current means: what a ``SELECT`` at that point of the batch would return. The
batch's own writes are followed as they are given (held back or not, they run
before any later read), by what their SQL says:

* the sender's upsert that every unit runs (:data:`~coordhub.store.tables.sessions.ACT`)
  is applied to the row it touches (:func:`~coordhub.store.tables.sessions.acted`);
  a spelling that had no row is dropped (asked again);
* a send's charge of its sender's day (:data:`~coordhub.store.tables.quota.CHARGE`)
  is applied to the row it touches, there before or not
  (:func:`~coordhub.store.tables.quota.charged`);
* ``UPDATE <table> SET … WHERE <key> = ?`` (one row by its key) drops that key
  (a lease's row: is changed as it says, so a release after a renewal in one
  batch still reads nothing);
* a plain ``INSERT`` (no ``ON CONFLICT``) only adds rows: it drops the keys
  known to have none;
* any other statement that writes the table drops all of its rows, and a unit
  rolled back to its savepoint drops every row of every table.

A scan is followed by the same statements, through what they do to leases that
are ``active`` (the only ones it holds):

* a plain ``INSERT`` of an active lease (an earlier claim of the batch is a
  candidate of a later one) adds the new row to each scan it belongs to, when
  the row is known column for column: every column it leaves out has no
  default (so is NULL) and every value it gives is of its column's type
  (:class:`Layout`, read once per connection), and its texts are stored as
  given (the hub's connections speak UTF-8; on a database in another
  encoding only ASCII texts are taken to be); otherwise it drops those scans,
  or all of them when which it joins is unsure. Either way it lowers the
  earliest expiry;
* a one-row ``UPDATE`` of a lease a scan holds changes the row as it says,
  and takes it out of the scan when it ends it (a release, a revocation);
  one that may move a lease into a scan (it sets the project, scope or kind,
  or makes a lease active) drops every scan, as any other write does.

Rows read under the writer's lock change only through the batch itself: every
write to the database goes through a writer holding that lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from coordhub.store.base import Ahead, Row, Scan, Scanned
from coordhub.store.tables import quota
from coordhub.store.tables.sessions import ACT, ACT_WRITE, READ_AHEAD, acted

MAX_AHEAD = 256  # keys read ahead per table per batch; a lookup past them is asked as before
KEY_COLUMN = "ahead_key"  # the key each row read ahead answers


@dataclass(frozen=True)
class _Table:
    """How rows of one table are read ahead and followed."""

    name: str
    joins: str  # the row for key k.ahead_key
    written: str  # the column a one-row UPDATE names in its WHERE
    keys: frozenset[str]  # columns that say which row is which (a one-row UPDATE must not set them)
    fold: Callable[[str], str]  # keys that name the same row compare equal folded
    shape: re.Pattern[str]  # well-formed keys (others are never read ahead)
    columns: str  # what is read of each row ("t.*": all of it)


TABLES = (
    # Session ids as the core accepts them: ASCII, so Python's lower() is the database's lower() (checked per
    # connection: ASCII_LOWER; a Turkish collation, say, folds I otherwise, and then no session is read ahead).
    _Table("sessions", "sessions t ON t.session_key = lower(k.ahead_key)", "session_id",
           frozenset({"session_id", "session_key"}), str.lower, re.compile(r"[A-Za-z0-9_.@+/-]{1,200}"),
           ", ".join(f"t.{c}" for c in READ_AHEAD)),
    _Table("leases", "leases t ON t.id = k.ahead_key", "id", frozenset({"id"}), str, re.compile(r"[0-9a-f-]{36}"),
           "t.*"),
    # A sender's day of sending, by its session id as the core spells it (no folding: the row's key is exact).
    _Table("message_quota", "message_quota t ON t.session_id = k.ahead_key", "session_id",
           frozenset({"session_id"}), str, re.compile(r"[A-Za-z0-9_.@+/-]{1,200}"),
           ", ".join(f"t.{c}" for c in quota.READ_AHEAD)),
)
ASCII_LOWER = b"SELECT lower('ABCDEFGHIJKLMNOPQRSTUVWXYZ') = 'abcdefghijklmnopqrstuvwxyz' AS ok"
_BY_NAME = {t.name: t for t in TABLES}

_ADDS, _ONE_ROW, _OTHER, _CHARGE = "adds", "one row", "other", "charge"
_LEASE_FLOATS = frozenset({"ttl_hours", "acquired_at", "renewed_at", "expires_at", "released_at", "updated_at"})
_MOVES = frozenset({"project_key", "scope", "kind"})  # columns that decide which scans a lease belongs to
_SCAN_ROWS = MAX_AHEAD  # rows of one scan's kind read at most; a scan with more is asked as before


@lru_cache(maxsize=4096)
def effect(sql: str) -> tuple[tuple[str, str], ...]:
    """``(table, kind)`` for each followed table ``sql`` writes (kind: what it may change); empty if none.

    A statement that writes two of them changes anything in both.
    """
    text = " ".join(sql.split())
    written = [t for t in TABLES if re.search(
        rf"\b(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?)\b[^;]*?\b{t.name}\b", text,
        re.IGNORECASE)]
    if len(written) != 1:
        return tuple((t.name, _OTHER) for t in written)
    table = written[0]
    name = re.escape(table.name)
    if sql in (ACT, ACT_WRITE):
        return ((table.name, ACT),)
    if sql in (quota.CHARGE, quota.CHARGE_RETURNING):
        return ((table.name, _CHARGE),)
    one = re.fullmatch(rf"UPDATE {name} SET ((?:[a-z_]+ = \?, )*[a-z_]+ = \?) WHERE {table.written} = \?", text)
    if one is not None and not {s.split(" = ")[0] for s in one.group(1).split(", ")} & table.keys:
        return ((table.name, _ONE_ROW),)
    if re.match(rf"INSERT INTO {name} \(", text) and not re.search(r"\bON\s+CONFLICT\b", text, re.IGNORECASE):
        return ((table.name, _ADDS),)
    return ((table.name, _OTHER),)


#: A read ahead: its name (a table, or a scan's part: ``filed``, ``beneath``, ``due``) and its SQL and parameters.
Read = tuple[str, tuple[str, tuple[Any, ...]]]


def query(ahead: Ahead, *, sessions: bool = True) -> list[Read]:
    """The reads for ``ahead``: ``(name, (SQL, parameters))`` for each table with keys, and for the scans.

    Only well-formed keys are read (a lookup of anything else cannot have been
    named by a unit the core accepted), each once, at most :data:`MAX_AHEAD`;
    sessions only with ``sessions`` (the database folds ASCII as Python does).
    The keys travel as array parameters, so each read's text is the same in
    every batch and is prepared once (issue 15: quoted into the text, a batch's
    reads were parsed and planned anew each time, up to a third of the server's
    work for a batch of lease cycles); run them between :data:`PLAN_BY_INDEX`
    and its undoing (:func:`planned_as_before`).
    """
    out: list[Read] = []
    for table, keys in (("sessions", ahead.sessions if sessions else ()), ("leases", ahead.leases),
                        ("message_quota", ahead.quotas)):
        spec = _BY_NAME[table]
        wanted = list(dict.fromkeys(k for k in keys if spec.shape.fullmatch(k)))[:MAX_AHEAD]
        if wanted:
            out.append((table, (f"SELECT k.{KEY_COLUMN}, {spec.columns} FROM unnest(?::text[]) AS k({KEY_COLUMN}) "
                                f"LEFT JOIN {spec.joins}", (wanted,))))
    scans = scan_list(ahead)
    if scans:
        out.extend(_scan_queries(scans))
    return out


#: Run before the reads ahead (one statement): the plans of their prepared texts use the indexes whatever the
#: tables' sizes were when the server made them. After its fifth use the server may keep one generic plan of a
#: prepared statement, and one made while ``leases`` was nearly empty scanned it whole on every later batch
#: (measured: 0.44 ms a batch instead of a few hundredths, docs/benchmarks.md "2026-12-03 (7)"). Each read is a
#: lookup by key or an index range, so an index is the right plan at any size. Transaction-local.
_BY_INDEX = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")  # planner settings off for the reads ahead
PLAN_BY_INDEX = "SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in _BY_INDEX)
#: The connection's own values of what :data:`PLAN_BY_INDEX` sets, read once (a row keyed by setting name).
PLANNER_SETTINGS = "SELECT " + ", ".join(f"current_setting('{name}') AS {name}" for name in _BY_INDEX)


def planned_as_before(settings: Row) -> tuple[str, tuple[Any, ...]]:
    """The statement that gives back, after the reads ahead, the planner settings :data:`PLANNER_SETTINGS` read."""
    return ("SELECT " + ", ".join(f"set_config('{name}', ?, true)" for name in _BY_INDEX),
            tuple(str(settings[name]) for name in _BY_INDEX))


_PLAIN = re.compile(r"[\x20-\x7e]{0,1024}")  # printable ASCII: the same bytes in every client encoding


def _plain(scan: Scan) -> bool:
    """Whether ``scan`` is spelled in printable ASCII only. Others are asked as before: a database in another
    encoding than UTF-8 may take a text for another (a scan that finds nothing, kept as complete), or refuse it
    for the whole batch; and no PostgreSQL text holds a NUL."""
    return all(_PLAIN.fullmatch(text) for text in (scan.project_key, *scan.scopes, scan.beneath or ""))


def scan_list(ahead: Ahead) -> list[Scan]:
    """The scans of ``ahead`` that are read: each once, in printable ASCII (:func:`_plain`), at most
    :data:`MAX_AHEAD`."""
    return [s for s in dict.fromkeys(ahead.scans) if _plain(s)][:MAX_AHEAD]


def _scan_queries(scans: list[Scan]) -> list[Read]:
    """The three reads of :func:`query` for ``scans``: ``filed`` (active leases of their projects at their scopes
    or at none, oldest first, one row more than kept), ``beneath`` (per scan, by its position, one row more than
    kept) and ``due`` (the earliest expiry of an active lease). Leases.candidates' predicates, before expiry."""
    projects = list(dict.fromkeys(s.project_key for s in scans))
    scopes = list(dict.fromkeys(x for s in scans for x in s.scopes))
    filed = ("SELECT * FROM leases WHERE state = 'active' AND project_key = ANY(?::text[]) "
             f"AND (scope IS NULL OR scope = ANY(?::text[])) ORDER BY fence LIMIT {_SCAN_ROWS + 1}")
    out: list[Read] = [("filed", (filed, (projects, scopes)))]
    under = [(str(n), s) for n, s in enumerate(scans) if s.beneath is not None]
    if under:
        # Two branches, each a range of the (project_key, scope) index: one CASE of both would be a filter
        # over every active lease, under the writer's lock.
        below = ("(SELECT * FROM leases WHERE project_key = s.project AND state = 'active' AND kind <> 'name' "
                 "AND {} ORDER BY fence LIMIT " + str(_SCAN_ROWS + 1) + ")")
        out.append(("beneath", (
            f"SELECT s.{KEY_COLUMN}, t.* FROM unnest(?::text[], ?::text[], ?::text[]) AS s({KEY_COLUMN}, project, top) "
            "CROSS JOIN LATERAL (" + below.format("s.top = '' AND scope > ''") + " UNION ALL "
            + below.format("s.top <> '' AND scope >= s.top || '/' AND scope < s.top || '0'")  # "0" follows "/"
            + ") t",
            ([n for n, _ in under], [s.project_key for _, s in under], [s.beneath or "" for _, s in under]))))
    out.append(("due", ("SELECT min(expires_at) AS due_at FROM leases WHERE state = 'active'", ())))
    return out


def _filed_in(scan: Scan, row: Row) -> bool:
    """Whether an active lease ``row`` is one of ``scan``'s filed rows (at one of its scopes, or at none)."""
    return row.get("project_key") == scan.project_key and (row.get("scope") is None or row["scope"] in scan.scopes)


def _beneath(scan: Scan, row: Row) -> bool:
    """Whether an active lease ``row`` is one of ``scan``'s rows beneath its scope (Python's order of code points
    is the "C" collation's order of UTF-8 bytes, the ``scope`` column's)."""
    top, scope = scan.beneath, row.get("scope")
    if top is None or scope is None or row.get("kind") == "name" or row.get("project_key") != scan.project_key:
        return False
    return bool(scope > "" if top == "" else top + "/" <= scope < top + "0")


class Layout:
    """The ``leases`` table as the database defines it, to know the row a plain ``INSERT`` stores: each column's
    type, and whether one the ``INSERT`` leaves out is NULL (nullable, no default). Read once per connection
    (:data:`LAYOUT`); a batch's own ``INSERT`` of a lease is followed into its scans only through it."""

    __slots__ = ("columns", "exact_text", "_plans")

    _TYPES = {"text": str, "bigint": int, "integer": int, "double precision": float}

    def __init__(self, rows: Sequence[Row], server_encoding: str = "UTF8") -> None:
        # column -> (Python type of its values, NULL when left out); a type we do not map is None: never followed
        self.columns: dict[str, tuple[type | None, bool]] = {
            str(r["column_name"]): (self._TYPES.get(str(r["data_type"])), bool(r["null_when_omitted"]))
            for r in rows}
        # Whether any text comes back as it was given (the connection speaks UTF-8): a database in another
        # encoding may store some characters as others; ASCII it stores as given, whatever its encoding.
        self.exact_text = server_encoding in ("UTF8", "SQL_ASCII")
        self._plans: dict[tuple[str, ...], list[tuple[str, type | None, int]]] = {}  # by INSERT shape (row)

    def exact(self, values: Iterable[Any]) -> bool:
        """Whether the database stores every text among ``values`` as it is here (so Python may compare it)."""
        return self.exact_text or all(_PLAIN.fullmatch(v) for v in values if type(v) is str)

    def row(self, columns: tuple[str, ...], params: tuple[Any, ...]) -> Row | None:
        """The row ``INSERT INTO leases (columns) VALUES (params)`` stores, as a ``SELECT *`` reads it back (in
        the table's column order; a whole number for a DOUBLE PRECISION column as a float), or None when that
        is not certain: a column unknown or of another type, a value not of its column's type, a column left
        out that has a default or may not be NULL."""
        plan = self._plans.get(columns)
        if plan is None:
            plan = self._plans[columns] = self._plan(columns)
        if not plan:
            return None
        out: Row = {}
        for column, kind, at in plan:
            value = None if at < 0 else params[at]
            if value is None or (kind is not None and type(value) is kind):
                out[column] = value
            elif kind is float and type(value) is int:
                out[column] = float(value)
            else:  # bool for an integer, str for a number, a type we do not map: the database decides, not us
                return None
        return out

    def _plan(self, columns: tuple[str, ...]) -> list[tuple[str, type | None, int]]:
        """For :meth:`row`, per ``INSERT`` shape (a writer gives a few): each of the table's columns, in order,
        with its type and where the ``INSERT`` gives it (-1: left out, so NULL); empty when no row is certain
        (a column unknown, or one left out that is not NULL when omitted)."""
        where = {column: at for at, column in enumerate(columns)}
        if not self.columns or not where.keys() <= self.columns.keys() or len(where) != len(columns):
            return []
        plan = []
        for column, (kind, null_when_omitted) in self.columns.items():
            at = where.get(column, -1)
            if at < 0 and not null_when_omitted:
                return []
            plan.append((column, kind, at))
        return plan


LAYOUT = ("SELECT column_name, data_type, column_default IS NULL AND is_nullable = 'YES' AND is_generated = 'NEVER' "
          "AND domain_name IS NULL AS null_when_omitted FROM information_schema.columns "
          "WHERE table_schema = current_schema() AND table_name = 'leases' ORDER BY ordinal_position; "
          "SELECT current_setting('server_encoding') AS server_encoding")


def _changed(sql: str, params: tuple[Any, ...], row: Row) -> Row | None:
    """``row`` as a one-row ``UPDATE … SET a = ?, … WHERE id = ?`` of ``leases`` leaves it (None when its SQL has
    another shape). A whole number given for a DOUBLE PRECISION column is kept as a float, as the database would
    answer it."""
    columns = _columns(sql, _LEASE_UPDATE)
    if columns is None or len(columns) != len(params) - 1 or not set(columns) <= row.keys():
        return None
    out = dict(row)
    for column, value in zip(columns, params, strict=False):
        out[column] = float(value) if column in _LEASE_FLOATS and type(value) is int else value
    return out


_LEASE_UPDATE = r"UPDATE leases SET ((?:[a-z_]+ = \?, )*[a-z_]+ = \?) WHERE id = \?"
_LEASE_INSERT = r"INSERT INTO leases \(((?:[a-z_]+, )*[a-z_]+)\) VALUES \(\?(?:, \?)*\)"


@lru_cache(maxsize=4096)
def _columns(sql: str, pattern: str) -> tuple[str, ...] | None:
    """The columns ``sql`` names, when it has the shape of ``pattern`` (:data:`_LEASE_UPDATE`, :data:`_LEASE_INSERT`);
    cached, as :func:`effect` is: the writer sees the same few texts for every unit."""
    found = re.fullmatch(pattern, " ".join(sql.split()))
    return None if found is None else tuple(c.split(" = ")[0] for c in found.group(1).split(", "))


def _add_by_fence(rows: list[Row], row: Row) -> None:
    """Put ``row`` in ``rows`` (oldest grant first) where its fence goes: last, as a new grant's fence is the
    highest yet."""
    at = len(rows)
    while at and rows[at - 1]["fence"] > row["fence"]:
        at -= 1
    rows.insert(at, row)


class RowsAhead:
    """The rows read ahead for one batch, by table and by the key each unit named, and the scans (empty between
    batches)."""

    __slots__ = ("rows", "spellings", "scans", "places", "held", "due_known", "due_at", "layout", "writes")

    def __init__(self, layout: Layout | None = None) -> None:
        self.rows: dict[str, dict[str, Row | None]] = {}
        # table -> folded key -> the keys read under it: a write finds its rows by one lookup, not by folding
        # every key read (a batch of n units writing n rows read ahead would fold n² keys). Keys are never added
        # after the read, so an entry whose key has left ``rows`` is only skipped.
        self.spellings: dict[str, dict[str, list[str]]] = {}
        self.scans: dict[Scan, tuple[list[Row], list[Row]]] = {}  # filed, beneath; each oldest grant first
        # ("at", project, scope) and ("top", project, beneath) -> the scans read there: which scans a new lease may
        # join, found from its own scope (:meth:`_joining`) instead of by testing every scan (n² per batch).
        self.places: dict[tuple[str, Any, Any], list[Scan]] = {}
        self.held: set[str] = set()  # the id of every lease a scan holds (and some it held): updates of others skip
        self.due_known = False
        self.due_at: float | None = None
        self.layout = layout  # the leases table's (None: an INSERT of an active lease drops the scans it joins)
        # Writes followed so far (ever increasing): a unit that fails having followed none left every row as it
        # was, so what was read ahead stays current for the units after it (PostgresExecutor: ROLLBACK TO).
        self.writes = 0

    def load(self, ahead: Ahead, answers: dict[str, Sequence[Row]]) -> None:
        """Keep the answers of :func:`query`'s reads by name: each key's row (None when there is none under it),
        and each scan whose rows all came back."""
        for table, rows in answers.items():
            if table not in _BY_NAME:
                continue
            kept: dict[str, Row | None] = {}
            for row in rows:
                key = row.pop(KEY_COLUMN)
                kept[key] = None if all(v is None for v in row.values()) else row
            self.rows[table] = kept
            fold = _BY_NAME[table].fold
            spellings: dict[str, list[str]] = {}
            for key in kept:
                spellings.setdefault(fold(key), []).append(key)
            self.spellings[table] = spellings
        if "due" not in answers:
            return
        self.due_known, self.due_at = True, answers["due"][0]["due_at"]
        filed = answers["filed"]
        if len(filed) > _SCAN_ROWS:
            return
        below: dict[str, list[Row]] = {}
        for row in answers.get("beneath", ()):
            below.setdefault(row.pop(KEY_COLUMN), []).append(row)
        for n, scan in enumerate(scan_list(ahead)):
            under = [r for r in below.get(str(n), []) if _beneath(scan, r)]
            if len(under) <= _SCAN_ROWS:
                self.scans[scan] = ([r for r in filed if _filed_in(scan, r)], under)
                for scope in scan.scopes:
                    self.places.setdefault(("at", scan.project_key, scope), []).append(scan)
                if scan.beneath is not None:
                    self.places.setdefault(("top", scan.project_key, scan.beneath), []).append(scan)
        self.held = {r["id"] for lists in self.scans.values() for rows in lists for r in rows}

    def get(self, table: str, key: str) -> tuple[bool, Row | None]:
        """``(True, row or None)`` when ``key`` was read ahead and is current, else ``(False, None)``."""
        rows = self.rows.get(table)
        if rows is not None and key in rows:
            return True, rows[key]
        return False, None

    def scanned(self, scan: Scan) -> Scanned | None:
        """The rows of ``scan`` when read ahead and current (copies), else None."""
        kept = self.scans.get(scan)
        if kept is None:
            return None
        filed, beneath = kept
        return Scanned([dict(r) for r in filed], [dict(r) for r in beneath], self.due_known, self.due_at)

    def wrote(self, sql: str, params: tuple[Any, ...]) -> None:
        """Follow a statement the batch gives (before it runs; see the module docstring)."""
        if not self.rows and not self.scans and not self.due_known:
            return
        for table, kind in effect(sql):
            self.writes += 1
            if table == "leases":
                self._follow_scans(sql, params, kind)
            rows = self.rows.get(table)
            if rows is None:
                continue
            if kind == _OTHER:
                del self.rows[table]
            elif kind == _ADDS:
                for key in [k for k, row in rows.items() if row is None]:
                    del rows[key]
            else:  # one row, by the key in its last parameter (ACT, a charge: its first)
                written = _BY_NAME[table].fold(str(params[0] if kind in (ACT, _CHARGE) else params[-1]))
                for key in self.spellings[table].get(written, ()):
                    if key not in rows:
                        continue
                    row = rows[key]
                    if kind == _CHARGE:  # the row it leaves is known whether there was one or not
                        rows[key] = quota.charged(row, int(params[1]), int(params[2]))
                    elif kind == ACT and row is not None:
                        rows[key] = acted(row, float(params[2]))
                    elif table == "leases" and row is not None and (changed := self._follow(sql, params, row)):
                        rows[key] = changed
                    else:
                        del rows[key]

    def _follow_scans(self, sql: str, params: tuple[Any, ...], kind: str) -> None:
        """Follow a write to ``leases`` in the scans and the earliest expiry (see the module docstring)."""
        if kind == _ADDS:
            columns = _columns(sql, _LEASE_INSERT)
            row = None if columns is None or len(columns) != len(params) else dict(zip(columns, params, strict=True))
            if row is None or "state" not in row:
                return self._forget_scans()
            if row["state"] == "active":
                self._lower_due(row.get("expires_at"))
                if self.layout is not None and not self.layout.exact(row.values()):  # which scans it joins is unsure
                    return self._forget_scans()
                joined = [s for s in self._joining(row) if _filed_in(s, row) or _beneath(s, row)]
                if not joined:  # (a claim's new lease, filed at its own path, most often joins no other's scan)
                    return None
                assert columns is not None
                stored = self.layout.row(columns, params) if self.layout is not None else None
                if stored is not None and type(stored.get("fence")) is not int:  # placed by its fence
                    stored = None
                for scan in joined:
                    if stored is None:
                        del self.scans[scan]
                        continue
                    for rows, joins in zip(self.scans[scan], (_filed_in(scan, row), _beneath(scan, row)),
                                           strict=True):
                        if joins:
                            _add_by_fence(rows, stored)
                    self.held.add(stored["id"])
            return None
        if kind == _ONE_ROW:
            columns = _columns(sql, _LEASE_UPDATE) or ()
            changes = dict(zip(columns, params, strict=False))
            if _MOVES & changes.keys() or changes.get("state", "") == "active":
                return self._forget_scans()
            if "expires_at" in changes:
                self._lower_due(changes["expires_at"])
            lease_id = params[-1]
            if lease_id not in self.held:
                return None
            after: dict[int, Row | None] = {}  # by the row object read (scans share them): the row now
            for scan, lists in list(self.scans.items()):
                for rows in lists:
                    for n, held in enumerate(rows):
                        if held["id"] != lease_id:
                            continue
                        if id(held) not in after:
                            after[id(held)] = self._follow(sql, params, held)
                        now = after[id(held)]
                        if now is None:  # not a shape we can follow: asked again
                            self.scans.pop(scan, None)
                        elif now["state"] == "active":
                            rows[n] = now
                        else:  # ended: no scan holds it now
                            del rows[n]
                        break
            return None
        return self._forget_scans()

    def _joining(self, row: Row) -> list[Scan]:
        """The scans a new active lease ``row`` may join, in their order: a superset of those it is filed in
        (:func:`_filed_in`: at one of their scopes, or at none) or beneath (:func:`_beneath`: under their top,
        which is then one of its scope's prefixes ending before a ``/``, or ``""``)."""
        project, scope = row.get("project_key"), row.get("scope")
        if scope is None:  # filed in every scan of its project
            return [s for s in self.scans if s.project_key == project]
        if type(scope) is not str:
            return list(self.scans)
        places = [("at", project, scope), ("top", project, "")]
        places += [("top", project, scope[:i]) for i, c in enumerate(scope) if c == "/"]
        found = [s for place in places for s in self.places.get(place, ())]
        if len(found) < 2:  # most often its own claim's scan alone: no order to restore (a walk of every scan)
            return found
        unique = set(found)
        return [s for s in self.scans if s in unique]

    def _follow(self, sql: str, params: tuple[Any, ...], row: Row) -> Row | None:
        """:func:`_changed`, or None when the database may store a text it sets otherwise (see :class:`Layout`)."""
        out = _changed(sql, params, row)
        return out if out is None or self.layout is None or self.layout.exact(params) else None

    def _lower_due(self, expires_at: Any) -> None:
        if expires_at is not None and self.due_known:
            self.due_at = expires_at if self.due_at is None else min(self.due_at, expires_at)

    def _forget_scans(self) -> None:
        self.scans, self.places, self.held = {}, {}, set()
        self.due_known, self.due_at = False, None

    def clear(self) -> None:
        """Forget every row (a rollback, the batch's end)."""
        self.rows, self.spellings = {}, {}
        self._forget_scans()
