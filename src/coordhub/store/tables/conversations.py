"""Conversations, their turns, sessions' conversation addresses and signing keys (issue 9, seed 004).

A turn is addressed to ``<machine>.<project>``; the sessions that declared
that address (``sessions.machine``/``sessions.project``) receive it. Turns
are never updated: a conversation's state is two counters on its row
(``last_sequence``, ``last_release``), so "pending" is an index range
(``sequence > last_release``) rather than a scan of files.
"""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

_TURN = "SELECT t.* FROM turns t "
_IDS_PER_READ = 400  # ids in one IN list (twice in participants_of): within SQLite's oldest limit of 999 parameters


def _chunks(ids: list[str]) -> list[list[str]]:
    """``ids`` in lists of at most :data:`_IDS_PER_READ`."""
    return [ids[i:i + _IDS_PER_READ] for i in range(0, len(ids), _IDS_PER_READ)]


class Conversations(Table):
    """The ``conversations`` and ``turns`` tables."""

    def get(self, conversation_id: str) -> Row | None:
        """The conversation row, or None."""
        return self.ex.one("SELECT * FROM conversations WHERE conversation_id = ?", (conversation_id,))

    def create(self, row: Row) -> None:
        """Insert a new conversation."""
        self.insert("conversations", row)

    def advance(self, conversation_id: str, sequence: int, release: bool, now: float, size: int) -> None:
        """Record an accepted turn of ``sequence`` and ``size`` bytes: the conversation's newest sequence (and, for a
        release, that it releases everything before) and its counters (as :meth:`count_turn`), in one statement."""
        self.ex.execute(
            "UPDATE conversations SET last_sequence = ?, updated_at = ?, turns = turns + 1, bytes = bytes + ?"
            + (", last_release = ?" if release else "") + " WHERE conversation_id = ?",
            (sequence, now, size, sequence, conversation_id) if release else (sequence, now, size, conversation_id))

    def listing(self, limit: int, state: str | None, project: str | None,
                party: tuple[str, str | None] | None = None) -> list[Row]:
        """Conversations, most recently updated first; ``state`` open/released and ``project`` filter.

        ``party`` ``(session, address)``: only those the session opened or its address takes part in, found
        through the indexes on the opener and on an accepted turn's two addresses: the work grows with the
        party's own conversations and turns, not with every conversation stored.
        """
        where: list[str] = []
        args: list[object] = []
        if party is not None:
            where.append("conversation_id IN (SELECT conversation_id FROM conversations WHERE created_by = ? "
                         "UNION SELECT conversation_id FROM turns WHERE decision = 'process' AND from_address = ? "
                         "UNION SELECT conversation_id FROM turns WHERE decision = 'process' AND to_address = ?)")
            args.extend((party[0], party[1] or "", party[1] or ""))
        if state == "open":
            where.append("last_release < last_sequence")
        elif state == "released":
            where.append("last_release = last_sequence")
        if project is not None:
            where.append("project = ?")
            args.append(project)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return self.ex.all(f"SELECT * FROM conversations{clause} ORDER BY updated_at DESC LIMIT ?", (*args, limit))

    def participants(self, conversation_id: str) -> list[str]:
        """Addresses that sent or received an accepted turn of the conversation, sorted."""
        rows = self.ex.all("SELECT from_address AS a FROM turns WHERE conversation_id = ? AND decision = 'process' "
                           "UNION SELECT to_address FROM turns WHERE conversation_id = ? AND decision = 'process'",
                           (conversation_id, conversation_id))
        return sorted(str(r["a"]) for r in rows)

    def participants_of(self, conversation_ids: list[str]) -> dict[str, list[str]]:
        """:meth:`participants` of each of ``conversation_ids`` in one read (a listing renders up to a page of
        them): ``{conversation_id: sorted addresses}``, ``[]`` for one without an accepted turn."""
        found: dict[str, set[str]] = {c: set() for c in conversation_ids}
        for ids in _chunks(conversation_ids):
            marks = ", ".join("?" * len(ids))
            rows = self.ex.all(
                f"SELECT conversation_id, from_address AS a FROM turns WHERE conversation_id IN ({marks}) "
                "AND decision = 'process' "
                f"UNION SELECT conversation_id, to_address FROM turns WHERE conversation_id IN ({marks}) "
                "AND decision = 'process'", (*ids, *ids))
            for r in rows:
                found[str(r["conversation_id"])].add(str(r["a"]))
        return {c: sorted(a) for c, a in found.items()}

    def pending_of(self, conversation_ids: list[str]) -> dict[str, int]:
        """:meth:`pending_in` of each of ``conversation_ids`` (after its own last release) in one read:
        ``{conversation_id: count}``, 0 for one with nothing pending."""
        counts = dict.fromkeys(conversation_ids, 0)
        for ids in _chunks(conversation_ids):
            marks = ", ".join("?" * len(ids))
            rows = self.ex.all(
                "SELECT t.conversation_id, COUNT(*) AS n FROM turns t "
                "JOIN conversations c ON c.conversation_id = t.conversation_id "
                f"WHERE t.conversation_id IN ({marks}) AND t.decision = 'process' AND t.type <> 'release' "
                "AND t.sequence > c.last_release GROUP BY t.conversation_id", tuple(ids))
            counts.update({str(r["conversation_id"]): int(r["n"]) for r in rows})
        return counts

    def takes_part(self, conversation_id: str, address: str) -> bool:
        """Whether ``address`` sent or received an accepted turn of the conversation."""
        return self.ex.one("SELECT 1 AS x FROM turns WHERE conversation_id = ? AND decision = 'process' "
                           "AND (from_address = ? OR to_address = ?) LIMIT 1",
                           (conversation_id, address, address)) is not None

    def pending_in(self, conversation_id: str, last_release: int) -> int:
        """How many accepted non-release turns of the conversation follow its last release (no content read)."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM turns WHERE conversation_id = ? AND decision = 'process' "
                          "AND type <> 'release' AND sequence > ?", (conversation_id, last_release))
        return int(row["n"]) if row else 0

    def at_sequence(self, conversation_id: str, sequence: int) -> Row | None:
        """The accepted turn of the conversation with this sequence, or None."""
        return self.ex.one("SELECT * FROM turns WHERE conversation_id = ? AND sequence = ?",
                           (conversation_id, sequence))

    def last_other_party(self, conversation_id: str, address: str | None) -> str | None:
        """The other address of the newest accepted turn with one besides ``address`` (its sender, else its
        destination), or None."""
        own = address or ""
        row = self.ex.one("SELECT from_address, to_address FROM turns WHERE conversation_id = ? "
                          "AND decision = 'process' AND (from_address <> ? OR to_address <> ?) "
                          "ORDER BY sequence DESC LIMIT 1", (conversation_id, own, own))
        if row is None:
            return None
        return str(row["from_address"] if row["from_address"] != own else row["to_address"])

    def authored(self, conversation_id: str, author: str) -> bool:
        """Whether ``author`` wrote any turn (accepted or refused) under this conversation id."""
        return self.ex.one("SELECT 1 AS x FROM turns WHERE conversation_id = ? AND author = ? LIMIT 1",
                           (conversation_id, author)) is not None

    def page(self, conversation_id: str, author: str, after_id: int, limit: int,
             max_bytes: int, *, only_author: bool = False) -> tuple[list[Row], bool]:
        """Turns of a conversation by id above ``after_id``: the accepted ones and ``author``'s refused ones
        (``only_author``: only ``author``'s own, accepted or not). At most ``limit`` and about ``max_bytes`` of
        text as answered (at least one turn); sizes are read first, so no turn's text is loaded unless it is
        answered. Returns ``(rows, more)``."""
        who = "author = ?" if only_author else "(decision = 'process' OR author = ?)"
        sizes = self.ex.all(
            # a body stored once is answered twice (as itself and in its file): it counts twice
            "SELECT id, COALESCE(size, 0) * (CASE WHEN body_in_content > 0 THEN 2 ELSE 1 END) AS size "
            f"FROM turns WHERE conversation_id = ? AND {who} AND id > ? "
            "ORDER BY id LIMIT ?", (conversation_id, author, after_id, limit + 1))
        more = len(sizes) > limit
        take: list[int] = []
        total = 0
        for r in sizes[:limit]:
            if take and total + int(r["size"]) > max_bytes:
                more = True
                break
            take.append(int(r["id"]))
            total += int(r["size"])
        if not take:
            return [], False
        rows = self.ex.all(f"SELECT * FROM turns WHERE conversation_id = ? AND {who} AND id >= ? AND id <= ? "
                           "ORDER BY id", (conversation_id, author, take[0], take[-1]))
        return rows, more

    def count_turn(self, conversation_id: str, size: int) -> None:
        """Add one stored turn of ``size`` bytes to the conversation's counters (its bounds)."""
        self.ex.execute("UPDATE conversations SET turns = turns + 1, bytes = bytes + ? WHERE conversation_id = ?",
                        (size, conversation_id))

    def add_turn(self, row: Row) -> int:
        """Insert a turn; return its id (increasing in commit order)."""
        return self.insert_returning("turns", row, "id")

    def turn(self, turn_id: int) -> Row | None:
        """One turn, or None."""
        return self.ex.one("SELECT * FROM turns WHERE id = ?", (turn_id,))

    def same_content(self, conversation_id: str, author: str, sha256: str, to_address: str) -> Row | None:
        """The first accepted turn of ``author`` in the conversation with this content hash to ``to_address`` (a
        retry's original), or None; index ``turns_by_content`` (migration 0025)."""
        return self.ex.one("SELECT * FROM turns WHERE conversation_id = ? AND author = ? AND content_sha256 = ? "
                           "AND to_address = ? AND decision = 'process' ORDER BY id LIMIT 1",
                           (conversation_id, author, sha256, to_address))

    def pending_to(self, address: str, limit: int, after_id: int = 0) -> list[Row]:
        """Accepted non-release turns to ``address`` not followed by a release in their conversation, oldest first."""
        return self.ex.all(
            _TURN + "JOIN conversations c ON c.conversation_id = t.conversation_id "
            "WHERE t.to_address = ? AND t.decision = 'process' AND t.id > ? AND t.type <> 'release' "
            "AND t.sequence > c.last_release ORDER BY t.id LIMIT ?", (address, after_id, limit))

    def pending_count(self, address: str, after_id: int, most: int) -> int:
        """How many turns :meth:`pending_to` would give after ``after_id``, counted up to ``most``; no turn text is
        read."""
        row = self.ex.one(
            "SELECT COUNT(*) AS n FROM (SELECT t.id FROM turns t "
            "JOIN conversations c ON c.conversation_id = t.conversation_id "
            "WHERE t.to_address = ? AND t.decision = 'process' AND t.id > ? AND t.type <> 'release' "
            "AND t.sequence > c.last_release LIMIT ?) AS pending", (address, after_id, most))
        return int(row["n"]) if row else 0

    def pending_counts(self, addresses: list[str]) -> list[Row]:
        """``(to_address, pending, newest)`` for each of ``addresses`` that has pending turns."""
        if not addresses:
            return []
        marks = ", ".join("?" * len(addresses))
        return self.ex.all(
            "SELECT t.to_address, COUNT(*) AS pending, MAX(t.id) AS newest FROM turns t "
            "JOIN conversations c ON c.conversation_id = t.conversation_id "
            f"WHERE t.to_address IN ({marks}) AND t.decision = 'process' AND t.type <> 'release' "
            "AND t.sequence > c.last_release GROUP BY t.to_address", tuple(addresses))

    def accepted(self, after_id: int, limit: int) -> list[Row]:
        """Accepted turns to any address with id above ``after_id``, oldest first (an admin's view)."""
        return self.ex.all(_TURN + "WHERE t.decision = 'process' AND t.id > ? ORDER BY t.id LIMIT ?", (after_id, limit))

    def to_machine(self, machine: str, after_id: int, limit: int) -> list[Row]:
        """Accepted turns addressed to any project on ``machine`` with id above ``after_id``, oldest first."""
        return self.ex.all(_TURN + "WHERE t.to_machine = ? AND t.decision = 'process' AND t.id > ? "
                           "ORDER BY t.id LIMIT ?", (machine, after_id, limit))

    # ---- addresses and tools ------------------------------------------------

    def set_profile(self, session_id: str, machine: str | None, project: str | None, tools: str | None, *,
                    restart_shown: bool = False) -> None:
        """Set a session's declared machine, project and tools (JSON array text); ``restart_shown``: move its
        shown-turns cursor back to 0 as well."""
        self.ex.execute("UPDATE sessions SET machine = ?, project = ?, tools = ?"
                        + (", turns_shown = 0" if restart_shown else "") + " WHERE session_id = ?",
                        (machine, project, tools, session_id))

    def addresses(self) -> list[Row]:
        """Every session that declared an address: ``session_id, machine, project, tools`` and presence columns."""
        return self.ex.all("SELECT * FROM sessions WHERE machine IS NOT NULL AND project IS NOT NULL "
                           "ORDER BY machine, project, session_id")

    def at_address(self, machine: str, project: str) -> list[Row]:
        """The sessions that declared ``machine.project``."""
        return self.ex.all("SELECT * FROM sessions WHERE machine = ? AND project = ?", (machine, project))

    def declared(self, machine: str, project: str) -> bool:
        """Whether any session declared ``machine.project`` (one index probe; no row is read)."""
        return self.ex.one("SELECT 1 AS x FROM sessions WHERE machine = ? AND project = ? LIMIT 1",
                           (machine, project)) is not None

    def set_turns_shown(self, session_id: str, turn_id: int) -> None:
        """Move the session's shown-turns cursor."""
        self.ex.execute("UPDATE sessions SET turns_shown = ? WHERE session_id = ?", (turn_id, session_id))


class SigningKeys(Table):
    """The ``signing_keys`` table: OpenPGP public keys sessions registered."""

    def add(self, row: Row) -> bool:
        """Register a key; False when the session already has it."""
        if self.ex.one("SELECT 1 AS x FROM signing_keys WHERE session_id = ? AND fingerprint = ?",
                       (row["session_id"], row["fingerprint"])):
            return False
        self.insert("signing_keys", row)
        return True

    def holder(self, fingerprint: str, other_than: str) -> str | None:
        """A session other than ``other_than`` that registered the key, or None."""
        row = self.ex.one("SELECT session_id FROM signing_keys WHERE fingerprint = ? AND session_id <> ? LIMIT 1",
                          (fingerprint, other_than))
        return str(row["session_id"]) if row else None

    def of(self, session_id: str) -> list[Row]:
        """A session's keys, oldest first."""
        return self.ex.all("SELECT * FROM signing_keys WHERE session_id = ? ORDER BY created_at, fingerprint",
                           (session_id,))

    def delete(self, session_id: str, fingerprint: str) -> int:
        """Remove one of a session's keys; return rows removed."""
        return self.ex.execute("DELETE FROM signing_keys WHERE session_id = ? AND fingerprint = ?",
                               (session_id, fingerprint))

    def count(self, session_id: str) -> int:
        """How many keys a session has."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM signing_keys WHERE session_id = ?", (session_id,))
        return int(row["n"]) if row else 0
