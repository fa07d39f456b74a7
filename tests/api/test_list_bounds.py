"""Bounds on what one list answer of messages, workflows, components and todos carries (review DoS: bodies of
512 KiB made one inbox or ``/workflows`` answer 52 MB): about 4 MiB of text per answer, at least one row, and
the way on to the rest; over HTTP on both backends."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conftest import Api

A = "A/claude-main"
B = "B/claude-main"
MESSAGES = "/api/coord/messages"
BIG = 500 * 1024  # characters of one body or description: under the 512 KiB a field may hold
MOST = 4.5 * 2**20  # bytes one answer may take: 4 MiB of text and what one more row's short fields add
# about BIG bytes of JSON each, in characters of 3, 4 and 6 bytes (a control character is escaped as \u0001):
# counted in characters, 20 such bodies made one answer of 10 MB
WIDE = ("漢" * (BIG // 3), "😀" * (BIG // 4), "\x01" * (BIG // 6))


def _all(api: Api, path: str, params: dict[str, Any], header: str, param: str,
         headers: dict[str, str]) -> list[list[dict[str, Any]]]:
    """Every answer of a list, following ``header`` into ``param`` until it is gone; each answer checked for size."""
    pages = []
    while True:
        r = api.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert len(r.content) <= MOST, len(r.content)
        pages.append(r.json())
        if header not in r.headers:
            return pages
        params = {**params, param: r.headers[header]}


def _send(api: Api, n: int, frm: dict[str, str]) -> list[int]:
    seqs = []
    for i in range(n):
        r = api.post(MESSAGES, json={"to_session": A, "subject": f"m{i}", "body": str(i % 10) * BIG}, headers=frm)
        assert r.status_code == 201, r.text
        seqs.append(r.json()["seq"])
    return seqs


def test_inbox_answers_are_bounded_and_page_on(api: Api) -> None:
    a, b = api.token(A), api.token(B)
    seqs = _send(api, 20, b)
    unread = _all(api, MESSAGES, {"to_session": A, "unread_only": "true", "limit": 100}, "Coord-Next-After-Seq",
                  "after_seq", a)
    assert len(unread) == 3 and all(len(p) >= 1 for p in unread)
    assert [m["seq"] for p in unread for m in p] == seqs  # each once, oldest first
    assert all(m["body"] == str(i % 10) * BIG for i, m in enumerate(m for p in unread for m in p))
    # reading marked nothing read: every message is still unread, and a seed 001 client reading again gets the
    # first page again
    assert api.get(f"{MESSAGES}/unread-count", headers=a).json()["unread"] == 20
    again = api.get(MESSAGES, params={"to_session": A, "unread_only": "true"}, headers=a)
    assert [m["seq"] for m in again.json()] == [m["seq"] for m in unread[0]]
    history = _all(api, MESSAGES, {"to_session": A}, "Coord-Next-Before-Seq", "before_seq", a)
    assert len(history) == 3 and [m["seq"] for p in history for m in p] == seqs[::-1]
    # the row limit still holds, and says so the same way
    few = _all(api, MESSAGES, {"to_session": A, "limit": 7}, "Coord-Next-Before-Seq", "before_seq", a)
    assert [len(p) for p in few] == [7, 7, 6]
    # the long poll answers in the same bounds
    r = api.get(f"{MESSAGES}/wait", params={"timeout": 0, "after_seq": seqs[3]}, headers=a)
    assert len(r.content) <= MOST and r.json()[0]["seq"] == seqs[4]
    assert r.headers["Coord-Next-After-Seq"] == str(r.json()[-1]["seq"])
    last = api.get(f"{MESSAGES}/wait", params={"timeout": 0, "after_seq": seqs[15]}, headers=a)
    assert [m["seq"] for m in last.json()] == seqs[16:] and "Coord-Next-After-Seq" not in last.headers


def test_unshown_answers_are_bounded_and_lose_nothing(api: Api) -> None:
    a, b = api.token(A), api.token(B)
    seqs = _send(api, 20, b)
    shown: list[int] = []
    answers: list[tuple[int, int]] = []  # (messages, more) of each answer
    while True:
        r = api.post(f"{MESSAGES}/unshown", json={"limit": 100}, headers=a)
        assert r.status_code == 200, r.text
        assert len(r.content) <= MOST, len(r.content)
        out = r.json()
        if not out["messages"]:
            assert out["more"] == 0
            break
        shown += [m["seq"] for m in out["messages"]]
        answers.append((len(out["messages"]), out["more"]))
    # each message shown once, oldest first; ``more`` counted exactly what was left for the next call
    assert shown == seqs and len(answers) == 3
    assert [more for _, more in answers] == [20 - sum(n for n, _ in answers[:i + 1]) for i in range(3)]
    # shown is not read: all 20 are still unread
    assert api.get(f"{MESSAGES}/unread-count", headers=a).json()["unread"] == 20


def _records(pages: list[Any], key: str = "") -> list[dict[str, Any]]:
    return [x for p in pages for x in (p[key] if key else p)]


def test_workflow_lists_are_bounded_and_page_on(api: Api) -> None:
    me = api.token(A)
    made = [api.post("/api/coord/workflows", json={"project_key": "p", "name": f"w{i}", "description": "d" * BIG},
                     headers=me).json()["id"] for i in range(12)]
    pages = _all(api, "/api/coord/workflows", {"project_key": "p"}, "Coord-Next-Cursor", "cursor", me)
    got = _records(pages)
    assert [len(p) for p in pages] == [8, 4] and sorted(x["id"] for x in got) == sorted(made)
    assert got == sorted(got, key=lambda x: (x["created_at"], x["id"]))  # oldest first, each once
    # the overview keeps its share small and says what it left out
    status = api.get("/api/coord/status", headers=me)
    assert len(status.content) <= 1.5 * 2**20
    assert len(status.json()["active_workflows"]) == 2 and status.json()["active_workflows_more"] is True
    assert api.get("/api/coord/status", params={"project_key": "q"}, headers=me).json()["active_workflows_more"] \
        is False
    # a workflow's work items page the same way, the workflow coming with each answer
    for i in range(12):
        r = api.post("/api/coord/work-items", json={"workflow_id": made[0], "title": f"t{i}", "priority": i % 3,
                                                    "description": "i" * BIG}, headers=me)
        assert r.status_code == 201, r.text
    pages = _all(api, f"/api/coord/workflows/{made[0]}", {}, "Coord-Next-Cursor", "cursor", me)
    items = _records(pages, "work_items")
    assert [len(p["work_items"]) for p in pages] == [8, 4] and all(p["id"] == made[0] for p in pages)
    assert sorted(x["title"] for x in items) == sorted(f"t{i}" for i in range(12))
    assert items == sorted(items, key=lambda x: (-x["priority"], x["created_at"], x["id"]))


def test_component_and_todo_lists_are_bounded_and_page_on(api: Api) -> None:
    me = api.token(A)
    for i in range(12):
        r = api.put("/api/coord/components", json={"project_key": f"p{i % 2}", "component": f"c{i}",
                                                   "state": "deployed", "notes": "n" * BIG}, headers=me)
        assert r.status_code == 200, r.text
        r = api.post("/api/coord/todos", json={"text": f"t{i}", "source": "s" * BIG}, headers=me)
        assert r.status_code == 201, r.text
    pages = _all(api, "/api/coord/components", {}, "Coord-Next-Cursor", "cursor", me)
    got = [(x["project_key"], x["component"]) for x in _records(pages)]
    assert [len(p) for p in pages] == [8, 4] and len(set(got)) == 12
    assert got == sorted(got, reverse=True)  # one clock time here: the keys break the tie, newest first
    status = api.get("/api/coord/status", headers=me).json()
    assert len(status["components"]) == 2
    pages = _all(api, "/api/coord/todos", {}, "Coord-Next-Cursor", "cursor", me)
    assert [len(p) for p in pages] == [8, 4]
    assert sorted(x["text"] for x in _records(pages)) == sorted(f"t{i}" for i in range(12))
    # a cursor is this list's or refused, never a 500
    for bad in ("x", "W10", "WyJhIiwxXQ", "WzEsIngiLCJ5Il0", "WzFlOTk5LCJ4Il0"):
        r = api.get("/api/coord/todos", params={"cursor": bad}, headers=me)
        assert r.status_code in (400, 422) and "cursor" in r.text, (bad, r.text)
    r = api.get("/api/coord/components", params={"cursor": _cursor_of(api, me)}, headers=me)
    assert r.status_code in (400, 422), r.text


def _cursor_of(api: Api, me: dict[str, str]) -> str:
    """A todo list's cursor (two columns), which the component list (three) must refuse."""
    return str(api.get("/api/coord/todos", headers=me).headers["Coord-Next-Cursor"])


def test_cut_answers_lose_no_broadcast(api: Api) -> None:
    """Broadcasts and direct messages interleaved: a cut unshown answer must not move the shown cursor past a
    broadcast it left out, and unread pages must carry each once."""
    a, b = api.token(A), api.token(B)
    seqs = []
    for i in range(12):
        to = A if i % 2 else None
        r = api.post(MESSAGES, json={"to_session": to, "subject": f"m{i}", "body": "b" * BIG}, headers=b)
        assert r.status_code == 201, r.text
        seqs.append(r.json()["seq"])
    unread = _all(api, MESSAGES, {"to_session": A, "unread_only": "true"}, "Coord-Next-After-Seq", "after_seq", a)
    assert [len(p) for p in unread] == [8, 4] and [m["seq"] for p in unread for m in p] == seqs
    shown: list[int] = []
    while (out := api.post(f"{MESSAGES}/unshown", json={"limit": 500}, headers=a).json())["messages"]:
        shown += [m["seq"] for m in out["messages"]]
    assert shown == seqs


def test_answers_are_bounded_in_encoded_bytes(api: Api) -> None:
    """Non-ASCII and escaped bodies: each answer stays within its bytes, and the cursor and ``more`` still carry
    every message once."""
    a, b = api.token(A), api.token(B)
    seqs, bodies = [], []
    for i in range(20):
        bodies.append(WIDE[i % 3])
        r = api.post(MESSAGES, json={"to_session": A, "subject": f"m{i}", "body": bodies[-1]}, headers=b)
        assert r.status_code == 201, r.text
        seqs.append(r.json()["seq"])
    unread = _all(api, MESSAGES, {"to_session": A, "unread_only": "true", "limit": 100}, "Coord-Next-After-Seq",
                  "after_seq", a)
    assert [len(p) for p in unread] == [8, 8, 4]
    assert [m["seq"] for p in unread for m in p] == seqs and [m["body"] for p in unread for m in p] == bodies
    history = _all(api, MESSAGES, {"to_session": A}, "Coord-Next-Before-Seq", "before_seq", a)
    assert [len(p) for p in history] == [8, 8, 4] and [m["seq"] for p in history for m in p] == seqs[::-1]
    r = api.get(f"{MESSAGES}/wait", params={"timeout": 0, "after_seq": seqs[3]}, headers=a)
    assert len(r.content) <= MOST and [m["seq"] for m in r.json()] == seqs[4:12]
    shown: list[int] = []
    answers: list[tuple[int, int]] = []
    while (r := api.post(f"{MESSAGES}/unshown", json={"limit": 100}, headers=a)).json()["messages"]:
        assert len(r.content) <= MOST, len(r.content)
        shown += [m["seq"] for m in r.json()["messages"]]
        answers.append((len(r.json()["messages"]), r.json()["more"]))
    assert shown == seqs and answers == [(8, 12), (8, 4), (4, 0)]


def test_record_lists_and_status_are_bounded_in_encoded_bytes(api: Api) -> None:
    me = api.token(A)
    for i in range(12):
        r = api.post("/api/coord/workflows", json={"project_key": "p", "name": f"w{i}", "description": WIDE[0]},
                     headers=me)
        assert r.status_code == 201, r.text
        r = api.put("/api/coord/components", json={"project_key": "p", "component": f"c{i}", "state": "deployed",
                                                   "notes": WIDE[1]}, headers=me)
        assert r.status_code == 200, r.text
        r = api.post("/api/coord/todos", json={"text": f"t{i}", "source": WIDE[2]}, headers=me)
        assert r.status_code == 201, r.text
    for path, name, prefix in (("/api/coord/workflows", "name", "w"), ("/api/coord/components", "component", "c"),
                               ("/api/coord/todos", "text", "t")):
        pages = _all(api, path, {}, "Coord-Next-Cursor", "cursor", me)
        assert [len(p) for p in pages] == [8, 4], path
        assert sorted(x[name] for x in _records(pages)) == sorted(f"{prefix}{i}" for i in range(12))
    status = api.get("/api/coord/status", headers=me)
    assert len(status.content) <= 2.1 * 2**20, len(status.content)  # two sections of about 1 MiB
    assert len(status.json()["components"]) == 2 and len(status.json()["active_workflows"]) == 2



def _cursor(values: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_a_cursor_holding_a_nul_or_a_lone_surrogate_is_refused_not_a_500(api: Api) -> None:
    """A cursor is the client's to forge: a string in it no column can hold (NUL, which PostgreSQL refuses; a lone
    surrogate, which UTF-8 cannot encode) answers 422 ``cursor`` (review: both were a 500)."""
    me = api.token(A)
    r = api.post("/api/coord/workflows", json={"project_key": "p", "name": "w"}, headers=me)
    assert r.status_code == 201, r.text
    wf = r.json()["id"]
    for text in ("\ud800", "a\x00b"):
        for path, values in (("/api/coord/todos", [1.0, text]), ("/api/coord/workflows", [1.0, text]),
                             ("/api/coord/components", [1.0, text, text]),
                             (f"/api/coord/workflows/{wf}", [1, 1.0, text])):
            ok = api.get(path, params={"cursor": _cursor([v if v != text else "x" for v in values])}, headers=me)
            assert ok.status_code == 200, (path, ok.text)  # the same cursor with a plain string is this list's
            r = api.get(path, params={"cursor": _cursor(values)}, headers=me)
            assert r.status_code == 422 and "cursor" in r.text, (path, repr(text), r.status_code, r.text[:300])
