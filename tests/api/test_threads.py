"""Reading a thread end to end: a real ``coord serve`` on loopback over SQLite and PostgreSQL, reached by raw
HTTP (``GET /api/coord/messages?thread_id=``), the Python client and the ``coord`` CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client.client import CoordClient, HubError
from coordhub.client.settings import ClientSettings
from coordhub.core import messages
from tests.conftest import Api, LiveHub, scratch_database, where_run
from tests.coordcli import Coord, isolated_env

A, B, C = "HOST-A/claude-main", "HOST-B/claude-main", "HOST-C/claude-main"
MESSAGES = "/api/coord/messages"


@dataclass
class Served:
    """A live hub and a token per session (and the admin's)."""

    hub: LiveHub
    tokens: dict[str, str]

    def as_(self, session: str) -> httpx2.Client:
        return httpx2.Client(base_url=self.hub.url, headers={"Authorization": f"Bearer {self.tokens[session]}"})

    def send(self, session: str, to: str | None, subject: str, **fields: Any) -> dict[str, Any]:
        with self.as_(session) as h:
            r = h.post(MESSAGES, json={"to_session": to, "subject": subject, "body": f"body of {subject}", **fields})
        assert r.status_code == 201, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def thread(self, session: str, thread_id: str, **params: Any) -> httpx2.Response:
        with self.as_(session) as h:
            return h.get(MESSAGES, params={"thread_id": thread_id, **params})


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``coord serve`` per backend for the module's tests (each uses threads of its own)."""
    root = tmp_path_factory.mktemp(f"threads-{request.param}")
    with scratch_database() if request.param == "postgres" else contextlib.nullcontext() as url:
        hub = LiveHub(root / "hub", args=("--database-url", url) if url else ()).start()
        try:
            yield Served(hub, {s: hub.token(s) for s in (A, B, C)} | {"admin": hub.admin_token})
        finally:
            hub.stop()


def subjects(r: httpx2.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [m["subject"] for m in r.json()]


def test_a_thread_shows_what_the_session_sent_was_sent_and_broadcasts_never_anothers_direct_messages(
        served: Served) -> None:
    root = served.send(A, B, "question")
    reply = served.send(B, "ALL_SESSIONS", "answer to all", reply_to=root["id"])  # a broadcast
    assert reply["thread_id"] == root["id"]
    served.send(B, C, "B to C, aside", thread_id=root["id"])
    served.send(C, B, "C to B, aside", thread_id=root["id"])
    served.send(A, B, "another thread", thread_id="elsewhere")
    assert subjects(served.thread(A, root["id"])) == ["question", "answer to all"]
    assert subjects(served.thread(C, root["id"])) == ["answer to all", "B to C, aside", "C to B, aside"]
    assert subjects(served.thread(B, root["id"])) == ["question", "answer to all", "B to C, aside", "C to B, aside"]
    # an admin reads a thread as the session it names, no more; a session may not name another
    assert subjects(served.thread("admin", root["id"], to_session=A)) == ["question", "answer to all"]
    refused = served.thread(A, root["id"], to_session=C)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
    assert subjects(served.thread(A, "no-such-thread")) == []


def test_a_thread_pages_by_seq_with_the_next_page_in_a_header(served: Served) -> None:
    sent = [served.send(A if n % 2 else B, B if n % 2 else A, f"turn {n}", thread_id="paged") for n in range(5)]
    first = served.thread(A, "paged", limit=2)
    assert subjects(first) == ["turn 0", "turn 1"]
    assert first.headers["Coord-Next-After-Seq"] == str(sent[1]["seq"])
    second = served.thread(A, "paged", limit=2, after_seq=first.headers["Coord-Next-After-Seq"])
    assert subjects(second) == ["turn 2", "turn 3"]
    last = served.thread(A, "paged", limit=2, after_seq=second.headers["Coord-Next-After-Seq"])
    assert subjects(last) == ["turn 4"] and "Coord-Next-After-Seq" not in last.headers


@pytest.mark.parametrize(("params", "field"), [
    ({"unread_only": "true"}, "unread_only"),
    ({"before_seq": "9"}, "before_seq"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"after_seq": "-1"}, "after_seq"),
    ({"thread_id": "x" * 201}, "thread_id"),
])
def test_bad_thread_reads_get_422_in_the_error_envelope(served: Served, params: dict[str, str], field: str) -> None:
    with served.as_(A) as h:
        r = h.get(MESSAGES, params={"thread_id": "t", **params})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid" and field in error["message"] + str(error.get("field")), error


def test_the_client_and_the_cli_read_a_thread(served: Served, tmp_path: Path) -> None:
    root = served.send(A, B, "cli root")
    served.send(B, A, "cli reply", reply_to=root["id"])
    served.send(B, C, "not for A", reply_to=root["id"], to_session=C)
    settings = ClientSettings(url=served.hub.url, token=served.tokens[A], session=None, user=None, machine=None,
                              queue_file=tmp_path / "coord-queue.jsonl", timeout=10.0)
    with CoordClient(settings) as client:
        page = client.thread(root["id"], limit=1)
        assert [m["subject"] for m in page] == ["cli root"] and page.next_after_seq == root["seq"]
        rest = client.thread(root["id"], after_seq=root["seq"])
        assert [m["subject"] for m in rest] == ["cli reply"] and rest.next_after_seq is None

    coord = Coord(tmp_path, isolated_env(tmp_path), url=served.hub.url, token=served.tokens[A])
    assert [m["subject"] for m in coord.json("msg", "thread", root["id"])] == ["cli root", "cli reply"]
    shown = coord.ok("msg", "thread", root["id"], "--limit", "1")
    assert "MESSAGE FROM HOST-A/claude-main — cli root" in shown.out and "cli reply" not in shown.out
    assert f"--after-seq {root['seq']}" in shown.out
    paged = coord.ok("msg", "thread", root["id"], "--limit", "1", "--json")
    assert [m["subject"] for m in paged.json()] == ["cli root"] and f"--after-seq {root['seq']}" in paged.err
    assert "no messages you may read in thread nowhere" in coord.ok("msg", "thread", "nowhere").out
    assert "thread_id" in coord.ok("msg", "thread", "--help").out.replace("THREAD_ID", "thread_id")


def test_a_thread_named_by_an_upper_case_message_id_is_read_by_http_the_client_and_the_cli(
        served: Served, tmp_path: Path) -> None:
    root = served.send(A, B, "upper root")
    reply = served.send(B, A, "upper reply", reply_to=root["id"].upper())
    assert reply["reply_to"] == root["id"] and reply["thread_id"] == root["id"]
    shouted = root["id"].upper()
    assert subjects(served.thread(A, shouted)) == ["upper root", "upper reply"]  # before: []
    settings = ClientSettings(url=served.hub.url, token=served.tokens[A], session=None, user=None, machine=None,
                              queue_file=tmp_path / "coord-queue.jsonl", timeout=10.0)
    with CoordClient(settings) as client:
        assert [m["subject"] for m in client.thread(shouted)] == ["upper root", "upper reply"]
    coord = Coord(tmp_path, isolated_env(tmp_path), url=served.hub.url, token=served.tokens[A])
    assert [m["subject"] for m in coord.json("msg", "thread", shouted)] == ["upper root", "upper reply"]


def test_a_thread_named_by_32_hex_digits_keeps_its_name_over_http_and_in_the_cli(
        served: Served, tmp_path: Path) -> None:
    # An MD5 digest as a thread name was read as a UUID and stored dashed: the sender's answer, the recipient's
    # inbox and the thread listed it under a name nobody gave.
    name = "9e107d9d372bb6826bd81d3542a419d6"
    sent = served.send(A, B, "digest thread", thread_id=name)
    assert sent["thread_id"] == name  # before: 9e107d9d-372b-b682-6bd8-1d3542a419d6
    listed = served.thread(B, name)
    assert subjects(listed) == ["digest thread"] and listed.json()[0]["thread_id"] == name
    coord = Coord(tmp_path, isolated_env(tmp_path), url=served.hub.url, token=served.tokens[B])
    assert [m["thread_id"] for m in coord.json("msg", "thread", name)] == [name]
    assert name in [m["thread_id"] for m in coord.json("msg", "inbox")]


def test_a_thread_is_read_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    where = where_run(monkeypatch, messages, "thread_page")
    me = api.token(A)
    assert api.post(MESSAGES, json={"to_session": B, "subject": "s", "thread_id": "t"}, headers=me).status_code == 201
    r = api.get(MESSAGES, params={"thread_id": "t"}, headers=me)
    assert r.status_code == 200 and [m["subject"] for m in r.json()] == ["s"], r.text
    assert where == [False]


def test_an_empty_thread_id_is_refused_not_answered_with_the_inbox(served: Served, tmp_path: Path) -> None:
    # The hub reads an empty query value as no filter (issue 7 point 20), so `thread_id=` is the inbox's history,
    # newest first. Review: `coord msg thread ""` printed the session's whole inbox as if it were a thread.
    served.send(B, A, "in A's inbox, in no thread")
    settings = ClientSettings(url=served.hub.url, token=served.tokens[A], session=None, user=None, machine=None,
                              queue_file=tmp_path / "coord-queue.jsonl", timeout=10.0)
    with CoordClient(settings) as client, pytest.raises(HubError) as refused:
        client.thread("")
    assert refused.value.status == 422 and "thread_id" in refused.value.message
    coord = Coord(tmp_path, isolated_env(tmp_path), url=served.hub.url, token=served.tokens[A])
    shown = coord.fails(1, "msg", "thread", "")
    assert "in A's inbox" not in shown.out and "thread_id" in shown.err
