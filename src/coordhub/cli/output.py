"""How the CLI prints: JSON for scripts (``--json``), readable tables and banners for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from coordhub.hooks.inbox import banner
from coordhub.hooks.untrusted import one_line

# No markup, emoji or highlighting: reasons, subjects and todo texts are shown
# exactly as written. When stdout is not a terminal (an agent reading the
# output) tables never wrap, so ids stay whole and copyable.
console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False,
                  width=None if sys.stdout.isatty() else 100_000)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str) -> None:
    """Print rows as a table of ``(key, heading)`` columns, or ``empty`` when there are none.

    Cells are shown with :func:`~coordhub.hooks.untrusted.one_line`: a subject
    or description cannot break the table or send escape sequences to the terminal.
    """
    if not rows:
        console.print(empty)
        return
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for key, heading in columns:
        t.add_column(heading, overflow="fold", no_wrap=key == "id")
    for row in rows:
        t.add_row(*("" if row.get(k) is None else one_line(row.get(k)) for k, _ in columns))
    console.print(t)


def heading(text: str) -> None:
    """Print a section heading."""
    console.print(text, style="bold")


def verbatim(text: str) -> None:
    """Print text exactly as given (no tab expansion, no markup), with a newline."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def message_banner(msg: dict[str, Any]) -> str:
    """A message shown prominently, as seed 000 asks for unread coord messages (the hooks' banner: sender-written
    text quoted or escaped, so a body cannot forge a second banner)."""
    return banner(msg)
