"""A worker token retired by ``POST /halt {"kill": true}`` is refused from the moment the halt is answered.

The halt route does not clear the token cache itself: the retirement reaches
it as an event, through the bus listener ``Authenticator.revocations``. So the
writer must hand the loop a batch's events before its answers (the loop runs
them first in, first out). The writer's after-commit hook is slowed here, as
a writer thread preempted between commit and hand-over would be: were the
answers handed over first, the halt's 201 would go out while the retired
token still authenticates (a reordering once made for push latency did that).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from coordhub.store import writer
from tests.conftest import Api
from tests.orchestrator.conftest import Host, assign

DELAY = 0.3  # seconds the after-commit hook is held back


@pytest.fixture
def slow_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    original = writer.BatchWriter._notify_commit
    slow = {"on": False}

    def delayed(self: writer.BatchWriter) -> None:
        if slow["on"]:
            time.sleep(DELAY)
        original(self)

    monkeypatch.setattr(writer.BatchWriter, "_notify_commit", delayed)
    yield slow


def test_a_token_retired_by_a_kill_is_refused_once_the_halt_is_answered(orch: Api, laptop: Host,
                                                                        user: dict[str, str],
                                                                        slow_hook: dict[str, bool]) -> None:
    assign(orch, user, issue=1, machine="laptop")
    job = laptop.next()
    assert job is not None
    worker = {"Authorization": f"Bearer {job['worker_token']}"}
    assert orch.get("/api/coord/halt", headers=worker).status_code == 200  # the token is in the cache now
    slow_hook["on"] = True
    try:
        r = orch.post("/api/coord/halt", headers=orch.admin,
                      json={"scope": "machine:laptop", "reason": "runaway", "kill": True})
    finally:
        slow_hook["on"] = False
    assert r.status_code == 201, r.text
    assert r.json()["killed"] == [job["id"]]
    assert orch.get("/api/coord/halt", headers=worker).status_code == 401
