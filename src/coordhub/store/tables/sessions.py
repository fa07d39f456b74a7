"""Sessions the hub has seen, and their broadcast cursors.

A session has one row under any spelling: ``session_key`` (SQL ``lower()`` of
the id; ids are ASCII, so that is full case folding) is unique, and
``session_id`` keeps the first spelling seen.
``known_since`` is when the hub first saw the session itself (a token minted
for it, or it acted); NULL for a session that has only been addressed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from coordhub.store.base import Row, returning
from coordhub.store.tables.base import Table

_ACTED = "session_id, machine, project, paused_at, paused_scope, token_epoch"  # what a write checks (Sessions.act)
# The sender's upsert, which every write runs; ACT returns what it checks, ACT_WRITE is the upsert alone.
ACT_WRITE = ("INSERT INTO sessions (session_id, session_key, first_seen, last_seen, known_since) "
             "VALUES (?, lower(?), ?, ?, ?) ON CONFLICT (session_key) DO UPDATE SET last_seen = "
             "excluded.last_seen, known_since = COALESCE(sessions.known_since, excluded.known_since)")
ACT = returning(ACT_WRITE, _ACTED, f"SELECT {_ACTED} FROM sessions WHERE session_key = lower(?)",
                operator.itemgetter(slice(1, 2)))
# What a recipient's row is read for (Sessions.address): not all 22 columns, each of which the standard
# library's sqlite3 fetches with the interpreter lock released and taken back (issue 15: 3.5 % of a send).
_ADDRESSED = "session_id, known_since, incarnation, last_heartbeat, deregistered_at"
_ADDRESS = f"SELECT {_ADDRESSED} FROM sessions WHERE session_key = lower(?)"
#: The columns of a session's row read ahead on PostgreSQL (:mod:`coordhub.store.pgahead`): what its two readers
#: in a write ask of it, the sender's check (:meth:`Sessions.act_then`) and a recipient's (:meth:`Sessions.address`),
#: and ``last_seen``, which decides whether the sender's upsert is sent (:data:`SEEN_RESOLUTION`); 10 of the
#: table's 22 (issue 15: the rest cost CPU to load and to copy as the batch follows the row). The sender's
#: upsert followed in Python (:func:`acted`) reads ``known_since``, one of the recipient's columns.
READ_AHEAD = tuple(dict.fromkeys(f"{_ACTED}, {_ADDRESSED}, last_seen".split(", ")))
#: Seconds within which a write leaves its sender's ``last_seen`` as it is, where that is known without asking (the
#: row read ahead, PostgreSQL): a session writing many times a second (a burst of claims) updates its row once a
#: second, not once a write (issue 15: the upsert was a third of a lease unit's statements, and each update of a
#: PostgreSQL row leaves a dead version behind it for VACUUM). What reads ``last_seen`` works in minutes and
#: hours (presence, stale takeover, retention); it may be this much behind the sender's latest write.
SEEN_RESOLUTION = 1.0
# What act_then reads first where a read costs no round trip: what the check reads, and what acted() and
# SEEN_RESOLUTION decide by (each column a row holds costs sqlite3 a release and retake of the interpreter lock).
_SEEN = f"SELECT {_ACTED}, known_since, last_seen FROM sessions WHERE session_key = lower(?)"
MAX_CANDIDATES = 256  # known sessions :meth:`Sessions.known_ids` reads at most (difflib costs ~40 µs each)


def acted(row: Row, now: float) -> Row:
    """The row an existing session has after :data:`ACT` at ``now``: what its ``ON CONFLICT`` clause sets.

    Lets a batch's rows read ahead (:mod:`coordhub.store.pgahead`) follow the
    sender's own upsert, which every write runs, without asking the database
    again; ``tests/store/test_rows_ahead.py`` compares it with the row the
    database returns, on both backends.
    """
    return {**row, "last_seen": now, "known_since": now if row["known_since"] is None else row["known_since"]}


class Sessions(Table):
    """The ``sessions`` table."""

    def act(self, session_id: str, now: float) -> Row:
        """Record that the session acted at ``now`` (creating it, known, on first contact); return what a write checks.

        One statement, on every mutation: the row returned holds the stored
        spelling (``session_id``, the first one seen, which may differ from
        the argument in case), the declared ``machine`` and ``project``, the
        pause (``paused_at``, ``paused_scope``; NULL when not paused) and the
        ``token_epoch`` (:meth:`Tokens.revoke <coordhub.store.tables.tokens.Tokens.revoke>`).
        """
        row = self.ex.one(ACT, (session_id, session_id, now, now, now))
        assert row is not None
        return row

    def act_then(self, session_id: str, now: float, check: Callable[[Row], None]) -> Callable[[], None] | None:
        """:meth:`act`, handing the row to ``check`` (``Executor.expect``: on PostgreSQL it travels with the
        unit's next statement, and ``check`` runs before that statement's answer is used).

        When the session's row was read with the batch's ``BEGIN`` and is
        current (PostgreSQL, the unit named its sender: ``Hub.mutate``), what
        the upsert would answer is known: the columns ``check`` reads are the
        ones it leaves as they are (:func:`acted`). ``check`` then runs at once
        and the upsert waits, like any write nobody reads, for a later round
        trip: the batch's ``COMMIT`` need not wait for the checks' answers.
        It is not sent at all when the session is known and its ``last_seen``
        is less than :data:`SEEN_RESOLUTION` behind ``now``. Where a read
        costs no round trip (``Executor.local``: SQLite) the row is read first,
        so that rule holds there too: a send or a claim of a session acting
        several times a second reads its row instead of writing it.

        Returns the upsert when it is the caller's to run, last, once the
        unit's own work has succeeded; None when it has been run or sent. That
        is so on a local store for a known session whose ``last_seen`` is due:
        the upsert would move only ``last_seen``, which what the unit reads
        of its own sender takes as now (:meth:`known_ids`; a stale takeover
        reads another holder's), and run before the unit's checks it would
        make a refused unit one that changed rows, which a SQLite batch's
        first run undoes by running again (``BatchWriter._run_unit``). Left
        to the end, a refusal writes nothing, as a savepoint would have left it.
        """
        params = (session_id, session_id, now, now, now)
        known, row = self.ex.ahead("sessions", session_id)
        if not known and self.ex.local:  # read first: a session seen within the resolution is not written again
            known, row = True, self.ex.one(_SEEN, (session_id,))
        if known and row is not None:
            seen = row["last_seen"]
            if row["known_since"] is not None and seen is not None and seen <= now < seen + SEEN_RESOLUTION:
                check(row)  # the upsert would change nothing the check reads, nor enough of last_seen to write
                return None
            check(acted(row, now))
            if self.ex.local and row["known_since"] is not None:  # only last_seen moves: the unit's last write
                def upsert() -> None:
                    self.ex.execute(ACT_WRITE, params)
                return upsert
            self.ex.defer(ACT_WRITE, params)
            return None

        def checked(rows: list[Row]) -> None:
            check(rows[0])  # the upsert returns its one row

        self.ex.expect(ACT, params, checked)
        return None

    def touch(self, session_id: str, now: float) -> str:
        """:meth:`act`, returning only the stored spelling."""
        return str(self.act(session_id, now)["session_id"])

    def by_key(self, spelling: str) -> Row | None:
        """The whole session row under any spelling of its id, or None if the hub has never seen or addressed it.

        Always asked: a row read ahead holds only :data:`READ_AHEAD`.
        """
        return self.ex.one("SELECT * FROM sessions WHERE session_key = lower(?)", (spelling,))

    def address(self, spelling: str, now: float) -> Row:
        """The row of a session being addressed, created (not known) with this spelling if there is none.

        At least the columns of :data:`_ADDRESSED` (a row read ahead has :data:`READ_AHEAD`'s): what a send
        asks of its recipient (the spelling, whether it is known, its live incarnation).
        """
        row = self.one_ahead("sessions", spelling, _ADDRESS)
        if row is None:
            self.ex.execute("INSERT INTO sessions (session_id, session_key, first_seen, last_seen) "
                            "VALUES (?, lower(?), ?, ?)", (spelling, spelling, now, now))
            row = self.one_ahead("sessions", spelling, _ADDRESS)
        assert row is not None
        return row

    def is_known(self, spelling: str) -> bool:
        """Whether the hub knows the session under any spelling of its id (a token was minted for it, or it
        acted), not merely addressed; from the row read ahead when the unit named it."""
        row = self.one_ahead("sessions", spelling, _ADDRESS)
        return row is not None and row["known_since"] is not None

    def known_ids(self, acting: str | None = None) -> list[str]:
        """Ids of sessions the hub knows (not merely addressed), most recently seen first, at most MAX_CANDIDATES.

        ``acting``: the session whose write is running, counted as seen now, first, whatever its stored
        ``last_seen``: a local store writes that only at the unit's end (:meth:`act_then`).
        """
        rows = self.ex.all("SELECT session_id FROM sessions WHERE known_since IS NOT NULL "
                           "ORDER BY session_key = lower(?) DESC, last_seen DESC LIMIT ?", (acting, MAX_CANDIDATES))
        return [str(r["session_id"]) for r in rows]

    def get(self, session_id: str) -> Row | None:
        """The session row, or None if the hub has never seen it."""
        return self.ex.one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))

    def broadcast_cursor(self, session_id: str) -> int:
        """Seq up to which the session has read every broadcast; 0 for an unknown session."""
        row = self.get(session_id)
        return int(row["broadcast_cursor"]) if row else 0

    def set_broadcast_cursor(self, session_id: str, seq: int) -> None:
        """Move the session's broadcast read cursor (callers only move it forward)."""
        self.ex.execute("UPDATE sessions SET broadcast_cursor = ? WHERE session_id = ?", (seq, session_id))

    def set_cursor(self, session_id: str, column: str, value: int) -> None:
        """Set ``broadcast_shown_cursor`` or ``notify_cursor`` of a session."""
        assert column in ("broadcast_shown_cursor", "notify_cursor")
        self.ex.execute(f"UPDATE sessions SET {column} = ? WHERE session_id = ?", (value, session_id))

    def register(self, session_id: str, now: float, client: str | None, client_session: str | None,
                 cwd: str | None) -> Row:
        """Start the next incarnation of a session (creating it if new); return its row."""
        self.touch(session_id, now)
        self.ex.execute(
            "UPDATE sessions SET incarnation = incarnation + 1, registered_at = ?, last_heartbeat = ?, "
            "deregistered_at = NULL, client = ?, client_session = ?, cwd = ? WHERE session_id = ?",
            (now, now, client, client_session, cwd, session_id))
        row = self.get(session_id)
        assert row is not None
        return row

    def heartbeat(self, session_id: str, now: float) -> None:
        """Record a heartbeat of the current incarnation."""
        self.ex.execute("UPDATE sessions SET last_heartbeat = ? WHERE session_id = ?", (now, session_id))

    def deregister(self, session_id: str, now: float) -> None:
        """Mark the current incarnation ended."""
        self.ex.execute("UPDATE sessions SET deregistered_at = ? WHERE session_id = ?", (now, session_id))

    def registered_page(self, limit: int, after: tuple[Any, ...] | None = None, *, beat_from: float | None = None,
                        beat_before: float | None = None, offline_before: float | None = None) -> list[Row]:
        """At most ``limit`` sessions that ever registered presence, by id, after the id ``after[0]`` (None: from
        the first); [] when none.

        ``beat_from``/``beat_before`` keep the sessions not deregistered whose
        last heartbeat is at ``beat_from`` or later / before ``beat_before``
        (a presence state's window); ``offline_before`` keeps instead those
        deregistered, or whose last heartbeat is before it (offline). The
        database skips the others. Walks the primary key in order: no index
        on ``last_heartbeat``, which would cost every heartbeat a write.
        """
        where: list[str] = ["incarnation > 0"]
        args: list[Any] = []
        if after is not None:
            where.append("session_id > ?")
            args.append(after[0])
        if offline_before is not None:
            where.append("(deregistered_at IS NOT NULL OR last_heartbeat IS NULL OR last_heartbeat < ?)")
            args.append(offline_before)
        if beat_from is not None or beat_before is not None:
            where.append("deregistered_at IS NULL")
        if beat_from is not None:
            where.append("last_heartbeat >= ?")
            args.append(beat_from)
        if beat_before is not None:
            where.append("last_heartbeat < ?")
            args.append(beat_before)
        return self.ex.all(f"SELECT * FROM sessions WHERE {' AND '.join(where)} ORDER BY session_id LIMIT ?",
                           (*args, limit))

    def heartbeating_since(self, since: float) -> list[Row]:
        """Sessions whose last heartbeat (or registration) is at ``since`` or later, by id; [] when none.

        Not indexed: it runs when a halt is lifted, rarely, and an index on
        ``last_heartbeat`` would cost every heartbeat a write.
        """
        return self.ex.all("SELECT * FROM sessions WHERE last_heartbeat >= ? ORDER BY session_id", (since,))

    def paused(self) -> list[Row]:
        """Every paused session, by id; [] when none."""
        return self.ex.all("SELECT * FROM sessions WHERE paused_at IS NOT NULL ORDER BY session_id")

    def pause(self, session_id: str, scope: str, now: float) -> None:
        """Mark a session paused at ``now`` by the lifting of the halt of ``scope`` (an earlier pause is kept)."""
        self.ex.execute("UPDATE sessions SET paused_at = ?, paused_scope = ? WHERE session_id = ? "
                        "AND paused_at IS NULL", (now, scope, session_id))

    def engage(self, session_id: str) -> int:
        """Clear a session's pause; return 1 if it was paused, else 0."""
        return self.ex.execute("UPDATE sessions SET paused_at = NULL, paused_scope = NULL WHERE session_id = ? "
                               "AND paused_at IS NOT NULL", (session_id,))

    def import_presence(self, session_id: str, last_seen: float, client: str, client_session: str | None) -> None:
        """Record a session's presence from another system as one ended incarnation last seen at ``last_seen``.

        Only for a session that never registered on the hub (incarnation 0)
        or whose only incarnation is an earlier import by ``client``.
        """
        self.ex.execute(
            "UPDATE sessions SET incarnation = 1, registered_at = ?, last_heartbeat = ?, deregistered_at = ?, "
            "client = ?, client_session = ? WHERE session_id = ? AND (incarnation = 0 OR (incarnation = 1 "
            "AND client = ?))", (last_seen, last_seen, last_seen, client, client_session, session_id, client))
