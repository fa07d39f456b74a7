"""An acknowledged write survives ``kill -9`` of the hub (contract §2.6, §2.9, §2.3).

Writer threads send messages and claim leases through a real ``coord serve``
as fast as it answers and record every write that got a 2xx. Once enough
writes are acknowledged, and while the writers are still going, the hub gets
SIGKILL: no shutdown code runs, so anything acknowledged before it was
durable is lost. A new hub on the same data dir (and database) must then
show every acknowledged message (with its seq and subject) and every
acknowledged lease (still live, same fence), and its first grant must take a
fence above every fence acknowledged before the crash. Two kill/restart
rounds run on the same data, and each round re-checks all earlier rounds.
Session tokens minted before the first crash are used after it, so they
must survive too. The run covers SQLite and, when reachable, PostgreSQL.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub

WRITERS = 4
ROUNDS = 2
ACKS_BEFORE_KILL = 200  # acknowledged writes per round before the SIGKILL
RECIPIENT = "CRASH/inbox"


@dataclass
class Acked:
    """Every write a hub acknowledged, shared by the writer threads."""

    messages: dict[str, tuple[int, str]] = field(default_factory=dict)  # id → (seq, subject)
    leases: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # id → (fence, project, resource)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        """How many writes were acknowledged so far."""
        with self.lock:
            return len(self.messages) + len(self.leases)


class Writer(threading.Thread):
    """Sends a message and claims a lease, over and over, until the hub stops answering."""

    def __init__(self, url: str, token: str, name: str, round_no: int, acked: Acked) -> None:
        super().__init__(name=f"writer-{name}", daemon=True)
        self.url, self.token, self.tag, self.round_no, self.acked = url, token, name, round_no, acked
        self.died_with: BaseException | None = None  # the transport error that ended the burst

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx2.Client(base_url=self.url, headers=headers, timeout=30.0) as client:
            n = 0
            while True:
                n += 1
                try:
                    self.send(client, n)
                    self.claim(client, n)
                except httpx2.TransportError as exc:
                    self.died_with = exc
                    return

    def send(self, client: httpx2.Client, n: int) -> None:
        subject = f"r{self.round_no} {self.tag} #{n}"
        r = client.post("/api/coord/messages", json={"to_session": RECIPIENT, "subject": subject, "body": "x" * 64})
        with self.acked.lock:
            if r.status_code == 201:
                self.acked.messages[r.json()["id"]] = (r.json()["seq"], subject)
            else:
                self.acked.errors.append(f"send: {r.status_code} {r.text}")

    def claim(self, client: httpx2.Client, n: int) -> None:
        project, resource = f"crash-r{self.round_no}-{self.tag}", f"src/file{n}.py"
        r = client.post("/api/coord/locks", json={"project_key": project, "resource": resource,
                                                   "description": "crash test", "ttl_hours": 0})
        with self.acked.lock:
            if r.status_code == 201:
                # the acknowledged answer is the oracle: it names the project as the hub keeps it (folded case)
                self.acked.leases[r.json()["id"]] = (r.json()["fence"], r.json()["project_key"], resource)
            else:
                self.acked.errors.append(f"claim: {r.status_code} {r.text}")


def start_hub(data_dir: Path, args: tuple[str, ...]) -> LiveHub:
    """A started ``LiveHub`` on ``data_dir``."""
    return LiveHub(data_dir, args=args).start()


def burst_then_kill(hub: LiveHub, tokens: dict[str, str], round_no: int, acked: Acked) -> None:
    """Run the writers until ``ACKS_BEFORE_KILL`` more writes are acknowledged, then SIGKILL the hub."""
    target = acked.count() + ACKS_BEFORE_KILL
    writers = [Writer(hub.url, token, name.split("/")[0], round_no, acked) for name, token in tokens.items()]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 60
    while acked.count() < target:
        assert all(w.is_alive() for w in writers), f"a writer stopped early: {[w.died_with for w in writers]}"
        assert time.monotonic() < deadline, f"only {acked.count()} writes acknowledged in 60 s"
        time.sleep(0.01)
    assert hub.stop(signal.SIGKILL) == -signal.SIGKILL
    for w in writers:
        w.join(timeout=60)
    assert all(not w.is_alive() and w.died_with is not None for w in writers), "the kill did not end the burst"
    assert acked.errors == []


def inbox(hub: LiveHub, token: str) -> dict[str, tuple[int, str]]:
    """The whole inbox of ``RECIPIENT`` (read or not), paged by seq: id → (seq, subject)."""
    found: dict[str, tuple[int, str]] = {}
    params: dict[str, Any] = {"to_session": RECIPIENT, "unread_only": "false", "limit": 500}
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0) as c:
        while True:
            r = c.get("/api/coord/messages", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            found.update({m["id"]: (m["seq"], m["subject"]) for m in page})
            if len(page) < 500:
                return found
            params["before_seq"] = min(m["seq"] for m in page)


def live_leases(hub: LiveHub, projects: set[str]) -> dict[str, tuple[int, str, str]]:
    """Every live lease in ``projects``: id → (fence, project, resource)."""
    admin = {"Authorization": f"Bearer {hub.admin_token}"}
    found: dict[str, tuple[int, str, str]] = {}
    for project in projects:
        r = httpx2.get(f"{hub.url}/api/coord/locks", params={"project_key": project}, headers=admin)
        assert r.status_code == 200, r.text
        found.update({x["id"]: (x["fence"], x["project_key"], x["resource"]) for x in r.json()})
    return found


def assert_all_acked_present(hub: LiveHub, recipient_token: str, acked: Acked) -> None:
    """Every acknowledged message and lease is on the restarted hub, unchanged."""
    messages = inbox(hub, recipient_token)
    lost_messages = {i: v for i, v in acked.messages.items() if messages.get(i) != v}
    assert lost_messages == {}, f"{len(lost_messages)} of {len(acked.messages)} acknowledged messages lost or changed"
    leases = live_leases(hub, {project for _, project, _ in acked.leases.values()})
    lost_leases = {i: v for i, v in acked.leases.items() if leases.get(i) != v}
    assert lost_leases == {}, f"{len(lost_leases)} of {len(acked.leases)} acknowledged leases lost or changed"


def assert_next_fence_above(hub: LiveHub, token: str, acked: Acked) -> None:
    """The first grant after the restart takes a fence above every fence acknowledged before."""
    r = httpx2.post(f"{hub.url}/api/coord/locks", headers={"Authorization": f"Bearer {token}"},
                    json={"project_key": "crash-after", "resource": "deploy:after", "description": "probe",
                          "ttl_hours": 0.01})
    assert r.status_code == 201, r.text
    assert r.json()["fence"] > max(fence for fence, _, _ in acked.leases.values())
    d = httpx2.delete(f"{hub.url}/api/coord/locks/{r.json()['id']}", headers={"Authorization": f"Bearer {token}"})
    assert d.status_code == 200, d.text


@pytest.fixture
def hub_args(backend: str, request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Extra ``coord serve`` flags for the backend under test."""
    return ("--database-url", request.getfixturevalue("pg_url")) if backend == "postgres" else ()


def test_acknowledged_writes_survive_sigkill(tmp_path: Path, hub_args: tuple[str, ...]) -> None:
    """Two rounds of burst → kill -9 → restart: every 2xx write is there, fences keep growing."""
    crash_dir = tmp_path / "hub"
    hub = start_hub(crash_dir, hub_args)
    try:
        tokens = {f"CRASH-W{i}/claude-main": hub.token(f"CRASH-W{i}/claude-main") for i in range(WRITERS)}
        recipient = hub.token(RECIPIENT)
        acked = Acked()
        for round_no in range(1, ROUNDS + 1):
            burst_then_kill(hub, tokens, round_no, acked)
            hub = start_hub(crash_dir, hub_args)
            assert_all_acked_present(hub, recipient, acked)
            assert_next_fence_above(hub, next(iter(tokens.values())), acked)
        # Each writer alternates send and claim, so both kinds make up about half of the acknowledgements.
        least = ROUNDS * (ACKS_BEFORE_KILL // 2 - WRITERS)
        assert len(acked.messages) >= least and len(acked.leases) >= least
    finally:
        hub.stop()
