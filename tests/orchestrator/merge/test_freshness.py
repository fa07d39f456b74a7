"""Freshness (seed 003): before a worker starts, the repos its repo depends_on are compared with their origin on
that machine; a stale one is named in the worker's log, or pulled first (--ff-only) with workers.auto_pull. Real
``coord serve``, a real ``coord agent``, real clones of bare origins."""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.coordcli import Coord, git_init, isolated_env
from tests.orchestrator.host.conftest import make_repo, run
from tests.orchestrator.merge.conftest import API, MergeFleet


def _log(mfleet: MergeFleet, aid: str) -> str:
    return str(httpx2.get(mfleet.hub.url + f"{API}/assignments/{aid}/log", headers=mfleet.admin).json()["text"])


def test_a_stale_dependency_is_named_or_pulled(mfleet: MergeFleet, tmp_path: Path) -> None:
    lib = make_repo(tmp_path, "lib")
    clone = tmp_path / "clone-m1-lib"
    run(tmp_path, "git", "clone", "-q", str(lib.origin), str(clone))
    (lib.path / "new.txt").write_text("new\n")  # origin moves on; m1's clone of lib is one commit behind
    run(lib.path, "git", "add", "new.txt")
    run(lib.path, "git", "commit", "-q", "-m", "lib moves on")
    run(lib.path, "git", "push", "-q", "origin", "main")
    config = httpx2.get(mfleet.hub.url + f"{API}/config", headers=mfleet.admin).json()["config"]
    config["repos"][0]["depends_on"] = ["lib"]
    config["repos"].append({"name": "lib", "default_branch": "main"})
    config["machines"][0]["repos"].append("lib")
    config["machines"][0]["repo_paths"]["lib"] = str(clone)
    httpx2.put(mfleet.hub.url + f"{API}/config", json=config, headers=mfleet.admin).raise_for_status()
    mfleet.start("m1")
    (first,) = mfleet.done([70], lambda n: "fake: success file=f70.txt")
    assert "[fresh] lib: STALE: 1 commit(s) behind origin/main (workers.auto_pull is off)" in _log(mfleet, first)
    assert run(clone, "git", "rev-parse", "HEAD") != run(lib.origin, "git", "rev-parse", "main")
    config["workers"]["auto_pull"] = True
    httpx2.put(mfleet.hub.url + f"{API}/config", json=config, headers=mfleet.admin).raise_for_status()
    (second,) = mfleet.done([71], lambda n: "fake: success file=f71.txt")
    assert "[fresh] lib: pulled 1 commit(s) from origin/main (--ff-only)" in _log(mfleet, second)
    assert run(clone, "git", "rev-parse", "HEAD") == run(lib.origin, "git", "rev-parse", "main")
    (third,) = mfleet.done([72], lambda n: "fake: success file=f72.txt")
    assert "[fresh] lib: fresh: at or ahead of origin/main" in _log(mfleet, third)


def _approve_cli(mfleet: MergeFleet, tmp_path: Path, issue: int, *flags: str) -> tuple[str, str]:
    """Store an assign proposal for ``app#issue`` and approve it with ``coord approve`` (the real CLI); its output
    and the assignment id once the worker is done."""
    r = httpx2.post(mfleet.hub.url + f"{API}/proposals", headers=mfleet.admin, json={"proposals": [
        {"kind": "assign", "repo": "app", "issue": issue, "machine": "m1", "rationale": "test",
         "briefing": f"fake: success file=f{issue}.txt"}]})
    assert r.status_code == 201, r.text
    pid = r.json()["proposals"][0]["id"]
    coord = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path), url=mfleet.hub.url).as_token(
        mfleet.hub.token("desk/claude-main"))
    out = coord.ok("approve", str(pid), "--wait", "60", *flags)
    aid = str(httpx2.get(mfleet.hub.url + f"{API}/proposals/{pid}", headers=mfleet.admin).json()["assignment_id"])
    mfleet.wait(aid, lambda a: a["state"] in ("done", "failed", "stuck", "needs_input", "cancelled"))
    return out.out, aid


def test_approve_warns_of_a_stale_dependency_and_auto_pull_fast_forwards_it(mfleet: MergeFleet,
                                                                            tmp_path: Path) -> None:
    """Seed 003's `coord approve [--auto-pull] [--skip-freshness]`: the check runs on the target machine just
    before the worker starts (the host already runs git there); approve prints what it found."""
    lib = make_repo(tmp_path, "lib")
    clone = tmp_path / "clone-m1-lib"
    run(tmp_path, "git", "clone", "-q", str(lib.origin), str(clone))

    def origin_moves(name: str) -> None:
        (lib.path / name).write_text("new\n")
        run(lib.path, "git", "add", name)
        run(lib.path, "git", "commit", "-q", "-m", f"lib adds {name}")
        run(lib.path, "git", "push", "-q", "origin", "main")

    origin_moves("a.txt")
    config = httpx2.get(mfleet.hub.url + f"{API}/config", headers=mfleet.admin).json()["config"]
    config["repos"][0]["depends_on"] = ["lib"]
    config["repos"].append({"name": "lib", "default_branch": "main"})
    config["machines"][0]["repos"].append("lib")
    config["machines"][0]["repo_paths"]["lib"] = str(clone)
    httpx2.put(mfleet.hub.url + f"{API}/config", json=config, headers=mfleet.admin).raise_for_status()
    mfleet.start("m1")
    out, _ = _approve_cli(mfleet, tmp_path, 80)
    assert "warning: m1: lib: STALE: 1 commit(s) behind origin/main" in out, out
    assert "--auto-pull" in out
    assert run(clone, "git", "rev-parse", "HEAD") != run(lib.origin, "git", "rev-parse", "main")
    out, aid = _approve_cli(mfleet, tmp_path, 81, "--auto-pull")
    assert "freshness: m1: lib: pulled 1 commit(s) from origin/main (--ff-only)" in out, out
    assert run(clone, "git", "rev-parse", "HEAD") == run(lib.origin, "git", "rev-parse", "main")
    assert "[fresh] lib: pulled 1 commit(s)" in _log(mfleet, aid)
    origin_moves("b.txt")
    out, aid = _approve_cli(mfleet, tmp_path, 82, "--skip-freshness")
    assert "freshness: skipped" in out and "STALE" not in out, out
    assert "[fresh] skipped (coord approve --skip-freshness)" in _log(mfleet, aid)
    assert run(clone, "git", "rev-parse", "HEAD") != run(lib.origin, "git", "rev-parse", "main")
