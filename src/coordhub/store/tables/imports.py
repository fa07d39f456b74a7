"""Records of what importers wrote, by a key derived from the source (migration 0009)."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table


class Imported(Table):
    """The ``imported`` table: one row per imported record that has no natural key on the hub."""

    def get(self, key: str) -> Row | None:
        """The record imported under ``key``, or None when nothing was."""
        return self.ex.one("SELECT * FROM imported WHERE key = ?", (key,))

    def add(self, key: str, kind: str, ref: str | None, now: float) -> None:
        """Record that ``key`` was imported as ``ref`` (the key must be new: callers check :meth:`get` first)."""
        self.insert("imported", {"key": key, "kind": kind, "ref": ref, "imported_at": now})
