"""Seed 001's work-item calls as the seed writes them, on a real ``coord serve --no-auth`` on loopback.

Seed 001's server asked for no token on its private network, and its work-item calls (``POST
/api/coord/work-items``, ``PATCH /api/coord/work-items/<id>``) name no session; the one session its workflows
and work items name is the workflow's ``created_by``. A ``--no-auth`` hub refused them (422 "name your
session"); now such a call acts as the workflow's creator. A hub that requires tokens still refuses a call
without one (401), and a token is still the only actor it takes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub, scratch_database

DESKTOP, HOWARD = "DESKTOP-0O8A1RL/claude-main", "HOWARD-HOME/claude-main"
WORKFLOW = {"project_key": "gururmm", "name": "Network Discovery Phase 1",
            "description": "TCP probe scanner + DB layer + API + dashboard", "status": "planning",
            "created_by": DESKTOP}


def item(workflow_id: str) -> dict[str, object]:
    """Seed 001's "Add work items to a workflow" body, field for field."""
    return {"workflow_id": workflow_id, "project_key": "gururmm",
            "title": "Write migrations 017-019 for discovery tables", "status": "pending", "priority": 10}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """One ``coord serve --no-auth`` per backend."""
    root = tmp_path_factory.mktemp(f"seed001-open-{request.param}")
    with scratch_database() if request.param == "postgres" else contextlib.nullcontext() as url:
        hub = LiveHub(root / "hub", args=("--no-auth", *(("--database-url", url) if url else ()))).start()
        try:
            yield hub
        finally:
            hub.stop()


def test_the_seeds_bare_work_item_calls_act_as_the_workflows_creator(open_hub: LiveHub) -> None:
    with httpx2.Client(base_url=open_hub.url) as seed:  # no token, no session header: the seed's own client
        wf = seed.post("/api/coord/workflows", json=WORKFLOW)
        assert wf.status_code == 201, wf.text
        added = seed.post("/api/coord/work-items", json=item(wf.json()["id"]))
        assert added.status_code == 201, added.text  # before: 422, "name your session in created_by, …"
        assert (added.json()["created_by"], added.json()["updated_by"]) == (DESKTOP, DESKTOP)
        done = seed.patch(f"/api/coord/work-items/{added.json()['id']}", json={"status": "completed"})
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["updated_by"]) == ("completed", DESKTOP)
        # a session named anywhere is still the actor
        named = seed.patch(f"/api/coord/work-items/{added.json()['id']}", json={"status": "in_progress"},
                           headers={"X-Coord-Session": HOWARD})
        assert named.status_code == 200 and named.json()["updated_by"] == HOWARD, named.text
        shown = seed.get(f"/api/coord/workflows/{wf.json()['id']}").json()
        assert [(i["title"], i["status"]) for i in shown["work_items"]] == [
            ("Write migrations 017-019 for discovery tables", "in_progress")]


def test_a_bare_call_for_an_unknown_workflow_or_item_is_404_and_writes_nothing(open_hub: LiveHub) -> None:
    with httpx2.Client(base_url=open_hub.url) as seed:
        missing = seed.post("/api/coord/work-items", json=item(str(uuid.uuid4())))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found", missing.text
        gone = seed.patch(f"/api/coord/work-items/{uuid.uuid4()}", json={"status": "completed"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found", gone.text


def test_a_hub_with_tokens_still_refuses_the_bare_calls_and_takes_only_the_token(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "hub").start()
    try:
        desktop = {"Authorization": f"Bearer {hub.token(DESKTOP)}"}
        howard = {"Authorization": f"Bearer {hub.token(HOWARD)}"}
        with httpx2.Client(base_url=hub.url) as h:
            wf = h.post("/api/coord/workflows", json=WORKFLOW, headers=desktop)
            assert wf.status_code == 201, wf.text
            bare = h.post("/api/coord/work-items", json=item(wf.json()["id"]))
            assert bare.status_code == 401, bare.text
            as_howard = h.post("/api/coord/work-items", json=item(wf.json()["id"]), headers=howard)
            assert as_howard.status_code == 201 and as_howard.json()["created_by"] == HOWARD, as_howard.text
            patched = h.patch(f"/api/coord/work-items/{as_howard.json()['id']}", json={"status": "completed"})
            assert patched.status_code == 401, patched.text
    finally:
        hub.stop()
