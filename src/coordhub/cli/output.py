"""How the CLI prints: JSON for scripts (``--json``), readable tables and banners for people.

Rich is imported only when something needs it (a table, a styled line on a
terminal, a progress bar): a plain line is written directly, exactly as Rich
would print it, so the commands agents run most start without Rich's import
cost (issue 7 point 18; ``coord bench cli`` measures it).
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import rich.console

# What Rich's Text drops from a printed string (bell, backspace, vertical tab,
# form feed, carriage return); plain lines drop the same, so output does not
# depend on whether Rich was loaded.
_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))
TAB_SIZE = 8  # Rich's default


def plain(text: str) -> str:
    """``text`` as Rich prints it without markup: the control characters above removed, tabs expanded."""
    return text.translate(_CONTROL).expandtabs(TAB_SIZE)


class Console:
    """Prints lines on stdout (or stderr); Rich renders only tables and styled lines on a terminal.

    No markup, emoji or highlighting: reasons, subjects and todo texts are shown
    exactly as written. When the stream is not a terminal (an agent reading the
    output) tables never wrap, so ids stay whole and copyable.
    """

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self._rich: rich.console.Console | None = None

    @property
    def stream(self) -> Any:
        """The stream printed to, looked up at each print (tests and pipes replace it)."""
        return sys.stderr if self.stderr else sys.stdout

    @property
    def rich(self) -> rich.console.Console:
        """The Rich console, created on first use."""
        if self._rich is None:
            from rich.console import Console as RichConsole

            class _Rich(RichConsole):
                def on_broken_pipe(self) -> None:
                    # Rich would exit 1 on its own; the entry point ends every closed stdout alike
                    raise BrokenPipeError(errno.EPIPE, "Broken pipe")

            self._rich = _Rich(highlight=False, soft_wrap=True, markup=False, emoji=False, stderr=self.stderr,
                                     width=None if self.stream.isatty() else 100_000)
        return self._rich

    def _styled(self) -> bool:
        """Whether a style would show: Rich colours a terminal, or any stream with FORCE_COLOR."""
        return bool(self.stream.isatty() or os.environ.get("FORCE_COLOR"))

    def print(self, obj: Any, style: str | None = None) -> None:
        """Print a string (styled only where a style would show) or a Rich renderable."""
        if isinstance(obj, str) and (style is None or not self._styled()):
            self.stream.write(plain(obj) + "\n")
        else:
            self.rich.print(obj, style=style)


console = Console()


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
    from rich.table import Table

    from coordhub.hooks.untrusted import one_line

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
    from coordhub.hooks.inbox import banner

    return banner(msg)
