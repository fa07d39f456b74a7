"""Push (issue hub-agents §1) over a real HTTP server: SSE with resume, long-poll wait, audit, privacy."""

from __future__ import annotations

import json
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.coordcli import isolated_env

A, B, C = "A/claude-main", "B/claude-main", "C/claude-main"


@pytest.fixture
def fleet(live_hub: LiveHub) -> dict[str, dict[str, str]]:
    return {who: {"Authorization": f"Bearer {live_hub.token(who)}"} for who in (A, B, C)}


class Subscriber:
    """Reads an SSE stream on a thread, putting each event (dict) on a queue."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready = threading.Event()
        self._stop = False
        self._client = httpx2.Client(headers=headers, timeout=httpx2.Timeout(5.0, read=30.0))
        self._thread = threading.Thread(target=self._run, args=(url, params or {}), daemon=True)
        self._thread.start()
        assert self.ready.wait(10)

    def _run(self, url: str, params: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url + "/api/coord/events", params=params) as r:
                assert r.status_code == 200
                data: list[str] = []
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        self.ready.set()
                    if self._stop:
                        return
                    if line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and data:
                        self.events.put(json.loads("".join(data)))
                        data = []
        except httpx2.HTTPError:
            return

    def take(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return [self.events.get(timeout=timeout) for _ in range(n)]

    def close(self) -> None:
        self._stop = True
        self._client.close()


@pytest.fixture
def subscribe(live_hub: LiveHub) -> Iterator[Any]:
    subs: list[Subscriber] = []

    def make(headers: dict[str, str], **params: str) -> Subscriber:
        sub = Subscriber(live_hub.url, headers, params)
        subs.append(sub)
        return sub

    yield make
    for s in subs:
        s.close()


def send(hub: LiveHub, headers: dict[str, str], to: str | None, subject: str) -> dict[str, Any]:
    r = httpx2.post(hub.url + "/api/coord/messages", json={"to_session": to, "subject": subject}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_message_reaches_a_subscriber(live_hub: LiveHub, fleet: dict[str, dict[str, str]], subscribe: Any) -> None:
    sub = subscribe(fleet[B], to_session=B)
    sent = send(live_hub, fleet[A], B, "hello B")
    (event,) = sub.take(1)
    assert event["kind"] == "message.sent" and event["subject_id"] == sent["id"]
    assert event["payload"]["subject"] == "hello B" and event["target"] == B


def test_direct_message_events_are_private(live_hub: LiveHub, fleet: dict[str, dict[str, str]],
                                           subscribe: Any) -> None:
    snoop = subscribe(fleet[C])
    send(live_hub, fleet[A], B, "secret")
    send(live_hub, fleet[A], None, "public")
    (event,) = snoop.take(1)
    assert event["payload"]["subject"] == "public"
    assert snoop.events.empty()


def test_resume_after_disconnect_without_gaps_or_duplicates(live_hub: LiveHub, fleet: dict[str, dict[str, str]],
                                                            subscribe: Any) -> None:
    first = subscribe(fleet[B], kinds="message.")
    for i in range(5):
        send(live_hub, fleet[A], B, f"m{i}")
    seen = first.take(5)
    first.close()
    for i in range(5, 12):  # while disconnected
        send(live_hub, fleet[A], None, f"m{i}")
    resumed = Subscriber(live_hub.url, {**fleet[B], "Last-Event-ID": str(seen[2]["id"])}, {"kinds": "message."})
    try:
        rest = resumed.take(9)
    finally:
        resumed.close()
    subjects = [e["payload"]["subject"] for e in seen[:3] + rest]
    assert subjects == [f"m{i}" for i in range(12)]
    ids = [e["id"] for e in seen[:3] + rest]
    assert ids == sorted(set(ids))


def test_after_param_and_kind_filter(live_hub: LiveHub, fleet: dict[str, dict[str, str]], subscribe: Any) -> None:
    r = httpx2.post(live_hub.url + "/api/coord/locks", json={"project_key": "p", "resource": "src/"},
                    headers=fleet[A])
    assert r.status_code == 201
    sub = subscribe(fleet[C], after="0", kinds="lease.")
    (event,) = sub.take(1)
    assert event["kind"] == "lease.granted" and event["payload"]["resource"] == "src/"


def test_bad_last_event_id_is_refused(live_hub: LiveHub, fleet: dict[str, dict[str, str]]) -> None:
    r = httpx2.get(live_hub.url + "/api/coord/events", headers={**fleet[B], "Last-Event-ID": "yesterday"})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["detail"]
    r = httpx2.get(live_hub.url + "/api/coord/events")
    assert r.status_code == 401
    # Bytes a client can send that str.isdigit() takes and int() does not (latin-1 superscripts, past 4,300
    # digits), or past the ids' bound: each a 422, never the catch-all 500.
    host, port = live_hub.url.removeprefix("http://").split(":")
    token = fleet[B]["Authorization"].encode()
    for value in (b"\xb2", b"\xb9\xb3", b"9" * 4301, str(2**62 + 1).encode()):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /api/coord/events HTTP/1.1\r\nHost: x\r\nAuthorization: " + token
                         + b"\r\nLast-Event-ID: " + value + b"\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 422"), (value[:8], answer[:200])
        assert b"Last-Event-ID" in answer


def test_long_poll_returns_when_a_message_arrives(live_hub: LiveHub, fleet: dict[str, dict[str, str]]) -> None:
    result: dict[str, Any] = {}

    def wait() -> None:
        t0 = time.monotonic()
        r = httpx2.get(live_hub.url + "/api/coord/messages/wait", params={"timeout": "20"}, headers=fleet[B],
                       timeout=30)
        result.update(status=r.status_code, body=r.json(), took=time.monotonic() - t0)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    send(live_hub, fleet[A], C, "not for B")  # wakes the waiter, which must keep waiting
    time.sleep(0.3)
    assert waiter.is_alive()
    sent = send(live_hub, fleet[A], B, "for B")
    waiter.join(25)
    assert result["status"] == 200 and [m["id"] for m in result["body"]] == [sent["id"]]
    assert result["took"] < 20  # answered on arrival, not at the timeout
    r = httpx2.get(live_hub.url + "/api/coord/messages/wait", headers=fleet[B],
                   params={"timeout": "0.5", "after_seq": str(sent["seq"])})
    assert r.json() == []


def test_long_poll_ends_with_its_token(live_hub: LiveHub, fleet: dict[str, dict[str, str]]) -> None:
    """Review: a wait begun before its token was revoked answered, after the revocation, the message sent since."""
    result: dict[str, Any] = {}
    token = live_hub.token("D/claude-main")

    def wait() -> None:
        r = httpx2.get(live_hub.url + "/api/coord/messages/wait", params={"timeout": "20"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
        result.update(status=r.status_code, body=r.text)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    r = httpx2.delete(live_hub.url + "/api/coord/tokens/D%2Fclaude-main",
                      headers={"Authorization": f"Bearer {live_hub.admin_token}"})
    assert r.status_code == 200, r.text
    send(live_hub, fleet[A], "D/claude-main", "secret body")
    waiter.join(25)
    assert result["status"] == 401 and "secret body" not in result["body"], result


def test_audit_and_client_events(live_hub: LiveHub, fleet: dict[str, dict[str, str]]) -> None:
    r = httpx2.post(live_hub.url + "/api/coord/events", headers=fleet[A], json={
        "kind": "guard.bypassed", "project_key": "p", "detail": {"paths": ["src/a.py"], "reason": "hotfix"}})
    assert r.status_code == 201 and r.json()["payload"]["detail"]["reason"] == "hotfix"
    r = httpx2.post(live_hub.url + "/api/coord/events", headers=fleet[A], json={"kind": "lease.granted"})
    assert r.status_code == 422
    r = httpx2.get(live_hub.url + "/api/coord/audit", params={"kinds": "guard."}, headers=fleet[C])
    assert [(e["kind"], e["session_id"]) for e in r.json()] == [("guard.bypassed", A)]


def test_lease_conflicts_endpoint_names_only_others(live_hub: LiveHub, fleet: dict[str, dict[str, str]]) -> None:
    for who, res in ((A, "src/"), (B, "docs/")):
        httpx2.post(live_hub.url + "/api/coord/locks", json={"project_key": "p", "resource": res}, headers=fleet[who])
    ask = {"project_key": "p", "resource": "src/app.py"}
    mine = httpx2.get(live_hub.url + "/api/coord/locks/conflicts", params=ask, headers=fleet[A]).json()
    theirs = httpx2.get(live_hub.url + "/api/coord/locks/conflicts", params=ask, headers=fleet[B]).json()
    assert mine["leases"] == [] and [x["session_id"] for x in mine["own"]] == [A]
    assert [x["session_id"] for x in theirs["leases"]] == [A] and theirs["own"] == [] and theirs["halt"] is None


def test_coord_watch_prints_events(live_hub: LiveHub, fleet: dict[str, dict[str, str]], tmp_path: Any) -> None:
    token = fleet[B]["Authorization"].split()[1]
    proc = subprocess.Popen([sys.executable, "-m", "coordhub", "--url", live_hub.url, "--token", token, "watch",
                             "--json", "--kinds", "message."], stdout=subprocess.PIPE, text=True,
                            env=isolated_env(tmp_path), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline and not line:
            send(live_hub, fleet[A], B, "watched")
            if select.select([proc.stdout], [], [], 1.0)[0]:
                assert proc.stdout is not None
                line = proc.stdout.readline()
        event = json.loads(line)
        assert event["kind"] == "message.sent" and event["payload"]["subject"] == "watched"
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
