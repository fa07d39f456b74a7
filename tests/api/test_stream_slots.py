"""A session's stream slots shared by the serving processes of one hub (``coord serve --workers N``): byte-range
locks on one file, held by another real process here."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from coordhub.api.streams import SharedSlots, StreamSlots
from coordhub.errors import TooManyStreams

HOLDER = textwrap.dedent("""
    import fcntl, os, sys
    from pathlib import Path
    from coordhub.api.streams import SharedSlots
    slots = SharedSlots(Path(sys.argv[1]), 2)
    for line in sys.stdin:
        verb, key, *rest = line.split()
        if verb == "take":
            print(slots.take(key), flush=True)
        elif verb == "byte":  # is byte int(key) free? (its lock taken and given back at once)
            try:
                fcntl.lockf(slots._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(key), os.SEEK_SET)
            except OSError:
                print("held", flush=True)
            else:
                fcntl.lockf(slots._fd, fcntl.LOCK_UN, 1, int(key), os.SEEK_SET)
                print("free", flush=True)
        else:
            slots.give(key, int(rest[0]))
            print("given", flush=True)
""")


class Holder:
    """Another process holding slots of the same file, driven line by line."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def test_slots_another_process_holds_are_refused_and_freed_when_it_gives_them_back_or_dies(tmp_path: Path) -> None:
    path = tmp_path / "stream-slots"
    other = Holder(path)
    try:
        assert [other.ask("take alice"), other.ask("take alice"), other.ask("take alice")] == ["0", "1", "None"]
        here = SharedSlots(path, 2)
        assert here.take("alice") is None  # both of alice's slots are the other process's
        assert here.take("bob") == 0  # another session's are its own
        assert other.ask("give alice 1") == "given"
        assert here.take("alice") == 1 and here.take("alice") is None
        here.give("alice", 1)
        assert here.take("alice") == 1  # given back here, taken again here
        other.kill()  # the kernel drops a dead process's locks: its slot 0 is free
        assert here.take("alice") == 0 and here.take("alice") is None
    finally:
        other.kill()
    assert path.stat().st_size == 0  # locks past the end: the file holds nothing


def test_a_shared_stream_count_refuses_past_the_limit_of_every_process(tmp_path: Path) -> None:
    other = Holder(tmp_path / "stream-slots")
    try:
        assert other.ask("take alice") == "0"
        slots = StreamSlots(per_key=2, total=100)
        slots.share(tmp_path)

        async def run() -> None:
            release = await slots.acquire("alice")
            with pytest.raises(TooManyStreams, match="across the hub's serving processes"):
                await slots.acquire("alice")
            assert slots.held == 1  # the refused one counts nothing
            release()
            release()  # idempotent: gives the slot back once
            async with slots.hold("alice"):
                assert slots.held == 1
            assert slots.held == 0

        asyncio.run(run())
    finally:
        other.kill()


def test_a_slots_file_that_cannot_be_opened_leaves_the_count_per_process(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    slots = StreamSlots(per_key=1, total=100)
    slots.share(tmp_path / "missing-dir")
    assert "counted in each serving process" in caplog.text
    asyncio.run(_second_refused(slots, "alice"))


async def _second_refused(slots: StreamSlots, key: str) -> None:
    """Hold ``key``'s one slot and assert a second is refused by this process's own count."""
    async with slots.hold(key):
        with pytest.raises(TooManyStreams, match="the limit per token"):
            await slots.acquire(key)


def test_every_offset_fits_however_large_the_limit(tmp_path: Path) -> None:
    """Review: a 40-bit digest times a limit past 2**23 overflowed the lock's offset (a 500 for some sessions)."""
    slots = SharedSlots(tmp_path / "stream-slots", 10**12)
    for n in range(200):
        assert slots.take(f"session-{n}/main") == 0


def test_keys_whose_digests_collide_share_one_budget_rather_than_exceed_it(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: held slots were remembered by key, so a second key on the same byte locked it again and its
    release freed the first key's slot while its stream was open."""
    monkeypatch.setattr(SharedSlots, "_base", lambda self, key: 0)
    here = SharedSlots(tmp_path / "stream-slots", 1)
    other = Holder(tmp_path / "stream-slots")
    try:
        assert here.take("alice") == 0 and here.take("bob") is None  # bob's only byte is alice's
        assert other.ask("byte 0") == "held"
        here.give("alice", 0)
        assert other.ask("byte 0") == "free"
        assert here.take("bob") == 0 and here.take("alice") is None
    finally:
        other.kill()


def test_a_file_system_without_record_locks_counts_in_each_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Review: a lock refused as not supported (ENOLCK) was taken for a slot held elsewhere: every stream of
    every session answered 429 "already holds 64". It is found when sharing starts, or at a stream, and the
    process then counts alone, logged."""
    def refuse(*args: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    slots = StreamSlots(per_key=1, total=100)
    monkeypatch.setattr(fcntl, "lockf", refuse)
    slots.share(tmp_path)
    assert "counted in each serving process" in caplog.text
    asyncio.run(_second_refused(slots, "alice"))
    monkeypatch.undo()
    late = StreamSlots(per_key=1, total=100)
    late.share(tmp_path)  # record locks work when sharing starts, and fail later
    monkeypatch.setattr(fcntl, "lockf", refuse)

    async def hold() -> None:
        async with late.hold("alice"):
            assert late.held == 1 and "counted in this serving process only" in caplog.text

    asyncio.run(hold())


def test_a_stream_whose_credential_cannot_be_read_holds_no_slot(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the slot was taken before the stream's credential was read, so a failure there (a database read
    for a dashboard's sign-in) kept it for good: with --workers, a byte lock held until the worker died."""
    from coordhub.api import streams
    from coordhub.errors import Unavailable

    async def unreadable(request: object, who: object) -> None:
        raise Unavailable("the database did not answer")

    monkeypatch.setattr(streams, "credential", unreadable)
    headers = api.token("alice/main")
    for _ in range(3):
        assert api.get("/api/coord/events", headers=headers).status_code == 503
    assert api.client.app.state.streams.held == 0
