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
    ("app/[slug]/page.tsx", ("./app/{[[]slug[]],[slug]}/page.tsx", True)),
    ("src/{a,b}.py", ("./src/*", True)),
    ("src/x[a,b].py", ("./src/*", True)),
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


@pytest.mark.parametrize(("name", "covering", "apart"), [
    # a Next.js route: the directory by a glob, by its escaped name, and as a lease spelled like the name
    ("app/[slug]/page.tsx", ("app/*slug*/", "app/[[]slug]/", "app/[slug]/page.tsx", "app/**"),
     ("app/other/page.tsx", "lib/[slug]/page.tsx")),
    ("app/[[...all]]/x.ts", ("app/*all*/x.ts", "app/[[...all]]/x.ts", "app/[[][[]...all[]][]]/"), ("app/all/y.ts",)),
    ("src/{a,b}.py", ("src/?a,b?.py", "src/{a,b}.py", "src/*"), ("lib/a.py",)),
    ("app/[slug]/a\\b.tsx", ("app/*slug*/", "app/[[]slug]/*.tsx"), ("app/other/",)),
    ("app/[a]/[b]/[c]/[d]/[e]/[f]/[g]/x.ts", ("app/*/*/*/*/*/*/*/x.ts", "app/[[]a]/"), ()),
])
def test_a_name_with_brackets_or_braces_is_asked_about_as_itself_not_as_the_pattern_it_spells(
        name: str, covering: tuple[str, ...], apart: tuple[str, ...]) -> None:
    """The rules read ``[slug]`` as a class and ``{a,b}`` as alternatives: asked as it is, such a name missed a
    lease covering the file (``app/*slug*/``); the glob asked in its place covers the file, the pattern a lease
    spelled like the name holds, and not (for brackets) other files of the directory."""
    glob, checked = asked_as(name)
    assert glob is not None and checked
    for lease in covering:
        assert overlaps(lease, glob), (lease, glob)
    for lease in apart:
        assert not overlaps(lease, glob), (lease, glob)


def test_an_ordinary_name_with_spaces_or_non_ascii_letters_does_not_load_the_parser() -> None:
    """The edit hook runs before every edit: loading :mod:`coordhub.core.paths` to confirm ``My Notes.md`` or
    ``src/über.py`` cost such an edit ~10 ms."""
    import subprocess
    import sys

    code = ("import sys\nfrom coordhub.hooks.project import asked_as\n"
            "for name in ('My Notes.md', 'src/\u00fcber.py', 'node_modules/@types/x.d.ts', 'src/c++/a.cc'):\n"
            "    assert asked_as(name) == ('./' + name, True), name\n"
            "assert 'coordhub.core.paths' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
