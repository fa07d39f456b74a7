"""Named, plain-SQL schema migrations, each applied in its own transaction.

Migrations live in ``migrations/<backend>/NNNN_name.sql``. The table
``schema_migrations`` records which ran. ``coord serve`` applies whatever is
missing at start (pattern from sqlite-utils' migrations: plain SQL, named,
transactional).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources


def migration_scripts(backend: str) -> list[tuple[str, str]]:
    """``(name, sql)`` pairs for ``backend`` ("sqlite" or "postgres"), in name order."""
    folder = resources.files("coordhub.store") / "migrations" / backend
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(n.removesuffix(".sql"), (folder / n).read_text(encoding="utf-8")) for n in names]


def pending(applied: set[str], backend: str) -> list[tuple[str, str]]:
    """The migrations of ``backend`` whose names are not in ``applied``, in order."""
    return [(name, sql) for name, sql in migration_scripts(backend) if name not in applied]


def apply_all(
    backend: str,
    applied: Callable[[], set[str]],
    run_in_transaction: Callable[[str, str], None],
) -> list[str]:
    """Apply every pending migration; return the names applied (empty when up to date).

    ``applied()`` reads the names already recorded; ``run_in_transaction(name,
    sql)`` must execute ``sql`` and record ``name`` in one transaction, so a
    failing migration leaves the schema as it was.
    """
    done = []
    for name, sql in pending(applied(), backend):
        run_in_transaction(name, sql)
        done.append(name)
    return done
