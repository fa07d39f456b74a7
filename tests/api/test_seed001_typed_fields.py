"""A number or a boolean sent as a string: request bodies convert no types (``Strict``), where seed 001's server
(FastAPI with pydantic's lax mode) read ``"ttl_hours": "2"`` as 2. The refusal said "Input should be a valid
number" about ``"2"``; it now says what to send instead, and that the hub converts no types."""

from __future__ import annotations

from tests.conftest import Api


def test_a_number_sent_as_a_string_is_refused_saying_to_send_a_json_number(api: Api) -> None:
    me = api.token("DESKTOP-0O8A1RL/claude-main")
    r = api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "server/src/", "ttl_hours": "2"},
                 headers=me)
    assert r.status_code == 422
    assert r.json()["error"]["message"] == ("ttl_hours: send a JSON number (2, 0.5), not a string ('2'): the hub "
                                            "converts no types")
    wf = api.post("/api/coord/workflows", json={"project_key": "gururmm", "name": "w"}, headers=me).json()
    r = api.post("/api/coord/work-items", json={"workflow_id": wf["id"], "title": "t", "priority": "1" * 60},
                 headers=me)
    assert r.status_code == 422
    assert r.json()["error"]["problems"] == [{"field": "priority", "problem": (
        f"priority: send a JSON integer (10), not a string ('{'1' * 40}…'): the hub converts no types")}]
    r = api.post("/api/coord/messages", json={"subject": "s", "requires_ack": "true"}, headers=me)
    assert r.status_code == 422 and "send JSON true or false, not a string ('true')" in r.json()["error"]["message"]
    # a value of another wrong type keeps pydantic's own words; nothing was written
    r = api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "a", "ttl_hours": [2]}, headers=me)
    assert r.status_code == 422 and r.json()["error"]["message"] == "ttl_hours: Input should be a valid number"
    assert api.get("/api/coord/locks", headers=me).json() == []
