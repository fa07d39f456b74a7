"""The merge queue against a real ``coord serve`` and real ``coord agent`` hosts, real git repositories with a bare
origin, and the fake ``claude`` (and fake ``gh``) on PATH."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.orchestrator.host.conftest import claude_bin, make_repo, run  # noqa: F401 (a fixture)
from tests.orchestrator.host.test_agent_e2e import Fleet

API = "/api/coord/orchestrator"
MERGE: dict[str, Any] = {"gate_command": "test -f README.md", "tick_seconds": 0, "batch": 1, "red_fixes": 0}


class MergeFleet(Fleet):
    """A :class:`Fleet` (hub, clones, agents) with the ``merge`` section set and merge-queue helpers."""

    def set_merge(self, pipeline: list[str] | None = None, github: str | None = None,
                  capabilities: list[str] | None = None, **merge: Any) -> None:
        """Set ``merge`` keys; the pipeline's stages are ``pipeline`` (default none: entries come by hand);
        ``github`` gives the repo a GitHub slug, ``capabilities`` the machines'."""
        config = httpx2.get(self.hub.url + f"{API}/config", headers=self.admin).json()["config"]
        config["merge"].update({**MERGE, **merge})
        config["pipeline"]["stages"] = pipeline or []
        config["repos"][0]["github"] = github
        for m in config["machines"]:
            m["capabilities"] = capabilities or []
        httpx2.put(self.hub.url + f"{API}/config", json=config, headers=self.admin).raise_for_status()

    def done(self, issues: list[int], briefing: Callable[[int], str]) -> list[str]:
        """Assign ``issues`` and wait until each is done; their assignment ids, in order."""
        ids = [self.assign(n, briefing(n)) for n in issues]
        for aid in ids:
            a = self.wait(aid, lambda a: a["state"] in ("done", "failed", "stuck", "needs_input", "cancelled"))
            assert a["state"] == "done", a
        return ids

    def enter(self, ids: list[str], **body: Any) -> dict[str, Any]:
        r = httpx2.post(self.hub.url + f"{API}/merges", json={"ids": ids, **body}, headers=self.admin)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def entry(self, entry_id: str) -> dict[str, Any]:
        r = httpx2.get(self.hub.url + f"{API}/merges/{entry_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_entry(self, entry_id: str, states: tuple[str, ...], timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            e = self.entry(entry_id)
            if e["state"] in states:
                return e
            if time.time() > deadline:
                logs = "\n".join(f"--- {x.machine}\n{x.log.read_text()[-4000:]}" for x in self.agents)
                raise AssertionError(f"entry {entry_id} never got to {states}: {e}\n{logs}")
            time.sleep(0.1)

    def main_files(self) -> list[str]:
        """Files added on origin's main, oldest first (one line per file per commit that added it)."""
        out = run(self.repo.origin, "git", "log", "--reverse", "--diff-filter=A", "--name-only", "--format=", "main")
        return [x for x in out.splitlines() if x]

    def main_subjects(self) -> list[str]:
        return run(self.repo.origin, "git", "log", "--reverse", "--format=%s", "main").splitlines()


@pytest.fixture
def mfleet(tmp_path: Path, claude_bin: Path, live_hub: LiveHub) -> Iterator[MergeFleet]:  # noqa: F811
    repo = make_repo(tmp_path, "app")
    f = MergeFleet(live_hub, tmp_path, claude_bin, repo, ["m1"])
    f.set_merge()
    yield f
    for a in f.agents:
        a.stop(signal.SIGKILL if a.proc.poll() is None else 0)
    for r in f.runs():
        try:
            os.killpg(r["pgid"], signal.SIGKILL)
        except OSError:
            pass
