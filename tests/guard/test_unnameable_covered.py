"""A staged path no lease resource can name exactly (a name that is not UTF-8, a newline in it) is still asked
about as a glob that covers it: e48368c made such a name one unchecked path, which the default
``COORD_HOOK_FAIL_MODE=open`` accepts with a warning, so a file added under another session's lease of its
directory (or of a glob matching it) was committed over that lease."""

from __future__ import annotations

import subprocess

from tests.guard.conftest import B, Fleet
from tests.guard.test_guard import refused_lines


def _stage_latin1(fleet: Fleet, name: bytes) -> None:
    repo = fleet.repo
    path = bytes(repo.path) + b"/" + name
    subprocess.run([b"mkdir", b"-p", path.rsplit(b"/", 1)[0]], check=True)
    with open(path, "wb") as f:
        f.write(b"x\n")
    subprocess.run([b"git", b"add", b"--", name], cwd=repo.path, env=repo.env, check=True)


def test_a_name_that_is_not_utf8_under_a_directory_lease_is_refused(fleet: Fleet) -> None:
    lease = fleet.claim(fleet.b, "src/", "refactor")
    _stage_latin1(fleet, b"src/caf\xe9.py")
    r = fleet.repo.commit()
    assert r.code == 1, r
    assert [(x["holder"], x["id"], x["resource"]) for x in refused_lines(r.err)] == [(B, lease["id"], "src/")], r


def test_a_newline_name_under_a_glob_lease_is_refused(fleet: Fleet) -> None:
    lease = fleet.claim(fleet.b, "lib/*.py", "types")
    fleet.repo.change("lib/new\nline.py")
    r = fleet.repo.commit()
    assert r.code == 1 and lease["id"] in r.err and "leased by" in r.err, r


def test_such_a_name_nothing_covers_still_follows_the_fail_mode(fleet: Fleet) -> None:
    fleet.claim(fleet.b, "src/other.txt", "elsewhere")
    _stage_latin1(fleet, b"src/caf\xe9.py")
    r = fleet.repo.commit(env={"COORD_HOOK_FAIL_MODE": "closed"})
    assert r.code == 1 and "commit refused: 1 path(s) cannot be checked" in r.err, r
    r = fleet.repo.commit()
    assert r.code == 0 and "warning: 1 path(s) cannot be checked" in r.err, r


def test_a_name_holding_a_backslash_is_checked_as_one_segment(fleet: Fleet) -> None:
    """On POSIX ``src/a\\b.py`` is one file in ``src/``; the rules read a backslash as ``/`` (Windows names), so the
    guard asked about ``src/a/b.py``, which a lease of ``src/*.py`` does not cover: the commit was accepted
    silently, over another session's lease."""
    lease = fleet.claim(fleet.b, "src/*.py", "all modules")
    fleet.repo.change("src/a\\b.py")
    r = fleet.repo.commit()
    assert r.code == 1 and lease["id"] in r.err and "leased by" in r.err, r


def test_a_name_with_brackets_is_checked_as_itself_not_as_the_pattern_it_spells(fleet: Fleet) -> None:
    """The rules read ``app/[slug]/page.tsx`` (a Next.js route) as ``app/s/page.tsx`` and the like, which a lease
    of ``app/*slug*/`` does not cover: the commit was accepted silently, over another session's lease. A lease of
    another route still lets it through."""
    fleet.claim(fleet.b, "app/other/page.tsx", "another route")
    fleet.repo.change("app/[slug]/page.tsx")
    assert fleet.repo.commit().code == 0
    lease = fleet.claim(fleet.b, "app/*slug*/", "dynamic routes")
    fleet.repo.change("app/[slug]/page.tsx", "y\n")
    r = fleet.repo.commit()
    assert r.code == 1 and lease["id"] in r.err and "leased by" in r.err, r
