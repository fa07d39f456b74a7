"""``asked_as``, shared by the edit hook and the git guard: which resource a file name is asked about as."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.core.paths import MAX_LENGTH, ResourceKind, overlaps, parse
from coordhub.hooks.project import _PLAIN, asked_as

PLAIN_NAMES = st.from_regex(_PLAIN, fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(name=PLAIN_NAMES)
def test_a_plain_name_skips_the_parser_only_where_the_parser_takes_it_as_it_is(name: str) -> None:
    """The shortcut that keeps :mod:`coordhub.core.paths` out of an ordinary edit agrees with the long way."""
    parsed = parse("./" + name)
    assert len("./" + name) <= MAX_LENGTH and parsed.kind is not ResourceKind.NAME
    assert parsed.kind is ResourceKind.PATH and "\\" not in name


@pytest.mark.parametrize(("name", "expected"), [
    ("src/a.py", ("./src/a.py", True)),
    ("deploy:notes.md", ("./deploy:notes.md", True)),
    ("src/a\\b.py", ("./src/*", True)),
    ("src/new\nline.py", ("./src/new*line.py", False)),
    ("src/caf\udce9.py", ("./src/caf*.py", False)),
    ("src/" + "d" * 1100 + ".py", ("./src/**", False)),
])
def test_each_kind_of_name_is_asked_about_as_itself_or_a_glob_covering_it(name: str,
                                                                          expected: tuple[str, bool]) -> None:
    assert asked_as(name) == expected


@pytest.mark.parametrize("name", ["src/a\\b.py", "src/new\nline.py", "src/caf\udce9.py"])
def test_the_glob_overlaps_every_lease_covering_the_file(name: str) -> None:
    glob, _ = asked_as(name)
    assert glob is not None
    for lease in ("src/", "src/*", "src/**/*.py", "*/*.py"):
        assert overlaps(lease, glob), (lease, glob)
