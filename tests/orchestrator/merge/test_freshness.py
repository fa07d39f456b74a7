"""Freshness (seed 003): before a worker starts, the repos its repo depends_on are compared with their origin on
that machine; a stale one is named in the worker's log, or pulled first (--ff-only) with workers.auto_pull. Real
``coord serve``, a real ``coord agent``, real clones of bare origins."""

from __future__ import annotations

from pathlib import Path

import httpx2

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
