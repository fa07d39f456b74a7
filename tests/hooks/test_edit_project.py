"""The edit hook checks a file in the project it belongs to, wherever the agent's Bash ``cd`` left the hook's ``cwd``.

Review finding F1: the root came from ``$CLAUDE_PROJECT_DIR`` but identity.json
(and through it the project key) from the payload's ``cwd``, so after ``cd
other`` (a git repository with an untracked identity.json naming another
project) an edit of a leased file of the session's project was checked under
the wrong key and silently allowed. Every hook here runs as the real
subprocess Claude Code starts, against a live hub, in real git repositories.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.hooks.conftest import PROJECT, B, Fleet, HookResult, make_project, run_hook
from tests.hooks.test_hooks import edit


def with_identity(repo: Path, content: str) -> Path:
    """Write an untracked ``.claude/identity.json`` (the kind an agent can make with Write) into ``repo``."""
    (repo / ".claude").mkdir(exist_ok=True)
    (repo / ".claude" / "identity.json").write_text(content)
    return repo


def pre_tool_use(fleet: Fleet, path: Path, cwd: Path, project_dir: Path | None, **env: str) -> HookResult:
    """A's PreToolUse for an Edit of ``path``, the payload's ``cwd`` (and the process's) being ``cwd``."""
    full_env = {**fleet.a.env, **env}
    if project_dir is not None:
        full_env["CLAUDE_PROJECT_DIR"] = str(project_dir)
    payload = {"session_id": fleet.a.claude_session, "cwd": str(cwd), "permission_mode": "default", **edit(path)}
    return run_hook("pre-tool-use", payload, full_env, cwd)


def denied(r: HookResult) -> str:
    out: dict[str, Any] = r.json()["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny", out
    return str(out["permissionDecisionReason"])


def test_an_identity_in_the_repository_the_agent_moved_into_does_not_rekey_the_sessions_files(
        fleet: Fleet, tmp_path: Path) -> None:
    proj = fleet.a.project_dir
    other = with_identity(make_project(tmp_path / "elsewhere", "other"), json.dumps({"project": "elsewhere"}))
    lease = fleet.b.claim("src/a.py", "b edits a.py")
    target = proj / "src" / "a.py"
    assert lease["id"] in denied(pre_tool_use(fleet, target, proj, proj))  # the control: cwd in the project
    reason = denied(pre_tool_use(fleet, target, other, proj))  # after `cd other`: same answer
    assert reason.startswith(f"coord: src/a.py is leased by {B}") and lease["id"] in reason
    assert f"in project {PROJECT}," in reason


def test_without_claude_project_dir_a_file_is_checked_in_its_own_repository(fleet: Fleet, tmp_path: Path) -> None:
    """The hook starts in ``other`` (no ``$CLAUDE_PROJECT_DIR``); proj/src/a.py is still checked under proj's key."""
    proj = fleet.a.project_dir
    other = with_identity(make_project(tmp_path / "elsewhere", "other"), json.dumps({"project": "elsewhere"}))
    lease = fleet.b.claim("src/a.py", "b edits a.py")
    reason = denied(pre_tool_use(fleet, proj / "src" / "a.py", other, None))
    assert reason.startswith(f"coord: src/a.py is leased by {B}") and lease["id"] in reason
    pre_tool_use(fleet, proj / "src" / "free.py", other, None).silent()
    pre_tool_use(fleet, other / "src" / "a.py", other, None).silent()  # other's src/a.py is another file


def test_a_file_in_another_repository_is_checked_under_that_repositorys_key(fleet: Fleet, tmp_path: Path) -> None:
    proj = fleet.a.project_dir
    lib = with_identity(make_project(tmp_path / "libs", "lib"), json.dumps({"project": "libkey"}))
    lease = fleet.b.api("POST", "/locks", json={"project_key": "libkey", "resource": "src/x.py",
                                                "description": "lib work", "ttl_hours": 1})
    for cwd in (proj, lib):
        reason = denied(pre_tool_use(fleet, lib / "src" / "x.py", cwd, proj))
        assert reason.startswith(f"coord: src/x.py is leased by {B}") and lease["id"] in reason
        assert "in project libkey," in reason
    plain = make_project(tmp_path / "libs", "plain")  # no identity.json: keyed by its name
    lease = fleet.b.api("POST", "/locks", json={"project_key": "plain", "resource": "src/y.py",
                                                "description": "plain work", "ttl_hours": 1})
    assert lease["id"] in denied(pre_tool_use(fleet, plain / "src" / "y.py", proj, proj))
    pre_tool_use(fleet, plain / "src" / "x.py", proj, proj).silent()


def test_a_linked_worktree_of_the_sessions_repository_keeps_the_sessions_key(fleet: Fleet, tmp_path: Path) -> None:
    proj = with_identity(fleet.a.project_dir, json.dumps({"project": "fleetkey"}))
    git = ["git", "-C", str(proj), "-c", "user.email=t@t", "-c", "user.name=t"]
    (proj / "src" / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "src/a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    wt = tmp_path / "wt-b"
    subprocess.run([*git, "worktree", "add", "-q", str(wt)], check=True)
    lease = fleet.b.api("POST", "/locks", json={"project_key": "fleetkey", "resource": "src/a.py",
                                                "description": "b edits a.py", "ttl_hours": 1})
    assert lease["id"] in denied(pre_tool_use(fleet, proj / "src" / "a.py", wt, proj))
    assert lease["id"] in denied(pre_tool_use(fleet, wt / "src" / "a.py", wt, proj))


def test_another_repository_whose_project_cannot_be_named_follows_the_fail_mode(fleet: Fleet, tmp_path: Path) -> None:
    proj = fleet.a.project_dir
    broken = with_identity(make_project(tmp_path / "libs", "broken"), "[not an object")
    target = broken / "src" / "x.py"
    r = pre_tool_use(fleet, target, broken, proj)
    r.silent()
    assert "cannot check" in r.err and "its project cannot be named" in r.err
    assert "edit allowed (COORD_HOOK_FAIL_MODE=open)" in r.err
    reason = denied(pre_tool_use(fleet, target, broken, proj, COORD_HOOK_FAIL_MODE="closed"))
    assert "cannot check whether" in reason and "COORD_HOOK_FAIL_MODE=closed" in reason
    # the session's own files are unaffected by the broken file elsewhere
    pre_tool_use(fleet, proj / "src" / "a.py", broken, proj, COORD_HOOK_FAIL_MODE="closed").silent()


def test_outside_every_repository_and_the_project_nothing_is_asked_even_fail_closed(
        fleet: Fleet, tmp_path: Path, closed_url: str) -> None:
    pre_tool_use(fleet, tmp_path / "scratch" / "notes.txt", fleet.a.project_dir, fleet.a.project_dir,
                 COORD_URL=closed_url, COORD_HOOK_FAIL_MODE="closed").silent()
