"""A session's conversation list is found from its own rows (review 112: it tested every conversation stored,
11-12 ms for a session in one conversation after another session opened 20,000, one day of its quota, and
growing for good): the same answers as before over HTTP on both backends, and on SQLite a plan that searches
the indexes on the opener and on an accepted turn's addresses, with no scan of ``conversations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from coordhub.store.base import Executor
from coordhub.store.sqlite import SQLiteStore
from coordhub.store.tables.conversations import Conversations
from tests.conftest import Api
from tests.conversations.conftest import org
from tests.conversations.test_turns_api import URL, agent, send
from tests.store.test_lease_indexes import Recorder


def _ids(api: Api, headers: dict[str, str], **params: Any) -> list[str]:
    r = api.get(URL, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [c["conversation_id"] for c in r.json()]


def test_a_session_lists_the_conversations_it_opened_sent_in_or_was_sent(api: Api) -> None:
    career = agent(api, "ratio/career", "ratio", "career")
    homelab = agent(api, "velox/homelab", "velox", "homelab")
    other = agent(api, "ratio/other", "ratio", "other")
    for n in range(30):  # conversations career takes no part in
        assert send(api, other, "velox.homelab", org(conversation=f"busy-{n}")).status_code == 201
    assert send(api, career, "velox.homelab", org(conversation="mine")).status_code == 201
    assert send(api, other, "ratio.career", org(conversation="to-career")).status_code == 201
    # a refused turn makes no party of its sender (a query: the protocol version it does not speak)
    refused = send(api, homelab, "ratio.other", org(conversation="busy-0", version="9"))
    assert refused.status_code == 201 and refused.json()["decision"] != "process", refused.text
    assert sorted(_ids(api, career)) == ["mine", "to-career"]
    assert _ids(api, career, state="open", project="career") == ["mine"]
    assert len(_ids(api, homelab, limit=500)) == 31
    assert "to-career" not in _ids(api, homelab, limit=500)
    assert len(_ids(api, other, limit=500)) == 31
    assert len(set(_ids(api, other, limit=5))) == 5


def test_a_partys_listing_searches_indexes_and_scans_no_conversation(tmp_path: Path) -> None:
    recorder = Recorder()
    Conversations(cast(Executor, recorder)).listing(100, "open", "career", ("ratio/career", "ratio.career"))
    [(sql, params)] = recorder.queries
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    try:
        plan = store.read_sync(lambda tx: tx.ex.all("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        store.close()
    details = [str(r["detail"]) for r in plan]
    assert not any(d.startswith("SCAN conversations") or d.startswith("SCAN turns") for d in details), details
    for index in ("conversations_by_creator", "turns_by_origin", "turns_by_party"):
        assert any(f"USING INDEX {index}" in d or f"USING COVERING INDEX {index}" in d for d in details), details
