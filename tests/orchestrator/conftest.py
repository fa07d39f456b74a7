"""Helpers for the orchestrator's tests: a config, and a worker host driven over HTTP by the test itself."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, LiveHub

BASE_CONFIG: dict[str, Any] = {
    "repos": [{"name": "api", "github": "acme/api", "build_command": "make", "test_command": "make test"},
              {"name": "lib", "github": "acme/lib"}],
    "machines": [{"name": "laptop", "capabilities": ["python"], "repos": ["api", "lib"],
                  "repo_paths": {"api": "~/src/api", "lib": "~/src/lib"}},
                 {"name": "server", "capabilities": ["python", "docker"], "repos": ["api", "lib"]}],
    "concurrency": {"max_workers": 2, "stagger_seconds": 0, "backoff_base": 10, "max_retries": 2,
                    "stale_threshold": 3, "heartbeat_seconds": 5},
    "models": {"default": "sonnet", "escalation": ["haiku", "sonnet", "opus"],
               "labels": {"documentation": "haiku", "architecture": "opus"}},
    # every gate and the merge queue (the product's default stops a passed branch before merge)
    "pipeline": {"stages": ["test", "review", "merge"]},
}


def config(**sections: Any) -> dict[str, Any]:
    """:data:`BASE_CONFIG` with top-level sections replaced or (for dicts) updated."""
    out = copy.deepcopy(BASE_CONFIG)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


ORCH = "/api/coord/orchestrator"


@dataclass
class Host:
    """A fake ``coord agent`` of one machine, speaking the host endpoints with its own token."""

    api: Api
    machine: str
    headers: dict[str, str]
    slots: int = 2
    incarnation: int = 0
    running: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def register(self, repos: dict[str, str] | None = None, capabilities: list[str] | None = None) -> dict[str, Any]:
        r = self.api.post(f"{ORCH}/hosts/register", headers=self.headers, json={
            "machine": self.machine, "capabilities": capabilities if capabilities is not None else ["python"],
            "repos": repos if repos is not None else {"api": f"/src/{self.machine}/api", "lib": "/src/lib"},
            "slots": self.slots, "agent_version": "test"})
        assert r.status_code == 200, r.text
        self.incarnation = r.json()["host_incarnation"]
        return dict(r.json())

    def beat(self, expect: int = 200) -> dict[str, Any]:
        r = self.api.post(f"{ORCH}/hosts/heartbeat", headers=self.headers, json={
            "machine": self.machine, "host_incarnation": self.incarnation,
            "free_slots": self.slots - len(self.running), "running": self.running})
        assert r.status_code == expect, r.text
        return dict(r.json())

    def next(self, wait: float = 0) -> dict[str, Any] | None:
        r = self.api.post(f"{ORCH}/hosts/next", headers=self.headers, json={
            "machine": self.machine, "host_incarnation": self.incarnation, "wait": wait})
        assert r.status_code == 200, r.text
        job = r.json()["assignment"]
        if job is not None:
            self.running.append(job["id"])
            self.jobs[job["id"]] = job
        return job  # type: ignore[no-any-return]

    def report(self, job: dict[str, Any], state: str | None = None, expect: int = 200, attempt: int | None = None,
               **body: Any) -> dict[str, Any]:
        r = self.api.post(f"{ORCH}/assignments/{job['id']}/report", headers=self.headers,
                          json={"attempt": attempt or job["attempt"], "host_incarnation": self.incarnation,
                                **({"state": state} if state else {}), **body})
        assert r.status_code == expect, r.text
        if state not in (None, "running") and expect == 200 and job["id"] in self.running:
            self.running.remove(job["id"])
        return dict(r.json())


def apply_config(api: Api, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    r = api.put(f"{ORCH}/config", headers=api.admin, json=cfg or config())
    assert r.status_code == 200, r.text
    return dict(r.json())


def assign(api: Api, headers: dict[str, str], repo: str = "api", issue: int = 1, expect: int = 201,
           **body: Any) -> dict[str, Any]:
    if "machine" not in body and "any" not in body:
        body["any"] = True
    r = api.post(f"{ORCH}/assignments", headers=headers, json={"repo": repo, "issue": issue, **body})
    assert r.status_code == expect, r.text
    return dict(r.json())


def get(api: Api, assignment_id: str) -> dict[str, Any]:
    r = api.get(f"{ORCH}/assignments/{assignment_id}", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def orch(api: Api) -> Api:
    """The in-process hub API with the base config applied."""
    apply_config(api)
    return api


@pytest.fixture
def user(orch: Api) -> dict[str, str]:
    """Headers of a human's session that assigns work."""
    return orch.token("desk/claude-main")


@pytest.fixture
def laptop(orch: Api) -> Host:
    h = Host(orch, "laptop", orch.token("laptop/agent"))
    h.register()
    return h


@pytest.fixture
def server(orch: Api) -> Host:
    h = Host(orch, "server", orch.token("server/agent"))
    h.register()
    return h


@pytest.fixture
def live(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveHub]:
    """A real ``coord serve`` on the backend under test (PostgreSQL: the run's scratch database, emptied)."""
    from tests.conftest import _empty_pg

    args: tuple[str, ...] = ()
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        _empty_pg(url)
        args = ("--database-url", url)
    hub = LiveHub(tmp_path / "hub", args=args).start()
    try:
        yield hub
    finally:
        hub.stop()
