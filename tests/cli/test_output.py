"""Tables drawn without Rich are the tables Rich draws (issue 7 point 18): same bytes, else Rich draws them.

``coordhub.cli.output`` writes a table of one-cell characters going to a pipe
itself, so ``coord lock list`` need not import Rich. Each case here prints
the same rows twice through the CLI's own console, once as it chooses and
once with Rich forced, and compares the bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
import rich.cells
from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.cli import output
from coordhub.cli.output import ONE_CELL, Console, plain_table


class _Pipe(io.StringIO):
    """What an agent's pipe looks like to the console: not a terminal, UTF-8."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return False


def _drawn(monkeypatch: pytest.MonkeyPatch, headings: Sequence[str], rows: Sequence[Sequence[str]],
           rich: bool) -> str:
    """What the CLI's console prints for the table on a pipe; ``rich`` forces Rich to draw it."""
    pipe = _Pipe()
    with monkeypatch.context() as m:
        m.setattr("sys.stdout", pipe)
        for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
            m.delenv(name, raising=False)
        if rich:
            m.setattr(Console, "_plain_tables", lambda self: False)
        Console().table(headings, rows, [h == "id" for h in headings])
    return pipe.getvalue()


def test_one_cell_is_richs_single_cell_set() -> None:
    """The characters drawn without Rich are exactly those Rich measures as one cell without its tables."""
    for code in range(0x3000):
        char = chr(code)
        assert (ONE_CELL.fullmatch(char) is not None) == (char in rich.cells._SINGLE_CELLS), hex(code)


CASES = [
    (["id", "fence", "project", "description"], [["3fa85f64-5717-4562-b3fc-2c963f66afa6", "7", "p", "work"],
                                                 ["z", "12", "proj", ""]]),
    (["only"], [["x"], ["a much longer cell"]]),
    (["a", "b"], [["  leading", "trailing  "], ["   ", ""]]),
    (["a", "b", "c"], [["[bold]markup[/]", ":smile: emoji code", "\\x1b[31m escaped"]]),
    (["project", "description"], [["déploiement", "Ünïcödé ÀÉÎÕÜ ßæøå"], ["Ελληνικά", "Кириллица ║ ⠿"]]),
    (["a", "b"], [["wide 日本", "x"]]),  # Rich draws it
    (["a"], [["combining e\u0301"]]),  # Rich draws it
    (["a"], [["soft\xadhyphen"]]),  # Rich draws it
]


@pytest.mark.parametrize(("headings", "rows"), CASES)
def test_a_table_is_richs_table(monkeypatch: pytest.MonkeyPatch, headings: list[str], rows: list[list[str]]) -> None:
    assert (plain_table(headings, rows) is None) == (CASES.index((headings, rows)) >= 5)
    assert _drawn(monkeypatch, headings, rows, rich=False) == _drawn(monkeypatch, headings, rows, rich=True)


_CELL = st.text(st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                          st.characters(min_codepoint=0xa0, max_codepoint=0x482),
                          st.sampled_from("║╇⠿日\u0301\u200d\ufe0f😀\u3000")), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(_CELL.filter(bool), min_size=n, max_size=n),
                                                     st.lists(st.lists(_CELL, min_size=n, max_size=n),
                                                              min_size=1, max_size=4))))
def test_any_table_is_richs_table(table: tuple[list[str], list[list[str]]]) -> None:
    headings, rows = table
    with pytest.MonkeyPatch.context() as monkeypatch:
        plain = _drawn(monkeypatch, headings, rows, rich=False)
        assert plain == _drawn(monkeypatch, headings, rows, rich=True)
    drawn_plain = plain_table(headings, rows) is not None
    assert drawn_plain == all(ONE_CELL.fullmatch(c) for c in [*headings, *(c for r in rows for c in r)])


def test_a_table_too_wide_for_richs_width_is_left_to_rich() -> None:
    assert plain_table(["a", "b"], [["x" * (output.RICH_WIDTH // 2), "y" * (output.RICH_WIDTH // 2)]]) is None
    assert plain_table(["a", "b"], [["x" * 10, "y" * 10]]) is not None


@pytest.mark.parametrize(("env", "tty", "plain"), [
    ({}, False, True),
    ({}, True, False),
    ({"FORCE_COLOR": "1"}, False, False),
    ({"FORCE_COLOR": ""}, False, True),  # Rich: an empty FORCE_COLOR forces nothing
    ({"TTY_COMPATIBLE": "1"}, False, False),
    ({"TTY_COMPATIBLE": "0"}, True, True),
    ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False, True),
])
def test_tables_are_drawn_without_rich_only_where_rich_sees_no_terminal(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, plain: bool) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pipe = _Pipe()
    monkeypatch.setattr(pipe, "isatty", lambda: tty)
    monkeypatch.setattr("sys.stdout", pipe)
    assert Console()._plain_tables() is plain
    monkeypatch.setattr(pipe, "encoding", "latin-1")  # Rich would draw ASCII boxes
    assert Console()._plain_tables() is False
