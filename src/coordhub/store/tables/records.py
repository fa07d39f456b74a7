"""Todos, workflows, work items and components: plain records keyed by id."""

from __future__ import annotations

from typing import Any

from coordhub.store.base import Row
from coordhub.store.tables.base import Table


def _where(filters: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """`` WHERE a = ? AND b = ?`` for the filters that are not None."""
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())


Key = tuple[tuple[str, type, bool], ...]  # a list's order: (column, Python type, descending) per column


def _order(key: Key) -> str:
    return ", ".join(f"{c} DESC" if desc else c for c, _, desc in key)


def _after(key: Key, values: tuple[Any, ...] | None) -> tuple[str, tuple[Any, ...]]:
    """``(a > ?) OR (a = ? AND b > ?) OR …``: the rows after ``values`` in the order ``key`` (any directions);
    ``("", ())`` for None."""
    if values is None:
        return "", ()
    parts: list[str] = []
    params: list[Any] = []
    for i, (column, _, desc) in enumerate(key):
        parts.append(" AND ".join([*(f"{c} = ?" for c, _, _ in key[:i]), f"{column} {'<' if desc else '>'} ?"]))
        params += values[:i + 1]
    return "(" + " OR ".join(f"({p})" for p in parts) + ")", tuple(params)


def _find(table: str, key: Key, limit: int, after: tuple[Any, ...] | None,
          filters: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    where, params = _where(filters)
    later, more = _after(key, after)
    if later:
        where = f"{where} AND {later}" if where else f" WHERE {later}"
    return f"SELECT * FROM {table}{where} ORDER BY {_order(key)} LIMIT ?", (*params, *more, limit)


class Records(Table):
    """A table whose rows have a text primary key ``id``; ``name`` is the table, ``key`` the order of its lists."""

    name = ""
    key: Key = (("created_at", float, False), ("id", str, False))

    def add(self, row: Row) -> None:
        """Insert a row."""
        self.insert(self.name, row)

    def get(self, record_id: str) -> Row | None:
        """The row with this id, or None."""
        return self.ex.one(f"SELECT * FROM {self.name} WHERE id = ?", (record_id,))

    def change(self, record_id: str, changes: Row) -> None:
        """Update columns of one row."""
        self.update(self.name, "id", record_id, changes)

    def find(self, limit: int = 1000, after: tuple[Any, ...] | None = None, **filters: Any) -> list[Row]:
        """At most ``limit`` rows whose columns equal every non-None filter, in the order ``key``, after the row
        whose ``key`` columns hold ``after`` (None: from the first); [] when none."""
        return self.ex.all(*_find(self.name, self.key, limit, after, filters))


class Todos(Records):
    """The ``todos`` table; its lists are oldest first (``key``) or newest first (:attr:`newest_key`)."""

    name = "todos"
    newest_key: Key = (("created_at", float, True), ("id", str, True))

    def find_newest(self, limit: int = 1000, after: tuple[Any, ...] | None = None, **filters: Any) -> list[Row]:
        """As :meth:`Records.find`, newest first (the order :attr:`newest_key`); [] when none."""
        return self.ex.all(*_find(self.name, self.newest_key, limit, after, filters))


class Workflows(Records):
    """The ``workflows`` table."""

    name = "workflows"

    def in_states(self, states: tuple[str, ...], limit: int = 1000, project_key: str | None = None,
                  after: tuple[Any, ...] | None = None) -> list[Row]:
        """At most ``limit`` workflows whose status is one of ``states`` (and of ``project_key`` unless None),
        oldest first, after the one whose ``key`` columns hold ``after`` (None: from the first); [] when none."""
        marks = ", ".join("?" * len(states))
        where, params = _where({"project_key": project_key})
        where = f"{where} AND" if where else " WHERE"
        later, later_params = _after(self.key, after)
        if later:
            where = f"{where} {later} AND"
        return self.ex.all(f"SELECT * FROM workflows{where} status IN ({marks}) ORDER BY {_order(self.key)} LIMIT ?",
                           (*params, *later_params, *states, limit))


class WorkItems(Records):
    """The ``work_items`` table."""

    name = "work_items"
    key: Key = (("priority", int, True), ("created_at", float, False), ("id", str, False))


class Components(Table):
    """The ``components`` table, keyed by (project_key, component); listed most recently updated first."""

    key: Key = (("updated_at", float, True), ("project_key", str, True), ("component", str, True))

    def upsert(self, row: Row) -> None:
        """Insert or replace the state of one component (``created_at`` kept on update)."""
        cols = ", ".join(row)
        marks = ", ".join("?" * len(row))
        sets = ", ".join(f"{c} = excluded.{c}" for c in row if c not in ("project_key", "component", "created_at"))
        self.ex.execute(
            f"INSERT INTO components ({cols}) VALUES ({marks}) "
            f"ON CONFLICT (project_key, component) DO UPDATE SET {sets}",
            tuple(row.values()),
        )

    def get(self, project_key: str, component: str) -> Row | None:
        """One component's row, or None."""
        return self.ex.one("SELECT * FROM components WHERE project_key = ? AND component = ?",
                           (project_key, component))

    def find(self, project_key: str | None = None, limit: int = 1000,
             after: tuple[Any, ...] | None = None) -> list[Row]:
        """At most ``limit`` components, most recently updated first (the order ``key``), optionally of one
        project, after the one whose ``key`` columns hold ``after`` (None: from the first); [] when none."""
        return self.ex.all(*_find("components", self.key, limit, after, {"project_key": project_key}))
