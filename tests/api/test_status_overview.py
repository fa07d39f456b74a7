"""``GET /api/coord/status`` is read and encoded off the event loop (review DoS: one token polling a
4 MB overview on SQLite, eight requests in flight, took ``/health`` from 1 ms to 0.5 s for everyone)."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub import jsonbytes
from coordhub.core import status
from tests.conftest import Api, on_event_loop, where_run

A = "A/claude-main"


def test_the_overview_is_read_and_encoded_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[bool] = []
    real_dumps = jsonbytes.dumps
    read = where_run(monkeypatch, status, "overview")

    def dumps(value: Any, **kwargs: Any) -> bytes:
        if isinstance(value, dict) and "active_locks" in value:
            encoded.append(on_event_loop())
        return real_dumps(value, **kwargs)

    monkeypatch.setattr(jsonbytes, "dumps", dumps)
    me = api.token(A)
    assert api.post("/api/coord/locks", json={"project_key": "p", "resource": "src/a.py"},
                    headers=me).status_code == 201
    r = api.get("/api/coord/status", params={"project_key": "p"}, headers=me)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    assert [x["resource"] for x in r.json()["active_locks"]] == ["src/a.py"]
    assert read == [False] and encoded == [False], (read, encoded)
