"""How the CLI prints: JSON for scripts (``--json``), readable tables and banners for people.

Rich is imported only when something needs it (a styled line or a table on a
terminal, a table with wide or combining characters, a progress bar): a
plain line, and a table of one-cell characters going to a pipe or file (what
an agent reads), are written directly, exactly as Rich would print them, so the
commands agents run most start without Rich's import cost (issue 7 point 18;
``coord bench cli`` measures it, and ``tests/cli/test_output.py`` checks the
tables against Rich's own).
"""

from __future__ import annotations

import errno
import json
import os
import re
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
RICH_WIDTH = 100_000  # the width Rich gets when not on a terminal: tables never wrap, so ids stay whole
# Rich's HEAVY_HEAD box without its edges (what ``Table(show_edge=False)`` draws): header and body separators,
# the rule under the header and where it crosses a separator.
HEAD_BAR, BODY_BAR, RULE, CROSS = "\u2503", "\u2502", "\u2501", "\u2547"
# Text Rich 15 measures as one cell per character without looking further (``rich.cells._SINGLE_CELL_UNICODE_RANGES``:
# printable Latin, Latin-1 and Latin Extended but the soft hyphen, Greek and Cyrillic letters, box drawing, Braille).
ONE_CELL = re.compile("[\x20-\x7e\xa0-\xac\xae-\u02ff\u0370-\u0482\u2500-\u25fc\u2800-\u28ff]*")


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
                                     width=None if self.stream.isatty() else RICH_WIDTH)
        return self._rich

    def _styled(self) -> bool:
        """Whether a style would show: Rich colours a terminal, or any stream with FORCE_COLOR."""
        return bool(self.stream.isatty() or os.environ.get("FORCE_COLOR"))

    def _plain_tables(self) -> bool:
        """Whether Rich would draw a table here as :func:`plain_table` does: not for a terminal (by Rich's own
        test: ``TTY_COMPATIBLE``, ``FORCE_COLOR``, then isatty), in a UTF encoding (else Rich draws ASCII
        boxes), not on Windows (legacy console boxes), and with the width Rich is then given."""
        compatible, force = os.environ.get("TTY_COMPATIBLE", ""), os.environ.get("FORCE_COLOR")
        terminal = (compatible == "1" if compatible in ("0", "1") else
                    force != "" if force is not None else self.stream.isatty())
        encoding = (getattr(self.stream, "encoding", None) or "utf-8").lower()
        return not terminal and encoding.startswith("utf") and os.name != "nt"

    def table(self, headings: Sequence[str], rows: Sequence[Sequence[str]], no_wrap: Sequence[bool]) -> None:
        """Print a table: ``rows`` of cells under ``headings``; ``no_wrap`` columns are never folded.

        Drawn by :func:`plain_table` when it is what Rich would draw (see
        :meth:`_plain_tables`), else by Rich (header bold, edges off).
        """
        text = plain_table(headings, rows) if self._plain_tables() else None
        if text is not None:
            self.stream.write(text)
            return
        from rich.table import Table

        t = Table(show_edge=False, pad_edge=False, header_style="bold")
        for heading, keep in zip(headings, no_wrap, strict=True):
            t.add_column(heading, overflow="fold", no_wrap=keep)
        for row in rows:
            t.add_row(*row)
        self.rich.print(t)

    def print(self, obj: Any, style: str | None = None) -> None:
        """Print a string (styled only where a style would show) or a Rich renderable."""
        if isinstance(obj, str) and (style is None or not self._styled()):
            self.stream.write(plain(obj) + "\n")
        else:
            self.rich.print(obj, style=style)


console = Console()


# What Rich's markup takes for a style tag: "[" then a lower-case letter, "#", "/" or "@" (its own escape's pattern)
_MARKUP_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def help_text(text: str) -> str:
    """``text`` as a Typer help string, which Typer renders as Rich markup: each ``[…]`` Rich would take for a
    style tag (``[init]``, ``coordhub[redis]``) escaped, so it is shown as written instead of dropped."""
    return _MARKUP_TAG.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str) -> None:
    """Print rows as a table of ``(key, heading)`` columns, or ``empty`` when there are none.

    Cells are shown with :func:`~coordhub.hooks.untrusted.one_line`: a subject
    or description cannot break the table or send escape sequences to the
    terminal; a time column (a key ending ``_at``, ``last_heartbeat``) to the
    second (:func:`~coordhub.hooks.leases.when`). The ``id`` column is never
    folded.
    """
    if not rows:
        console.print(empty)
        return
    from coordhub.hooks.leases import when
    from coordhub.hooks.untrusted import one_line

    # a time column (``*_at``, ``last_heartbeat``) to the second, as the CLI prints times to people; --json keeps
    # the hub's microseconds
    timed = [k.endswith("_at") or k == "last_heartbeat" for k, _ in columns]
    cells = [["" if row.get(k) is None else when(row[k]) if t and isinstance(row[k], str) else one_line(row.get(k))
              for (k, _), t in zip(columns, timed, strict=True)] for row in rows]
    console.table([h for _, h in columns], cells, [k == "id" for k, _ in columns])


def plain_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str | None:
    """The lines Rich's ``Table(show_edge=False, pad_edge=False)`` prints at :data:`RICH_WIDTH` columns and no
    colour, newline-terminated; None when that needs Rich itself.

    Each column is as wide as its widest cell (heading included) plus one
    space of padding inside each separator; the header row uses heavy bars
    and a heavy rule. Only for text Rich measures one cell per character
    (:data:`ONE_CELL`) in a table narrower than :data:`RICH_WIDTH`, so
    nothing is folded or measured otherwise; anything else returns None.
    """
    if not all(ONE_CELL.fullmatch(cell) for row in (headings, *rows) for cell in row):
        return None
    widths = [max(len(row[i]) for row in (headings, *rows)) for i in range(len(headings))]
    last = len(widths) - 1
    # one space on each side of every inner separator, none at the outer edges (pad_edge=False)
    pads = [(i > 0, i < last) for i in range(len(widths))]
    if sum(widths) + 3 * last >= RICH_WIDTH:
        return None

    def line(cells: Sequence[str], bar: str) -> str:
        return bar.join(" " * left + cell.ljust(w) + " " * right
                        for cell, w, (left, right) in zip(cells, widths, pads, strict=True))

    rule = CROSS.join(RULE * (w + left + right) for w, (left, right) in zip(widths, pads, strict=True))
    return "".join(text + "\n" for text in (line(headings, HEAD_BAR), rule, *(line(r, BODY_BAR) for r in rows)))


def heading(text: str) -> None:
    """Print a section heading."""
    console.print(text, style="bold")


def verbatim(text: str, *, err: bool = False) -> None:
    """Print text exactly as given (no tab expansion, no markup), with a newline; on stderr with ``err``."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def message_banner(msg: dict[str, Any]) -> str:
    """A message shown prominently, as seed 000 asks for unread coord messages (the hooks' banner: sender-written
    text quoted or escaped, so a body cannot forge a second banner)."""
    from coordhub.hooks.inbox import banner

    return banner(msg)
