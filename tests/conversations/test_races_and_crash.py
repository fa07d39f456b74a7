"""Conversation turns under contention and crashes, through a real ``coord serve`` on both backends.

Several OS processes send turns into one conversation at once: the hub's
sequences must come out gapless, unique and in each sender's order (seed
004 let authors pick sequence numbers, and two writers collided). Then
writers are cut off by ``kill -9``: every turn acknowledged before the kill
is on the restarted hub with the sequence it was acknowledged with, and
numbering continues above them.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub

SENDERS = 6
TURNS_EACH = 25
CONVERSATION = "race"


@pytest.fixture
def hub_args(backend: str, request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Extra ``coord serve`` flags for the backend under test."""
    return ("--database-url", request.getfixturevalue("pg_url")) if backend == "postgres" else ()


def declare(url: str, token: str, machine: str, project: str) -> None:
    r = httpx2.put(f"{url}/api/coord/conversations/profile", json={"machine": machine, "project": project},
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text


def sender(args: tuple[str, str, int]) -> list[tuple[int, int, str]]:
    """One OS process: send ``TURNS_EACH`` turns one after another; ``(id, sequence, body)`` of each 2xx."""
    url, token, n = args
    got = []
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        for i in range(TURNS_EACH):
            body = f"sender {n} turn {i}"
            r = c.post("/api/coord/conversations/turns", json={
                "to": "hub.inbox", "conversation_id": CONVERSATION, "type": "progress", "body": body})
            assert r.status_code == 201, r.text
            t = r.json()
            got.append((t["id"], t["sequence"], body))
    return got


def test_racing_senders_get_gapless_unique_ordered_sequences(tmp_path: Path, hub_args: tuple[str, ...]) -> None:
    hub = LiveHub(tmp_path / "data", args=hub_args).start()
    try:
        declare(hub.url, hub.token("hub/inbox"), "hub", "inbox")
        tokens = []
        for n in range(SENDERS):
            tokens.append(hub.token(f"m{n}/agent"))
            declare(hub.url, tokens[-1], f"m{n}", "agent")
        inbox = {"Authorization": f"Bearer {hub.token('hub/inbox')}"}
        for n in range(SENDERS):  # the inbox brings every sender in (only a conversation's parties write in it)
            r = httpx2.post(f"{hub.url}/api/coord/conversations/turns", headers=inbox, timeout=30, json={
                "to": f"m{n}.agent", "conversation_id": CONVERSATION, "type": "request", "body": f"join, m{n}"})
            assert r.status_code == 201 and r.json()["sequence"] == n + 1, r.text
        with multiprocessing.get_context("spawn").Pool(SENDERS) as pool:
            results = pool.map(sender, [(hub.url, t, n) for n, t in enumerate(tokens)])
        sequences = [seq for got in results for _, seq, _ in got]
        assert sorted(sequences) == list(range(SENDERS + 1, SENDERS * (TURNS_EACH + 1) + 1))  # gapless and unique
        for got in results:  # each sender's turns in the order it sent them
            assert [seq for _, seq, _ in got] == sorted(seq for _, seq, _ in got)
        admin = {"Authorization": f"Bearer {hub.admin_token}"}
        turns, conv = all_turns(hub.url, admin, CONVERSATION)
        stored = {t["id"]: (t["sequence"], t["body"]) for t in turns if t["author"] != "hub/inbox"}
        assert stored == {i: (seq, body) for got in results for i, seq, body in got}
        assert conv["last_sequence"] == SENDERS * (TURNS_EACH + 1)
    finally:
        hub.stop()


def all_turns(url: str, headers: dict[str, str], conversation: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every turn of a conversation, read page by page (``after``/``next_after``), and its summary."""
    turns: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = httpx2.get(f"{url}/api/coord/conversations/{conversation}", params={"after": after, "limit": 1000},
                          headers=headers, timeout=30).json()
        turns.extend(page["turns"])
        after = page["next_after"]
    return turns, page


class TurnWriter(threading.Thread):
    """Sends turns until the hub stops answering; records each acknowledged one."""

    def __init__(self, url: str, token: str, tag: str, acked: dict[int, tuple[int, str]], lock: threading.Lock):
        super().__init__(daemon=True)
        self.url, self.token, self.tag, self.acked, self.lock = url, token, tag, acked, lock
        self.died_with: BaseException | None = None

    def run(self) -> None:
        with httpx2.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30) as c:
            n = 0
            while True:
                n += 1
                body = f"{self.tag} {n}"
                try:
                    r = c.post("/api/coord/conversations/turns", json={
                        "to": "hub.inbox", "conversation_id": f"crash-{self.tag}", "type": "progress", "body": body})
                except httpx2.TransportError as exc:
                    self.died_with = exc
                    return
                assert r.status_code == 201, r.text
                with self.lock:
                    self.acked[r.json()["id"]] = (r.json()["sequence"], body)


def test_acknowledged_turns_survive_kill_9(tmp_path: Path, hub_args: tuple[str, ...]) -> None:
    data = tmp_path / "data"
    hub = LiveHub(data, args=hub_args).start()
    acked: dict[int, tuple[int, str]] = {}
    lock = threading.Lock()
    tokens = {}
    try:
        declare(hub.url, hub.token("hub/inbox"), "hub", "inbox")
        for tag in ("a", "b", "c"):
            tokens[tag] = hub.token(f"{tag}/agent")
            declare(hub.url, tokens[tag], tag, "agent")
        writers = [TurnWriter(hub.url, tokens[t], t, acked, lock) for t in tokens]
        for w in writers:
            w.start()
        deadline = time.monotonic() + 60
        while len(acked) < 150:
            assert all(w.is_alive() for w in writers) and time.monotonic() < deadline
            time.sleep(0.01)
        assert hub.stop(signal.SIGKILL) == -signal.SIGKILL
        for w in writers:
            w.join(timeout=60)
        assert all(w.died_with is not None for w in writers)
    finally:
        if hub.proc and hub.proc.poll() is None:
            hub.stop()
    hub = LiveHub(data, args=hub_args).start()
    try:
        admin = {"Authorization": f"Bearer {hub.admin_token}"}
        stored: dict[int, tuple[int, str]] = {}
        last: dict[str, Any] = {}
        for tag in tokens:
            turns, conv = all_turns(hub.url, admin, f"crash-{tag}")
            stored.update({t["id"]: (t["sequence"], t["body"]) for t in turns})
            seqs = [t["sequence"] for t in turns]
            assert seqs == list(range(1, len(seqs) + 1))  # still gapless after the crash
            last[tag] = conv["last_sequence"]
        lost = {i: v for i, v in acked.items() if stored.get(i) != v}
        assert lost == {}, f"{len(lost)} of {len(acked)} acknowledged turns lost or renumbered"
        r = httpx2.post(f"{hub.url}/api/coord/conversations/turns", headers={"Authorization": f"Bearer {tokens['a']}"},
                        json={"to": "hub.inbox", "conversation_id": "crash-a", "type": "progress", "body": "after"},
                        timeout=30)
        assert r.status_code == 201 and r.json()["sequence"] == last["a"] + 1
    finally:
        hub.stop()
