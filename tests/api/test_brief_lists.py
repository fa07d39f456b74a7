"""``?brief=true`` lists leave out the long text the dashboard never shows, so an answer holds its rows, not their
notes (review: one open Work view re-read every page of 512 KiB todo sources on each todo event)."""

from __future__ import annotations

from tests.conftest import Api

BIG = "x" * 500 * 1024  # seven or eight of these fill one answer's ~4 MiB


def test_brief_lists_carry_every_row_and_none_of_the_long_text(api: Api) -> None:
    me = api.token("m1/agent")
    flows = []
    for i in range(10):
        assert api.post("/api/coord/todos", headers=me, json={"text": f"todo {i}", "source": BIG}).status_code == 201
        assert api.put("/api/coord/components", headers=me, json={"project_key": "web", "component": f"c{i}",
                                                      "state": "deployed", "notes": BIG}).status_code == 200
        r = api.post("/api/coord/workflows", headers=me,
                     json={"project_key": "web", "name": f"flow {i}", "description": BIG})
        assert r.status_code == 201, r.text
        flows.append(r.json()["id"])
        assert api.post("/api/coord/work-items", headers=me, json={"workflow_id": flows[0], "title": f"item {i}",
                                                       "description": BIG}).status_code == 201
    lists = {"/api/coord/todos": ("source", "text"), "/api/coord/components": ("notes", "component"),
             "/api/coord/workflows": ("description", "name"),
             f"/api/coord/workflows/{flows[0]}": ("description", "title")}
    for path, (long, short) in lists.items():
        full = api.get(path, headers=me)
        assert full.status_code == 200, full.text
        rows = full.json()["work_items"] if "work_items" in full.json() else full.json()
        assert len(rows) < 10 and "Coord-Next-Cursor" in full.headers, path  # the text fills the answer
        assert all(r[long] == BIG for r in rows)
        brief = api.get(path, params={"brief": "true"}, headers=me)
        assert brief.status_code == 200, brief.text
        body = brief.json()
        rows = body["work_items"] if isinstance(body, dict) else body
        assert len(rows) == 10 and "Coord-Next-Cursor" not in brief.headers, path
        assert all(r[long] is None and r[short] for r in rows), path
        if isinstance(body, dict):
            assert body["description"] is None and body["name"] == "flow 0"
        assert len(brief.content) < 100_000, path
