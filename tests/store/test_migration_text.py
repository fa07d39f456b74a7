"""Migration files are ASCII: PostgreSQL converts a statement's text to the database's encoding, so one
character that encoding lacks (``…`` on a LATIN1 database) failed the migration and the hub could not start."""

from __future__ import annotations

from pathlib import Path

import pytest

import coordhub.store

MIGRATIONS = sorted((Path(coordhub.store.__file__).parent / "migrations").glob("*/*.sql"))


@pytest.mark.parametrize("path", MIGRATIONS, ids=[f"{p.parent.name}/{p.name}" for p in MIGRATIONS])
def test_a_migration_is_ascii(path: Path) -> None:
    text = path.read_bytes()
    assert text.isascii(), f"{path.name}: non-ASCII at byte {next(i for i, b in enumerate(text) if b > 127)}"
