"""The orchestrator's tables: its one state row, worker hosts, assignments, their attempts and relayed logs."""

from __future__ import annotations

import builtins
import json

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

ACTIVE = ("dispatched", "running")  # states that hold a worker slot
#: the two spellings the store's SQL shares with the core, kept here once (the store cannot import the core):
#: the lease a dispatch takes on issue ``<n>`` of ``<repo>`` is the NAME ``issue:<repo>#<n>`` of project ``<repo>``
#: (:func:`issue_lease_name`), and assignment ``<id>``'s worker acts as ``<machine>/worker-<id>``
ISSUE_LEASE_HEAD, ISSUE_LEASE_SEP = "issue:", "#"
WORKER_INFIX = "/worker-"


def issue_lease_name(repo: str, issue: int) -> str:
    """The NAME of issue ``issue`` of ``repo``'s lease (project ``repo``): ``issue:<repo>#<issue>``."""
    return f"{ISSUE_LEASE_HEAD}{repo}{ISSUE_LEASE_SEP}{issue}"


def issue_lease_number(project: str, name: str) -> int | None:
    """The issue number of NAME ``name`` of project ``project`` if it is that project's issue lease
    (:func:`issue_lease_name`), spelled as SQL spells the integer column (decimal digits, no sign, no leading
    zero: any other spelling matches no assignment row); None otherwise."""
    head = f"{ISSUE_LEASE_HEAD}{project}{ISSUE_LEASE_SEP}"
    number = name[len(head):] if name.startswith(head) else ""
    return int(number) if number.isascii() and number.isdigit() and str(int(number)) == number else None


def _issue_scope_sql(table: str) -> str:
    """SQL for the scope of the issue lease of ``table``'s assignment row (:func:`issue_lease_name`)."""
    return f"'{ISSUE_LEASE_HEAD}' || {table}.repo || '{ISSUE_LEASE_SEP}' || {table}.issue"


# states of the one live assignment an issue may have (index assignments_live_issue), spelled as that index is
LIVE_SQL = "('queued', 'dispatched', 'running', 'stuck', 'needs_input')"
#: ``assignments.held_until`` of an issue lease that never expires (one past any time a lease can end)
HELD_FOREVER = 1e300
# the latest end of the leases holding the assignment row of an UPDATE back from every host (refresh_held);
# the same leases, and the same spelling of their scope, as first_runnable's probe; migration 0032 has its copy
_HELD_UNTIL = ("(SELECT MAX(COALESCE(l.expires_at, ?)) FROM leases l WHERE l.project_key = assignments.repo "
               "AND l.state = 'active' AND l.kind = 'name' "
               f"AND l.scope = {_issue_scope_sql('assignments')} "
               f"AND l.session_id NOT LIKE '%{WORKER_INFIX}' || assignments.id)")


#: the assignment columns a list reads: every one but ``briefing`` (up to 64 KiB), whose size in UTF-8 bytes, all a
#: list shows of it, is the column ``briefing_bytes`` (migration 0033); a whole row is read by ``get`` and the
#: queries that dispatch, change or review an assignment. Kept equal to the table's columns less the briefing by
#: tests/orchestrator/test_list_columns.py.
LISTED = ("id, seq, state, attempt, repo, issue, title, labels, machine, avoid_machine, ran_on, requires, model, "
          "model_source, briefing_bytes, files_likely, branch, worktree, claude_session, resume_session, guidance, "
          "reason, cost_usd, total_cost_usd, turns, last_tool, last_file, progress, status_line, result, pushed, "
          "wip_commit, worker_session, lease_id, fence, host_incarnation, budget_usd, wall_clock_seconds, not_before, "
          "created_by, created_at, queued_at, dispatched_at, started_at, ended_at, updated_at, stage, stage_at, "
          "stage_reason, fix_round, fix_stage, changed_files, freshness, freshness_notes, held_until")


def _listed(alias: str) -> str:
    """:data:`LISTED` with each column qualified by the table's ``alias``."""
    return ", ".join(f"{alias}.{c.strip()}" for c in LISTED.split(","))


# repos per statement of first_runnable (three walks each) and next_not_before (two): SQLite refuses a compound
# SELECT of more than 500 terms (SQLITE_MAX_COMPOUND_SELECT), which a host serving 167 repos passed (it may serve
# 200), so each of its dispatches failed; more repos take more statements, each still one index walk per term
REPOS_PER_STATEMENT = 50


def _groups(repos: list[str]) -> list[list[str]]:
    """``repos`` in runs of at most :data:`REPOS_PER_STATEMENT`, in order."""
    return [repos[i:i + REPOS_PER_STATEMENT] for i in range(0, len(repos), REPOS_PER_STATEMENT)]


def _union(parts: list[str]) -> str:
    """The rows of every query of ``parts`` (each a whole ``SELECT``, its own ``ORDER BY`` and ``LIMIT`` kept), as
    one table expression for a ``FROM`` (each in a subquery: a compound takes no ``ORDER BY`` of its members)."""
    return "(" + " UNION ALL ".join(f"SELECT * FROM ({p}) AS w{i}" for i, p in enumerate(parts)) + ") AS u"


class OrchestratorState(Table):
    """The ``orchestrator`` table: one row (id 1) with the active config and fleet-wide dispatch state."""

    EMPTY: Row = {"id": 1, "config": None, "config_version": 0, "config_applied_at": None,
                  "config_applied_by": None, "last_dispatch_at": None, "paused_until": None, "pause_reason": None,
                  "session_since": None, "round_completed_at": None}

    def get(self) -> Row:
        """The row; its empty form when there is none (migration 0010 makes it, a wiped database may not have it)."""
        row = self.ex.one("SELECT * FROM orchestrator WHERE id = 1")
        return row if row is not None else dict(self.EMPTY)

    def set(self, changes: Row) -> None:
        """Update columns of the row (creating it first if it is missing)."""
        if not self.update("orchestrator", "id", 1, changes):
            self.insert("orchestrator", {**self.EMPTY, **changes})


class Hosts(Table):
    """The ``hosts`` table: one row per machine whose agent registered."""

    def get(self, machine: str) -> Row | None:
        """The host of ``machine`` (as spelled in the config), or None if it never registered."""
        return self.ex.one("SELECT * FROM hosts WHERE machine = ?", (machine,))

    def all(self) -> list[Row]:
        """Every host, by machine name."""
        return self.ex.all("SELECT * FROM hosts ORDER BY machine")

    def put(self, row: Row) -> None:
        """Insert or replace a host's row (a register)."""
        self.ex.execute("DELETE FROM hosts WHERE machine = ?", (row["machine"],))
        self.insert("hosts", row)

    def set(self, machine: str, changes: Row) -> None:
        """Update columns of a host's row."""
        self.update("hosts", "machine", machine, changes)


class Assignments(Table):
    """The ``assignments`` table."""

    def next_seq(self) -> int:
        """Take the next queue position (strictly increasing, from the ``counters`` table)."""
        return self.ex.next_value("assignment")

    def add(self, row: Row) -> None:
        """Insert a new assignment (its ``held_until`` recorded: its issue's lease may be held already)."""
        self.insert("assignments", row)
        self.refresh_held(row["repo"], row["issue"])

    def get(self, assignment_id: str) -> Row | None:
        """The assignment with this id, or None."""
        return self.ex.one("SELECT * FROM assignments WHERE id = ?", (assignment_id,))

    def set(self, assignment_id: str, changes: Row) -> None:
        """Update columns of an assignment."""
        self.update("assignments", "id", assignment_id, changes)

    def live_for_issue(self, repo: str, issue: int) -> Row | None:
        """The live (queued, dispatched, running, stuck, needs_input) assignment of an issue, or None."""
        return self.ex.one("SELECT * FROM assignments WHERE repo = ? AND issue = ? AND state IN "
                           "('queued', 'dispatched', 'running', 'stuck', 'needs_input')", (repo, issue))

    def queue_head(self, limit: int, machine: str | None = None) -> list[Row]:
        """The first ``limit`` queued assignments (with ``machine``: those pinned to it or to any), oldest first,
        as lists read them (:data:`LISTED`: no briefing).

        Each row carries ``position``, its place in the whole queue from 1
        (counted on the queue's index, not by reading the rows). Empty when
        nothing is queued.
        """
        rank = "(SELECT COUNT(*) FROM assignments q WHERE q.state = 'queued' AND q.seq <= a.seq) AS position"
        if machine is None:
            rows = self.ex.all(f"SELECT {LISTED} FROM assignments WHERE state = 'queued' ORDER BY seq LIMIT ?",
                               (limit,))
            return [{**r, "position": i + 1} for i, r in enumerate(rows)]
        return self.ex.all(f"SELECT {_listed('a')}, {rank} FROM assignments a WHERE a.state = 'queued' "
                           "AND (a.machine IS NULL OR a.machine = ?) ORDER BY a.seq LIMIT ?", (machine, limit))

    def first_runnable(self, machine: str, repos: list[str], capabilities: list[str], now: float,
                       elsewhere: list[tuple[list[str], list[str]]]) -> Row | None:
        """The oldest queued assignment a host of ``machine`` may run now (its whole row), or None.

        Oldest by ``seq``; of those pinned to ``machine`` or to any, of one of
        ``repos``, past their backoff (``not_before`` ≤ ``now``), whose
        ``requires`` are all among ``capabilities``; never one that avoids
        ``machine`` (a retry's "another machine when possible", seed 003)
        while a host of ``elsewhere`` could run it (each a host's repos and
        capabilities, the caller's list of the other online hosts); never one
        whose issue lease another session holds: a live lease of the
        assignment's repo on the NAME ``issue:<repo>#<issue>``
        (:func:`issue_lease_name`), held by a session other
        than the attempt's worker ``<machine>/worker-<id>``
        (``coordhub.core.assignments.worker_session``). A NAME overlaps only
        the same NAME and is filed under its own text as its scope
        (``coordhub.core.leases``), so that is one probe of the live-lease
        index ``leases_active_by_scope``, the same rows ``leasequeries.conflicts``
        reads. None when nothing qualifies (or ``repos`` is empty).

        One statement of three index walks per repo of ``repos`` (migration
        0032; one per :data:`REPOS_PER_STATEMENT` repos), each until a row qualifies, so no number of rows that do not
        stands in front of one that does, and none of another repo, still in
        its backoff, or whose issue lease is held (``held_until``, kept by
        :meth:`refresh_held`) is read: with 10,000 of either kind one walk of
        the whole queue read every one. The walks: no backoff and no lease,
        oldest first (``assignments_ready_by_repo``); backoff ended and no
        lease, by its end (``assignments_backoff_by_repo``); every lease past
        its end, by that end (``assignments_held_by_repo``, leases not yet
        recorded as expired). The last two read each row up to ``now`` as
        their order is not the queue's. The oldest of their answers is the
        oldest of all. Each row read costs one lease-index probe, which alone
        decides (``held_until`` only chooses the index a row is in).
        """
        if not repos:
            return None
        host, params = self._host_may_run(machine, capabilities)
        sql = (f"SELECT a.* FROM assignments a WHERE a.repo = ? AND a.state = 'queued' AND <walk> AND {host} "
               "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.project_key = a.repo AND l.state = 'active' "
               f"AND l.scope = {_issue_scope_sql('a')} AND l.kind = 'name' "
               f"AND (l.expires_at IS NULL OR l.expires_at > ?) AND l.session_id <> ? || '{WORKER_INFIX}' || a.id)")
        avoided, more = not_left_to(machine, elsewhere)
        sql += avoided
        # "+a.seq": sorted after the walk, so the walk is of the index from its start to now, never of the
        # queue's order through the rows still waiting (a unary plus both backends read as the column)
        walks = (("a.not_before IS NULL AND a.held_until IS NULL", (), "a.seq"),
                 ("a.not_before IS NOT NULL AND a.not_before <= ? AND a.held_until IS NULL", (now,), "+a.seq"),
                 ("a.held_until IS NOT NULL AND a.held_until <= ? AND (a.not_before IS NULL OR a.not_before <= ?)",
                  (now, now), "+a.seq"))
        found: Row | None = None
        for group in _groups(repos):
            parts, args = [], []
            for repo in group:
                for walk, walk_args, order in walks:
                    parts.append(sql.replace("<walk>", walk) + f" ORDER BY {order} LIMIT 1")
                    args += [repo, *walk_args, *params, now, machine, *more]
            row = self.ex.one(f"SELECT * FROM {_union(parts)} ORDER BY seq LIMIT 1", tuple(args))
            if row is not None and (found is None or row["seq"] < found["seq"]):
                found = row
        return found

    def next_not_before(self, machine: str, repos: list[str], capabilities: list[str], now: float) -> float | None:
        """The earliest backoff end after ``now`` of the queued assignments a host of ``machine`` may run by
        their own columns (see :meth:`first_runnable`) but for their backoff; None when there is none.

        Whatever their issue lease: two walks per repo (issue lease held or not, migration 0032), each up
        from ``now`` to the first row of this host's; one statement per :data:`REPOS_PER_STATEMENT` repos."""
        if not repos:
            return None
        host, params = self._host_may_run(machine, capabilities)
        ends: list[float] = []
        for group in _groups(repos):
            parts, args = [], []
            for repo in group:
                for held in ("a.held_until IS NULL", "a.held_until IS NOT NULL"):
                    parts.append(f"SELECT a.not_before AS t FROM assignments a WHERE a.repo = ? "
                                 f"AND a.state = 'queued' AND a.not_before IS NOT NULL AND {held} "
                                 f"AND a.not_before > ? AND {host} ORDER BY a.not_before LIMIT 1")
                    args += [repo, now, *params]
            row = self.ex.one(f"SELECT MIN(t) AS t FROM {_union(parts)}", tuple(args))
            if row and row["t"] is not None:
                ends.append(float(row["t"]))
        return min(ends, default=None)

    @staticmethod
    def _host_may_run(machine: str, capabilities: list[str]) -> tuple[str, list[object]]:
        """The condition "a host of ``machine`` with ``capabilities`` may run it" on ``assignments a`` (pinned to
        ``machine`` or to any, ``requires`` among ``capabilities``), with its parameters."""
        subset, caps = requires_within(capabilities)
        return f"(a.machine IS NULL OR a.machine = ?) AND {subset}", [machine, *caps]

    def refresh_held(self, repo: str | None = None, issue: int | None = None) -> None:
        """Record in ``held_until`` of the live assignment of issue ``repo#issue`` (both None: of every live
        assignment) the latest end of the issue's leases that hold it back from every host (deferred).

        Those are the leases :meth:`first_runnable` asks about (still
        marked active, the NAME ``issue:<repo>#<issue>`` of project
        ``repo``) but the ones of the assignment's own workers
        (``*/worker-<id>``), which hold it back from other machines only;
        :data:`HELD_FOREVER` for one that never expires; NULL for none.
        So a row whose ``held_until`` lies after ``now`` is held back from
        every host and the dispatch's walks pass it by. Called in the
        transaction that grants, renews or ends such a lease
        (:meth:`lease_changed`), and when an assignment is queued.
        """
        sql = f"UPDATE assignments SET held_until = {_HELD_UNTIL} WHERE state IN {LIVE_SQL}"
        if repo is None or issue is None:
            self.ex.defer(sql, (HELD_FOREVER,))
        else:
            self.ex.defer(sql + " AND repo = ? AND issue = ?", (HELD_FOREVER, repo, issue))

    def lease_changed(self, lease: Row) -> None:
        """:meth:`refresh_held` for the issue a lease row (granted, renewed or ended in this transaction) names,
        if it is an issue lease (a NAME ``issue:<project>#<n>``); nothing for any other lease."""
        if lease["kind"] != "name" or not isinstance(lease["scope"], str):
            return
        number = issue_lease_number(lease["project_key"], lease["scope"])
        if number is not None:
            self.refresh_held(lease["project_key"], number)

    def active(self, machine: str | None = None) -> list[Row]:
        """Assignments holding a worker slot (dispatched or running), optionally on one machine."""
        if machine is None:
            # "+seq": read on the index of the active ones and sorted, not walked in the order of every
            # assignment ever made (SQLite chose that walk: 10,000 queued ones read at each dispatch)
            return self.ex.all("SELECT * FROM assignments WHERE state IN ('dispatched', 'running') ORDER BY +seq")
        return self.ex.all("SELECT * FROM assignments WHERE state IN ('dispatched', 'running') AND ran_on = ? "
                           "ORDER BY seq", (machine,))

    def active_repos(self) -> builtins.set[str]:
        """The repos of the assignments holding a worker slot (read on the index of the active ones; no row's
        briefing is read: a dispatch asks it at every look)."""
        return {r["repo"] for r in self.ex.all("SELECT DISTINCT repo FROM assignments "
                                               "WHERE state IN ('dispatched', 'running')")}

    def active_by_machine(self) -> dict[str, int]:
        """How many assignments hold a worker slot on each machine that has any (its name → the count)."""
        rows = self.ex.all("SELECT ran_on, COUNT(*) AS n FROM assignments WHERE state IN ('dispatched', 'running') "
                           "GROUP BY ran_on")
        return {r["ran_on"]: int(r["n"]) for r in rows if r["ran_on"] is not None}

    def active_count(self, machine: str | None = None) -> int:
        """How many assignments hold a worker slot, fleet-wide or on one machine."""
        if machine is None:
            row = self.ex.one("SELECT COUNT(*) AS n FROM assignments WHERE state IN ('dispatched', 'running')")
        else:
            row = self.ex.one("SELECT COUNT(*) AS n FROM assignments WHERE state IN ('dispatched', 'running') "
                              "AND ran_on = ?", (machine,))
        return int(row["n"]) if row else 0

    def queued_count(self, machine: str | None = None) -> int:
        """How many assignments wait in the queue (with ``machine``: pinned to it or to any); without a machine
        counted on the queue's index alone, no row is read; 0 when none."""
        if machine is None:
            row = self.ex.one("SELECT COUNT(*) AS n FROM assignments WHERE state = 'queued'")
        else:
            row = self.ex.one("SELECT COUNT(*) AS n FROM assignments WHERE state = 'queued' "
                              "AND (machine IS NULL OR machine = ?)", (machine,))
        return int(row["n"]) if row else 0

    def live_count_of(self, created_by: str, limit: int) -> int:
        """How many assignments ``created_by`` queued are queued, dispatched or running, counted up to ``limit``
        (index ``assignments_live_by_creator``); 0 when none."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM (SELECT 1 FROM assignments WHERE created_by = ? AND state IN "
                          "('queued', 'dispatched', 'running') LIMIT ?) AS live", (created_by, limit))
        return int(row["n"]) if row else 0

    def on_machine(self, machine: str, states: tuple[str, ...]) -> list[Row]:
        """Assignments whose current or last attempt ran on ``machine``, in ``states``."""
        marks = ", ".join("?" * len(states))
        return self.ex.all(f"SELECT * FROM assignments WHERE ran_on = ? AND state IN ({marks}) ORDER BY seq",
                           (machine, *states))

    def find(self, states: tuple[str, ...] | None = None, machine: str | None = None, repo: str | None = None,
             limit: int = 200) -> list[Row]:
        """Assignments filtered by state, machine (asked for or ran on) and repo; queue order, newest first; as
        lists read them (:data:`LISTED`: no briefing)."""
        sql, params = f"SELECT {LISTED} FROM assignments WHERE 1 = 1", []
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params += list(states)
        if machine is not None:
            sql += " AND (ran_on = ? OR machine = ?)"
            params += [machine, machine]
        if repo is not None:
            sql += " AND repo = ?"
            params.append(repo)
        return self.ex.all(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit))


    def in_stage(self, stage: str, repo: str | None = None, state: str | None = None) -> list[Row]:
        """Assignments in pipeline ``stage`` (optionally of one repo, or in one ``state``), the earliest to enter
        it first; empty when none.

        A ``state`` is tested before a row's briefing is read, so the rows
        in other states (every queued one is in stage ``work``) are never
        loaded.
        """
        sql, params = "SELECT * FROM assignments WHERE stage = ?", [stage]
        if repo is not None:
            sql += " AND repo = ?"
            params.append(repo)
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return self.ex.all(sql + " ORDER BY stage_at, seq", tuple(params))

    def updated_since(self, since: float) -> list[Row]:
        """Assignments changed at or after ``since``, in queue order, with the columns a session summary counts
        (``id, repo, issue, branch, state, stage, fix_round``): not the lists' long ones (``files_likely`` and
        ``labels`` alone hold up to 26 KB a row)."""
        return self.ex.all("SELECT id, repo, issue, branch, state, stage, fix_round FROM assignments "
                           "WHERE updated_at >= ? ORDER BY seq", (since,))

    def any_updated_since(self, since: float) -> bool:
        """Whether any assignment changed at or after ``since`` (one index probe)."""
        return self.ex.one("SELECT 1 AS x FROM assignments WHERE updated_at >= ? LIMIT 1", (since,)) is not None


class Attempts(Table):
    """The ``assignment_attempts`` table: one row per dispatched attempt."""

    def add(self, row: Row) -> None:
        """Record a new attempt (at dispatch)."""
        self.insert("assignment_attempts", row)

    def set(self, assignment_id: str, attempt: int, changes: Row) -> None:
        """Update columns of one attempt."""
        sets = ", ".join(f"{c} = ?" for c in changes)
        self.ex.execute(f"UPDATE assignment_attempts SET {sets} WHERE assignment_id = ? AND attempt = ?",
                        (*changes.values(), assignment_id, attempt))

    def of(self, assignment_id: str) -> list[Row]:
        """Every attempt of an assignment, first first."""
        return self.ex.all("SELECT * FROM assignment_attempts WHERE assignment_id = ? ORDER BY attempt",
                           (assignment_id,))

    def total_cost(self, assignment_id: str) -> float:
        """The cost of every attempt of an assignment, in USD."""
        row = self.ex.one("SELECT COALESCE(SUM(cost_usd), 0) AS c FROM assignment_attempts WHERE assignment_id = ?",
                          (assignment_id,))
        return float(row["c"]) if row else 0.0

    def costs(self, since: float) -> list[Row]:
        """``machine``, ``dispatched_at`` and ``cost_usd`` of every attempt dispatched since ``since``."""
        return self.ex.all("SELECT machine, dispatched_at, cost_usd FROM assignment_attempts WHERE dispatched_at >= ?",
                           (since,))

    def since(self, since: float) -> list[Row]:
        """Every attempt dispatched at or after ``since`` (for the session summary)."""
        return self.ex.all("SELECT * FROM assignment_attempts WHERE dispatched_at >= ? ORDER BY dispatched_at",
                           (since,))

    def cost_total(self) -> float:
        """The cost of every attempt ever recorded, in USD."""
        row = self.ex.one("SELECT COALESCE(SUM(cost_usd), 0) AS c FROM assignment_attempts")
        return float(row["c"]) if row else 0.0


class AssignmentLogs(Table):
    """The ``assignment_logs`` table: each assignment's relayed log as chunks at character offsets."""

    def size(self, assignment_id: str) -> int:
        """Characters relayed so far (the end of the newest chunk); 0 when none was."""
        row = self.ex.one("SELECT start, length(text) AS n FROM assignment_logs WHERE assignment_id = ? "
                          "ORDER BY start DESC LIMIT 1", (assignment_id,))
        return int(row["start"]) + int(row["n"]) if row else 0

    def append(self, assignment_id: str, start: int, text: str, now: float) -> None:
        """Store a chunk beginning at character offset ``start``."""
        self.insert("assignment_logs", {"assignment_id": assignment_id, "start": start, "text": text,
                                        "created_at": now})

    def trim(self, assignment_id: str, keep_from: int) -> int:
        """Drop the chunks that end at or before ``keep_from``; return how many."""
        return self.ex.execute("DELETE FROM assignment_logs WHERE assignment_id = ? AND start + length(text) <= ?",
                               (assignment_id, keep_from))

    def read(self, assignment_id: str, offset: int, max_chars: int) -> list[Row]:
        """Chunks holding text at or after ``offset``, oldest first, until about ``max_chars`` are covered."""
        rows = self.ex.all("SELECT start, text FROM assignment_logs WHERE assignment_id = ? "
                           "AND start + length(text) > ? ORDER BY start LIMIT 64", (assignment_id, offset))
        out: list[Row] = []
        total = 0
        for row in rows:
            if out and total + len(row["text"]) > max_chars:
                break
            out.append(row)
            total += len(row["text"])
        return out


def not_left_to(machine: str, elsewhere: list[tuple[list[str], list[str]]], *, row: str = "a",
                pinned: bool = True) -> tuple[str, list[object]]:
    """The condition " AND not (avoiding ``machine`` while a host of ``elsewhere`` could run it)", with its
    parameters; "" when no host of ``elsewhere`` serves a repo.

    ``row`` is the alias of the row whose ``avoid_machine`` and
    ``requires`` decide (``a``, an assignment; a stage run's alias for
    :meth:`~coordhub.store.tables.pipeline.StageRuns.first_runnable`);
    the repo is always ``a.repo``. With ``pinned``, an assignment pinned
    to a machine (``a.machine`` set) passes: it avoids nothing.
    """
    covers: list[str] = []
    params: list[object] = [machine]
    for host_repos, host_caps in elsewhere:
        if host_repos:
            subset, caps = requires_within(host_caps, f"{row}.requires")
            covers.append(f"(a.repo IN ({', '.join('?' * len(host_repos))}) AND {subset})")
            params += [*host_repos, *caps]
    if not covers:
        return "", []
    # spelled NULL-safe: a row with no avoid_machine, or pinned, must pass
    return (f" AND ({row}.avoid_machine IS NULL OR {row}.avoid_machine <> ? "
            f"{'OR a.machine IS NOT NULL ' if pinned else ''}OR NOT ({' OR '.join(covers)}))"), params

def requires_within(capabilities: list[str], column: str = "a.requires") -> tuple[str, list[object]]:
    """The condition "``column`` ⊆ ``capabilities``" (an assignment's or a stage run's ``requires``), with its
    parameters.

    ``requires`` holds the text ``json.dumps`` wrote of a list
    (``["a", "b"]``) of capability names, which have no quote, comma or
    space (``coordhub.core.orchestrator_config``, checked at assign; hosts
    register such names too). So it is a subset of ``capabilities``
    exactly when deleting each capability's JSON string, then the
    ``", "`` separators, leaves ``[]`` — said with ``REPLACE``, which
    both backends have, one per capability (a host registers at most 64).
    """
    expr = column
    for _ in capabilities:
        expr = f"REPLACE({expr}, ?, '')"
    return f"REPLACE({expr}, ', ', '') = '[]'", [json.dumps(c) for c in capabilities]
