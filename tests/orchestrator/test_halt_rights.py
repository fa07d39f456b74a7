"""The orchestrator's own sessions may not lift a halt, their own machine's included.

A person halts ``machine:laptop`` to stop a runaway worker there; were the
worker's token (or the host's, which runs it) able to call ``/resume`` on
its own machine, the brake would be released by what it was pulled on.
Orchestrator sessions are recognised in any letter case: a token stored
under a spelling first seen in capitals acts under that spelling.
"""

from __future__ import annotations

from coordhub.core.identity import orchestrator_role
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, assign


def test_neither_a_worker_nor_its_host_can_lift_its_machines_halt(orch: Api, laptop: Host,
                                                                  user: dict[str, str]) -> None:
    assign(orch, user, issue=1, machine="laptop")
    job = laptop.next()
    assert job is not None
    laptop.report(job, "running")
    worker = {"Authorization": f"Bearer {job['worker_token']}"}
    person = orch.token("laptop/claude-main")
    r = orch.post("/api/coord/halt", headers=person, json={"scope": "machine:laptop", "reason": "runaway worker"})
    assert r.status_code == 201, r.text
    assert laptop.beat()["paused"] is True
    for who in (worker, laptop.headers):
        r = orch.post("/api/coord/resume", headers=who, json={"scope": "machine:laptop"})
        assert r.status_code == 403, r.text
        assert "orchestrator" in r.json()["error"]["message"]
    assert laptop.beat()["paused"] is True  # the person's halt still stands
    r = orch.post("/api/coord/resume", headers=person, json={"scope": "machine:laptop"})
    assert r.status_code == 200, r.text
    assert laptop.beat()["paused"] is False


def test_orchestrator_sessions_are_known_in_any_letter_case() -> None:
    assert orchestrator_role("laptop/agent") == "host"
    assert orchestrator_role("LAPTOP/AGENT") == "host"
    assert orchestrator_role("laptop/worker-0a1b2c3d") == "worker"
    assert orchestrator_role("LAPTOP/WORKER-0A1B2C3D") == "worker"
    for person in ("laptop/claude-main", "laptop/agents", "laptop/worker-0a1b2c3", "agent", "a/b/agent"):
        assert orchestrator_role(person) is None, person


def test_a_worker_spelled_in_capitals_may_not_direct_work(orch: Api, user: dict[str, str]) -> None:
    """A token named in capitals (a session first seen so) is still a worker's: it may not assign."""
    capitals = orch.token("LAPTOP/WORKER-0A1B2C3D")
    r = orch.post(f"{ORCH}/assignments", headers=capitals, json={"repo": "api", "issue": 7, "machine": "laptop"})
    assert r.status_code == 403, r.text
    assert "orchestrator worker" in r.json()["error"]["message"]
