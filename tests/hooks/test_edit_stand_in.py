"""The edit hook asks about a name the lease rules would misread or refuse as the glob covering it, as the git
guard does (``coordhub.hooks.project.asked_as``, 382a061 and 6d00200 there). It asked ``src/a\\b.py``, one file
in ``src/`` on POSIX, as ``src/a/b.py`` (the rules read a backslash as ``/``), which a lease of ``src/*.py`` does
not cover: the edit went ahead silently over another session's lease. A name no lease resource can hold (a
newline, bytes that are not UTF-8, over the length limit) was refused by the hub (422) and, under the default
``COORD_HOOK_FAIL_MODE=open``, allowed with a warning even inside another session's lease of its directory."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hooks.conftest import B, Fleet
from tests.hooks.test_hooks import edit


def _denied(fleet: Fleet, name: str) -> str:
    """The deny reason of A's edit of ``name`` (project-relative); fails if the edit is not denied."""
    r = fleet.a.hook("pre-tool-use", **edit(f"{fleet.a.project_dir}/{name}"))
    out: dict[str, Any] = r.json()["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny", r
    return str(out["permissionDecisionReason"])


def test_an_edit_of_a_name_holding_a_backslash_is_denied_under_a_glob_lease(fleet: Fleet) -> None:
    lease = fleet.b.claim("src/*.py", "all modules")
    reason = _denied(fleet, "src/a\\b.py")
    assert reason.startswith(f"coord: src/a\\b.py is leased by {B}") and lease["id"] in reason, reason
    assert "checked as ./src/*, a glob covering it" in reason, reason
    r = fleet.a.hook("pre-tool-use", **edit(fleet.a.project_dir / "lib" / "a.py"))  # an ordinary edit still passes
    assert r.out == "" and r.err == "", r


def test_a_backslash_name_is_denied_for_a_lease_of_another_file_in_its_directory(fleet: Fleet) -> None:
    """Its segment becomes ``*`` whole (the backslash might be read as either), so it may over-report, never miss."""
    lease = fleet.b.claim("src/other.txt", "elsewhere in src")
    assert lease["id"] in _denied(fleet, "src/a\\b.py")
    r = fleet.a.hook("pre-tool-use", **edit(f"{fleet.a.project_dir}/lib/a\\b.py"))  # checked: no fail-mode line
    assert r.out == "" and r.err == "", r


@pytest.mark.parametrize(("name", "leased"), [("src/new\nline.py", "src/*.py"), ("src/caf\udce9.py", "src/"),
                                              ("src/" + "d" * 1100 + ".py", "src/")])
def test_a_name_no_lease_can_hold_is_denied_under_a_lease_covering_it(fleet: Fleet, name: str, leased: str) -> None:
    lease = fleet.b.claim(leased, "covers it whatever its name")
    reason = _denied(fleet, name)
    assert f"is leased by {B}" in reason and lease["id"] in reason, reason
    assert "a glob covering it" in reason, reason


def test_a_name_no_lease_can_hold_and_no_lease_covers_follows_the_fail_mode(fleet: Fleet) -> None:
    fleet.b.claim("lib/", "elsewhere")
    path = f"{fleet.a.project_dir}/src/new\nline.py"
    r = fleet.a.hook("pre-tool-use", **edit(path))
    r.silent()
    assert "no other session's lease overlaps ./src/new*line.py" in r.err, r.err
    assert "edit allowed (COORD_HOOK_FAIL_MODE=open)" in r.err, r.err
    r = fleet.a.hook("pre-tool-use", **edit(path), env={"COORD_HOOK_FAIL_MODE": "closed"})
    reason = r.json()["hookSpecificOutput"]["permissionDecisionReason"]
    assert "cannot check whether" in reason and "no lease resource can name" in reason, reason


@pytest.mark.parametrize(("name", "leased"), [("app/[slug]/page.tsx", "app/*slug*/"),
                                              ("app/[slug]/page.tsx", "app/[[]slug]/"),
                                              ("app/[slug]/page.tsx", "app/[slug]/page.tsx"),
                                              ("app/[slug]/a\\b.tsx", "app/*slug*/"),
                                              ("src/{a,b}.py", "src/?a,b?.py")])
def test_an_edit_of_a_name_with_brackets_or_braces_is_denied_under_a_lease_covering_it(fleet: Fleet, name: str,
                                                                                       leased: str) -> None:
    """Asked as it is, ``app/[slug]/page.tsx`` (a Next.js route) was read as ``app/s/page.tsx`` and the like and
    went ahead silently under B's lease of ``app/*slug*/``."""
    lease = fleet.b.claim(leased, "covers it")
    assert lease["id"] in _denied(fleet, name)


def test_an_edit_of_a_bracketed_route_passes_beside_a_lease_of_another_route(fleet: Fleet) -> None:
    fleet.b.claim("app/other/page.tsx", "another route")
    r = fleet.a.hook("pre-tool-use", **edit(f"{fleet.a.project_dir}/app/[slug]/page.tsx"))
    assert r.out == "" and r.err == "", r
