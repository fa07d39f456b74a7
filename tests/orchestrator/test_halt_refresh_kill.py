"""``POST /halt`` with ``refresh`` and ``kill`` on a standing halt: who may, and whose halt it stays.

A refresh (seed 004's second halt) passes the hub's halt check (``Exempt.REFRESH``), so its ``kill`` is the one way
to stop the workers a standing halt paused. It is allowed exactly to who may kill in that scope (may halt it, not
an orchestrator worker or host: ``killswitch``) and may lift the standing halt (the refresh's own rule): a peer of
the machine may, a worker, the host, another machine's session and a session under an admin's halt may not. The
halt stays its author's: the refresher is ``refreshed_by``, not ``halted_by`` (it was shown as who stopped the
machine). docs/api.md's halt table says so.
"""

from __future__ import annotations

from tests.conftest import Api
from tests.orchestrator.conftest import Host, assign, get

HALTS = "/api/coord/halt"
SCOPE = "machine:laptop"


def refresh_kill(orch: Api, who: dict[str, str], reason: str = "kill them") -> tuple[int, dict[str, object]]:
    r = orch.post(HALTS, headers=who, json={"scope": SCOPE, "reason": reason, "refresh": True, "kill": True})
    return r.status_code, r.json()


def test_kill_on_a_refresh_is_for_who_may_kill_and_the_halt_stays_its_authors(orch: Api, laptop: Host,
                                                                             user: dict[str, str]) -> None:
    assign(orch, user, issue=1, machine="laptop")
    job = laptop.next()
    assert job is not None
    laptop.report(job, "running")
    worker = {"Authorization": f"Bearer {job['worker_token']}"}
    author, peer, elsewhere = orch.token("laptop/claude-main"), orch.token("laptop/claude-2"), orch.token("desk/me")
    assert orch.post(HALTS, headers=author, json={"scope": SCOPE, "reason": "runaway worker"}).status_code == 201
    for who, status in ((worker, 423), (laptop.headers, 423), (elsewhere, 403)):
        code, body = refresh_kill(orch, who)
        assert code == status, body
        assert get(orch, job["id"])["state"] == "running"  # nothing killed
    code, body = refresh_kill(orch, peer, "it loops: stop it")
    assert code == 200 and body["killed"] == [job["id"]], body
    assert (body["halted_by"], body["refreshed_by"], body["reason"]) == ("laptop/claude-main", "laptop/claude-2",
                                                                         "it loops: stop it"), body
    assert get(orch, job["id"])["state"] == "queued"
    standing = orch.get(HALTS, headers=author).json()["halts"]
    assert [(h["scope"], h["halted_by"]) for h in standing] == [(SCOPE, "laptop/claude-main")], standing
    # an admin's refresh takes a session's halt over; then the machine's sessions may neither refresh nor kill
    code, body = refresh_kill(orch, orch.admin, "ops: hold")
    assert code == 200 and (body["halted_by"], body["refreshed_by"]) == ("admin", "admin"), body
    for who in (author, peer):
        code, body = refresh_kill(orch, who)
        assert code == 423 and body["error"]["halt"]["reason"] == "ops: hold", body
