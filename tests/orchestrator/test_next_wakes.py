"""A host long-polling ``next`` (both backends) is woken by the events that can make an assignment runnable: a
released issue lease among them, a lease's grant or renewal never."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from coordhub.api.routes import orchestrator as routes
from tests.conftest import Api
from tests.orchestrator.conftest import Host, assign

WAIT = 8.0  # seconds the host waits: far longer than a wake takes


def test_a_released_issue_lease_wakes_a_waiting_host(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    """The host waited out its whole long-poll (``wait`` seconds, 30 for ``coord agent``) after the person let go
    of the issue, as no ``lease.`` event woke it."""
    human = orch.token("desk/claude-2")
    held = orch.post("/api/coord/locks", headers=human, json={"project_key": "api", "resource": "issue:api#1"})
    assert held.status_code == 201, held.text
    mine = assign(orch, user, issue=1)
    got: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        got["job"] = laptop.next(wait=WAIT)
        got["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # the host is waiting (were it not yet, its first look finds the issue free: no test)
    assert orch.delete(f"/api/coord/locks/{held.json()['id']}", headers=human).status_code == 200
    waiter.join(WAIT + 5)
    assert got["job"] is not None and got["job"]["id"] == mine["id"]
    assert got["seconds"] < WAIT / 2


def _event(kind: str, resource: object) -> dict[str, Any]:
    return {"id": 1, "kind": kind, "target": None, "session_id": "desk/claude-2", "project_key": "api",
            "payload": json.dumps({"resource": resource, "fence": 3})}


def test_only_an_issue_lease_s_end_wakes_next() -> None:
    """No wake storm: a lease's grant or renewal, and any file lease's end, the most frequent lease events, never
    make an assignment runnable; each woke every waiting host for a look."""
    ends = ("lease.released", "lease.expired", "lease.revoked", "lease.stale_takeover")
    assert all(routes.wakes_next(_event(kind, "issue:api#1")) for kind in ends)
    assert not any(routes.wakes_next(_event(kind, "./src/a.py")) for kind in ends)
    assert not any(routes.wakes_next(_event(kind, "issue:api#1")) for kind in ("lease.granted", "lease.renewed"))
    assert not any(kind.startswith(routes.WAKE_KINDS) for kind in (*ends, "lease.granted", "lease.renewed"))
    unreadable = {**_event("lease.released", "x"), "payload": "{"}
    assert routes.wakes_next(unreadable)  # a wasted look, never a missed wake


def test_a_long_poll_answers_at_once_when_the_hub_shuts_down(orch: Api, laptop: Host) -> None:
    """A hub told to stop (SIGTERM: ``stop_streams``) answers a waiting ``next`` at once, with nothing. The wait
    saw "shutting down" and returned without suspending, so the poll looked again at once, for its whole
    ``wait``, never yielding the event loop: a hub SIGTERMed with ``coord agent`` polling it answered nothing
    and never exited (found restarting the hub under a running agent)."""
    orch.client.app.state.streams.stop_streams()
    started = time.monotonic()
    assert laptop.next(wait=3.0) is None
    assert time.monotonic() - started < 1.0
