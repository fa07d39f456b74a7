"""A review of ``POST /api/coord/imports/seed002`` on both backends: a record's time the hub cannot render is
skipped with the reason, never stored for every later read of it to fail.

The items come from seed 002's Redis, which every agent of that fleet wrote to: an ISO 8601 time with an offset can
parse and still fall in the year 10000 in UTC (``9999-12-31T23:59:59-23:59``). Stored, an imported broadcast made
every session's inbox answer 500, and an imported presence the session list (found by a review). A notification's
key is never one of the messages' ledger.
"""

from __future__ import annotations

from coordhub.clock import parse_iso
from coordhub.core import imports
from coordhub.core.seed002 import content_digest, hub_message_id
from tests.conftest import Api
from tests.seed002.test_imports_api import message, outcomes, send

PAST_9999 = "9999-12-31T23:59:59-23:59"  # 10000-01-01T23:58:59Z


def test_a_time_past_the_year_9999_in_utc_skips_its_item(api: Api) -> None:
    out = send(api, message("far", to_session=None),
               message("far-ack", acked_by="orchestrator", acked_at=PAST_9999),
               {"kind": "presence", "session_id": "backend", "last_seen": PAST_9999},
               {"kind": "notification", "key": "n-far", "session_id": "orchestrator", "message_id": "far",
                "from_session": "backend", "requires_ack": False, "sent_at": PAST_9999},
               message("near", created_at="9999-12-31T23:59:59Z"))
    assert outcomes(out) == [("far", "imported"), ("far-ack", "skipped"), ("backend", "skipped"),
                             ("n-far", "skipped"), ("near", "imported")]
    assert all("2000 to 9999" in r["reason"] for r in out["results"][1:4]), out["results"]
    broadcast = send(api, message("far-broadcast", to_session=None, created_at=PAST_9999))
    assert outcomes(broadcast) == [("far-broadcast", "skipped")]
    reader = api.token("frontend")
    for path in ("/api/coord/messages", "/api/coord/presence", "/api/coord/notifications"):
        r = api.get(path, headers=reader)
        assert r.status_code == 200, (path, r.text)
    assert {m["origin_id"] for m in api.get("/api/coord/messages", headers=reader).json()} == {"far"}


def test_a_notification_key_cannot_stand_for_an_imported_message(api: Api) -> None:
    """Notifications and the messages' ledger share one table of keys: a notification under the ledger's key of a
    message made that message "already" imported and pruned, so it was never imported (found by a review)."""
    item = message("msg-x")
    created = parse_iso(item["created_at"])
    ledger = f"{imports.MESSAGE_KEY}msg-x#{content_digest(item['from_session'], created, 's', 'b')}"
    out = send(api, {"kind": "notification", "key": ledger, "session_id": "orchestrator", "message_id": "msg-x",
                     "from_session": "backend", "requires_ack": False, "sent_at": "2026-01-23T10:00:00Z"},
               {"kind": "notification", "key": imports.MESSAGE_ID_KEY + hub_message_id("msg-x"),
                "session_id": "orchestrator", "message_id": "msg-x", "from_session": "backend",
                "requires_ack": False, "sent_at": "2026-01-23T10:00:00Z"})
    assert [r["outcome"] for r in out["results"]] == ["skipped", "skipped"], out["results"]
    assert "ledger" in out["results"][0]["reason"]
    assert outcomes(send(api, item)) == [("msg-x", "imported")]
    got = api.get(f"/api/coord/messages/{hub_message_id('msg-x')}", headers=api.token("orchestrator"))
    assert got.status_code == 200 and got.json()["origin_id"] == "msg-x", got.text
