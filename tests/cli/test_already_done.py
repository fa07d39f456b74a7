"""Repeating an action says it was already done, with the exit code the seed's CLI gives a success (0).

Review: `coord lock release` of a lease already released and `coord todo done` of a todo already done printed
what the first run printed, so a user could not tell that the second one changed nothing. The hub answers such
a request 200 with the record unchanged and ``already: true``; the CLI says "already …" and ``--json`` carries
the hub's ``already``. Real ``coord`` subprocesses against a real ``coord serve``.
"""

from __future__ import annotations

from pathlib import Path

from coordhub.cli.views import shown_time
from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"


def _coord(live_hub: LiveHub, tmp_path: Path) -> Coord:
    work = tmp_path / "work"
    work.mkdir()
    return Coord(work, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(A))


def test_a_second_release_says_the_lease_had_already_ended(live_hub: LiveHub, tmp_path: Path) -> None:
    a = _coord(live_hub, tmp_path)
    lease = a.json("lock", "claim", "shop", "deploy:staging", "deploying")
    first = a.ok("lock", "release", lease["id"])
    assert first.out == f"released {lease['id']}\n", first
    again = a.ok("lock", "release", lease["id"])  # exit 0, as seed 000's release of a lock
    assert again.out == f"already ended: {lease['id']} is released; nothing changed\n", again
    answer = a.json("lock", "release", lease["id"])
    assert (answer["state"], answer["already"]) == ("released", True), answer


def test_a_release_says_whether_it_ended_the_lease_in_json(live_hub: LiveHub, tmp_path: Path) -> None:
    a = _coord(live_hub, tmp_path)
    lease = a.json("lock", "claim", "shop", "src/api/", "refactoring")
    answer = a.json("lock", "release", lease["id"])
    assert (answer["state"], answer["already"]) == ("released", False), answer


def test_a_second_todo_done_says_it_was_already_done(live_hub: LiveHub, tmp_path: Path) -> None:
    a = _coord(live_hub, tmp_path)
    todo_id = a.json("todo", "add", "rotate the keys")["id"]
    first = a.ok("todo", "done", todo_id)
    assert first.out == f"done {todo_id}\n", first
    again = a.ok("todo", "done", todo_id)  # exit 0, as seed 000's done
    assert again.out.startswith(f"already done {todo_id} (by {A} at ") and "nothing changed" in again.out, again
    answer = a.json("todo", "done", todo_id)
    assert (answer["status"], answer["already"], answer["completed_by"]) == ("done", True, A), answer


def test_a_second_msg_read_says_it_was_already_read(live_hub: LiveHub, tmp_path: Path) -> None:
    a = _coord(live_hub, tmp_path)
    sent = [a.json("msg", "send", A, f"note {n}", "to myself")["id"] for n in range(2)]
    first = a.ok("msg", "read", sent[0])
    assert first.out == f"read {sent[0]}\n", first
    again = a.ok("msg", "read", sent[0], sent[1])  # exit 0: one read before, one now
    lines = again.out.splitlines()
    assert lines[0].startswith(f"already read {sent[0]} (at ") and lines[0].endswith("; nothing changed"), again
    assert lines[1] == f"read {sent[1]}", again
    answer = a.json("msg", "read", sent[1])
    assert [(m["id"], m["read"], m["already"]) for m in answer] == [(sent[1], True, True)], answer


def test_a_second_msg_ack_says_it_was_already_acked(live_hub: LiveHub, tmp_path: Path) -> None:
    a = _coord(live_hub, tmp_path)
    mid = a.json("msg", "send", A, "please ack", "to myself", "--requires-ack")["id"]
    a.ok("msg", "read", mid)  # read is not acked: the first ack is news
    first = a.json("msg", "ack", mid)
    assert (first["already"], first["acked_at"] is not None) == (False, True), first
    again = a.ok("msg", "ack", mid)  # exit 0, as a second release of a lease
    assert again.out == f"already acked {mid} (at {shown_time(first['acked_at'])}); nothing changed\n", again
    answer = a.json("msg", "ack", mid)
    assert (answer["already"], answer["acked_at"]) == (True, first["acked_at"]), answer
