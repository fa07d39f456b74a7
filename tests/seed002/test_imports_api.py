"""``POST /api/coord/imports/seed002`` on both backends: what each item becomes, at most once, and what is refused."""

from __future__ import annotations

from typing import Any

from coordhub.core.seed002 import hub_message_id
from tests.conftest import Api

PATH = "/api/coord/imports/seed002"


def message(mid: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "message", "id": mid, "from_session": "backend", "to_session": "orchestrator", "subject": "s",
            "body": "b", "message_type": "GENERAL", "requires_ack": True, "created_at": "2026-01-23T10:00:00Z",
            **fields}


def send(api: Api, *items: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    r = api.post(PATH, json={"source": "test", "items": list(items)}, headers=headers or api.admin)
    assert r.status_code == 200, r.text
    return r.json()


def outcomes(out: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["ref"], r["outcome"]) for r in out["results"]]


def test_items_are_written_once_and_state_only_moves_forward(api: Api) -> None:
    first = send(api, message("msg-1"), message("msg-2", to_session=None, read_by=["frontend"]),
                 message("msg-1.c", from_session="orchestrator", to_session="backend", reply_to="msg-1",
                         read_by=["backend"], requires_ack=False))
    assert outcomes(first) == [("msg-1", "imported"), ("msg-2", "imported"), ("msg-1.c", "imported")]
    assert first["counts"] == {"imported": 3, "already": 0, "skipped": 0}
    orch = api.token("orchestrator")
    (m,) = api.get("/api/coord/messages", params={"unread_only": "true"}, headers=orch).json()[:1]
    assert m["id"] == hub_message_id("msg-1") and m["origin_id"] == "msg-1" and not m["read"]
    be = api.token("backend")
    (reply,) = [x for x in api.get("/api/coord/messages", headers=be).json() if x["reply_to"]]
    assert reply["thread_id"] == reply["reply_to"] == hub_message_id("msg-1") and reply["read"]
    fe = api.token("frontend")
    assert api.get("/api/coord/messages", params={"unread_only": "true"}, headers=fe).json() == []

    again = send(api, message("msg-1", read_by=["orchestrator"], acked_by="orchestrator",
                              acked_at="2026-01-24T00:00:00Z"))
    assert outcomes(again) == [("msg-1", "already")]
    got = api.get(f"/api/coord/messages/{hub_message_id('msg-1')}", headers=orch).json()
    assert got["acked_at"] == "2026-01-24T00:00:00Z"  # the ack arrived with the later import
    send(api, message("msg-1"))  # an older state never takes it back
    assert api.get(f"/api/coord/messages/{hub_message_id('msg-1')}", headers=orch).json()["acked_at"]


def test_a_seed_id_taken_by_another_message_gets_a_derived_id(api: Api) -> None:
    send(api, message("msg-dup", subject="from team A"))
    out = send(api, message("msg-dup", subject="from team B"))
    (r,) = out["results"]
    assert r["outcome"] == "imported" and r["id"] != hub_message_id("msg-dup") and "already names" in r["reason"]
    assert outcomes(send(api, message("msg-dup", subject="from team B"))) == [("msg-dup", "already")]


def test_bad_items_are_skipped_and_the_rest_written(api: Api) -> None:
    out = send(api, message("ok"), message("bad-name", from_session="qa team"), message("admin", to_session="admin"),
               message("bad-time", created_at="yesterday"), message("orphan", reply_to="never-imported"),
               message("wrong-acker", acked_by="frontend"))
    assert outcomes(out) == [("ok", "imported"), ("bad-name", "skipped"), ("admin", "skipped"),
                             ("bad-time", "skipped"), ("orphan", "skipped"), ("wrong-acker", "skipped")]
    reasons = [r.get("reason") or "" for r in out["results"]]
    assert "not a session id" in reasons[1] and "reserved" in reasons[2] and "ISO 8601" in reasons[3]
    assert "no message imported" in reasons[4] and "not the recipient" in reasons[5]
    malformed = api.post(PATH, json={"source": "t", "items": [{"kind": "message", "id": "x"}]}, headers=api.admin)
    assert malformed.status_code == 422


def test_only_an_admin_imports(api: Api) -> None:
    r = api.post(PATH, json={"source": "t", "items": [message("m")]}, headers=api.token("backend"))
    assert r.status_code == 403
    assert api.get(f"/api/coord/messages/{hub_message_id('m')}", headers=api.admin).status_code == 404


def test_presence_and_notifications(api: Api) -> None:
    be = api.token("backend")
    api.post("/api/coord/presence/register", json={}, headers=be)  # backend reports to the hub itself
    presence = [{"kind": "presence", "session_id": s, "last_seen": "2026-01-23T10:00:00Z", "client_session": "c"}
                for s in ("backend", "frontend")]
    note = {"kind": "notification", "key": "k1", "session_id": "frontend", "message_id": "msg-1",
            "message_type": "GENERAL", "from_session": "backend", "to_session": "frontend", "requires_ack": True,
            "sent_at": "2026-01-23T10:00:00Z"}
    out = send(api, *presence, note)
    assert outcomes(out) == [("backend", "skipped"), ("frontend", "imported"), ("k1", "imported")]
    assert outcomes(send(api, *presence, note)) == [("backend", "skipped"), ("frontend", "already"),
                                                    ("k1", "already")]
    rows = {p["session_id"]: p for p in api.get("/api/coord/presence", headers=be).json()}
    assert rows["frontend"]["state"] == "offline" and rows["frontend"]["last_heartbeat"] == "2026-01-23T10:00:00Z"
    assert rows["backend"]["state"] == "active"
    fe = api.token("frontend")
    (event,) = api.get("/api/coord/notifications", headers=fe).json()["events"]
    assert event["payload"]["origin_id"] == "msg-1" and event["target"] == "frontend"
    # the import is one public event with counts only (no subjects, no recipients)
    audit = api.get("/api/coord/audit", params={"kinds": "import."}, headers=api.admin).json()
    assert [e["payload"]["imported"] for e in audit] == [2]


def test_a_source_url_is_recorded_without_userinfo_query_or_fragment(api: Api) -> None:
    r = api.post(PATH, json={"source": "redis://default:pw1@h:6379/0?password=hunter2#x t:coord:*",
                             "items": [message("msg-src")]}, headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "redis://h:6379/0 t:coord:*"
    events = api.hub.query_sync(lambda tx, now: [e for e in tx.events.after(0, 1000) if e["kind"] == "import.applied"])
    assert len(events) == 1 and "hunter2" not in str(events[0]) and "pw1" not in str(events[0]), events


def test_an_item_refused_records_none_of_its_sessions(api: Api) -> None:
    def sessions() -> set[str]:
        rows = api.hub.query_sync(lambda tx, now: tx.ex.all("SELECT session_key FROM sessions"))
        return {str(r["session_key"]) for r in rows}

    send(api, message("msg-taken", subject="from team A"))
    before = sessions()
    out = send(api, message("msg-acked", from_session="new-sender", to_session="new-recipient",
                            acked_by="someone-else", acked_at="2026-01-24T00:00:00Z", read_by=["new-reader"]),
               message("msg-taken", subject="from team B", from_session="other-sender", to_session="other-recipient",
                       reply_to="msg-never-imported"))
    assert [r["outcome"] for r in out["results"]] == ["skipped", "skipped"], out
    assert "is not the recipient" in out["results"][0]["reason"]
    assert "names no message imported" in out["results"][1]["reason"]
    assert sessions() == before  # neither item wrote a session's spelling
    ok = send(api, message("msg-acked-ok", from_session="New-Sender", to_session="new-recipient",
                           acked_by="NEW-RECIPIENT", acked_at="2026-01-24T00:00:00Z"))
    assert [r["outcome"] for r in ok["results"]] == ["imported"], ok  # an ack by the recipient in another case
    assert {"new-sender", "new-recipient"} <= sessions()


def test_message_paths_take_an_imported_messages_seed_id_as_its_hub_id(api: Api) -> None:
    """`GET /messages/msg-…`, `PUT …/read` and `POST …/ack` take the seed id of an imported message (they answered
    422, not a UUID, while `reply_to` and `thread_id` took it), with the hub id's authorization: another session's
    message answers 404 exactly as a seed id no message has (no oracle); a seed id too long for any import is no id."""
    send(api, message("msg-a810fae1"), message("msg-b0000002", to_session="frontend"))
    orch, fe = api.token("orchestrator"), api.token("frontend")
    got = api.get("/api/coord/messages/msg-a810fae1", headers=orch)
    assert got.status_code == 200 and got.json()["id"] == hub_message_id("msg-a810fae1"), got.text
    read = api.put("/api/coord/messages/msg-a810fae1/read", headers=orch)
    assert read.status_code == 200 and read.json()["read"] and not read.json()["already"], read.text
    acked = api.post("/api/coord/messages/msg-a810fae1/ack", headers=orch)
    assert acked.status_code == 200 and acked.json()["acked_at"] is not None, acked.text
    theirs = [api.get("/api/coord/messages/msg-b0000002", headers=orch),
              api.put("/api/coord/messages/msg-b0000002/read", headers=orch),
              api.post("/api/coord/messages/msg-b0000002/ack", headers=orch)]
    missing = [api.get("/api/coord/messages/msg-ffff0000", headers=orch),
               api.put("/api/coord/messages/msg-ffff0000/read", headers=orch),
               api.post("/api/coord/messages/msg-ffff0000/ack", headers=orch)]
    for mine, none in zip(theirs, missing, strict=True):
        assert mine.status_code == none.status_code == 404, (mine.text, none.text)
        assert mine.json()["error"]["code"] == none.json()["error"]["code"], (mine.text, none.text)
        # each named as typed, not by the hub id it maps to, and alike but for it
        assert mine.json()["error"]["message"] == "no message 'msg-b0000002' for orchestrator", mine.text
        assert none.json()["error"]["message"] == "no message 'msg-ffff0000' for orchestrator", none.text
    assert api.get("/api/coord/messages/msg-b0000002", headers=fe).status_code == 200  # its recipient's
    assert api.get("/api/coord/messages/msg-" + "a" * 200, headers=orch).status_code == 422
    assert api.get("/api/coord/messages/nope", headers=orch).status_code == 422
