"""Seed 000's todo create as its script sends it, over REST on a real ``coord serve --no-auth``.

Seed 000's script names no session when it creates a todo: it fills ``created_by_user`` and
``created_by_machine`` from identity.json, and its session is ``<MACHINE>/claude-main``. A ``--no-auth`` hub
refused the call (422 "name your session in created_by, session_id …"); now it acts as that session. A session
named anywhere is still the actor, and a hub with tokens takes only the token's session.
"""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.conftest import LiveHub

SEED_TODO = {"text": "t", "created_by_user": "q", "created_by_machine": "Q"}


def test_a_todo_naming_only_its_machine_acts_as_that_machines_main_session(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "hub", args=("--no-auth",)).start()
    try:
        with httpx2.Client(base_url=hub.url) as seed:  # no token, no session header: the seed's own call
            r = seed.post("/api/coord/todos", json=SEED_TODO)
            assert r.status_code == 201, r.text  # before: 422, "name your session in created_by, session_id …"
            assert (r.json()["created_by"], r.json()["created_by_machine"], r.json()["created_by_user"]) == (
                "Q/claude-main", "Q", "q")
            # a session named anywhere is still the actor, and its machine must agree
            named = seed.post("/api/coord/todos", json={**SEED_TODO, "created_by": "Q/reviewer"})
            assert named.status_code == 201 and named.json()["created_by"] == "Q/reviewer", named.text
            header = seed.post("/api/coord/todos", json=SEED_TODO, headers={"X-Coord-Session": "R/claude-main"})
            assert header.status_code == 403, header.text
            # naming nobody and no machine is still refused, saying how to name a session
            bare = seed.post("/api/coord/todos", json={"text": "t"})
            assert bare.status_code == 422 and "name your session" in bare.text, bare.text
            # a machine that makes no session id is refused by the session-id rule, naming the field
            odd = seed.post("/api/coord/todos", json={**SEED_TODO, "created_by_machine": "Q R"})
            assert odd.status_code == 422 and "created_by_machine" in odd.text, odd.text
    finally:
        hub.stop()


def test_a_hub_with_tokens_still_takes_only_the_tokens_session(live_hub: LiveHub) -> None:
    with httpx2.Client(base_url=live_hub.url) as client:
        assert client.post("/api/coord/todos", json=SEED_TODO).status_code == 401
        mine = {"Authorization": f"Bearer {live_hub.token('Q/claude-main')}"}
        r = client.post("/api/coord/todos", json=SEED_TODO, headers=mine)
        assert r.status_code == 201 and r.json()["created_by"] == "Q/claude-main", r.text
        other = {"Authorization": f"Bearer {live_hub.token('R/claude-main')}"}
        r = client.post("/api/coord/todos", json=SEED_TODO, headers=other)
        assert r.status_code == 403, r.text  # Q is not R's machine
