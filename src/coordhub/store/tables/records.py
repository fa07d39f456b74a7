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


class Records(Table):
    """A table whose rows have a text primary key ``id``; ``name`` is the table."""

    name = ""
    order = "created_at, id"

    def add(self, row: Row) -> None:
        """Insert a row."""
        self.insert(self.name, row)

    def get(self, record_id: str) -> Row | None:
        """The row with this id, or None."""
        return self.ex.one(f"SELECT * FROM {self.name} WHERE id = ?", (record_id,))

    def change(self, record_id: str, changes: Row) -> None:
        """Update columns of one row."""
        self.update(self.name, "id", record_id, changes)

    def find(self, limit: int = 1000, **filters: Any) -> list[Row]:
        """Rows whose columns equal every non-None filter, in ``order``."""
        where, params = _where(filters)
        return self.ex.all(f"SELECT * FROM {self.name}{where} ORDER BY {self.order} LIMIT ?", (*params, limit))


class Todos(Records):
    """The ``todos`` table."""

    name = "todos"


class Workflows(Records):
    """The ``workflows`` table."""

    name = "workflows"

    def in_states(self, states: tuple[str, ...], limit: int = 1000) -> list[Row]:
        """Workflows whose status is one of ``states``, oldest first."""
        marks = ", ".join("?" * len(states))
        return self.ex.all(f"SELECT * FROM workflows WHERE status IN ({marks}) ORDER BY created_at LIMIT ?",
                           (*states, limit))


class WorkItems(Records):
    """The ``work_items`` table."""

    name = "work_items"
    order = "priority DESC, created_at, id"


class Components(Table):
    """The ``components`` table, keyed by (project_key, component)."""

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

    def find(self, project_key: str | None = None, limit: int = 1000) -> list[Row]:
        """Components, most recently updated first, optionally of one project."""
        where, params = _where({"project_key": project_key})
        return self.ex.all(f"SELECT * FROM components{where} ORDER BY updated_at DESC LIMIT ?", (*params, limit))
