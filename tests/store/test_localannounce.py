"""Commit announcements between worker processes on one SQLite file, under attack (``coord serve --workers N``).

Real abstract-namespace datagram sockets, real files: anyone on the machine
can send to the listening socket and, where the database sits in a shared
directory, plant files next to it. A flood of announcements makes one
announcement per wake, a datagram from another user is ignored, and a
registry directory or lock file that is not this user's alone is refused.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from coordhub.store import announce
from coordhub.store.localannounce import LocalAnnouncer, UnsafePath, WriterLock, _address, peers_dir


def _listen(ann: LocalAnnouncer) -> tuple[list[tuple[str | None, int | None]], threading.Event, object]:
    calls: list[tuple[str | None, int | None]] = []
    seen = threading.Event()

    def on(origin: str | None, high_water: int | None) -> None:
        calls.append((origin, high_water))
        if high_water == 999_999:
            seen.set()

    return calls, seen, ann.listen(on)


def _send(db: Path, to: str, payloads: list[bytes]) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for p in payloads:
            s.sendto(p, _address(db, to))
    finally:
        s.close()


def test_a_flood_of_announcements_makes_one_announcement_per_wake(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    ann = LocalAnnouncer(db, announce.new_origin())
    try:
        peer = "ab" * 6
        # All wait in the socket before the listener starts (fewer than net.unix.max_dgram_qlen, often 10).
        _send(db, ann.origin, [f"{announce.PREFIX}{peer}:{n}".encode() for n in range(1, 9)]
              + [f"{announce.PREFIX}{peer}:999999".encode()])
        calls, seen, listener = _listen(ann)
        try:
            assert seen.wait(10)
        finally:
            listener.stop()  # type: ignore[attr-defined]
        assert calls == [(None, None), (peer, 999_999)]
        assert listener.state.announcements == 9  # type: ignore[attr-defined]
    finally:
        ann.close()


def test_junk_and_our_own_origin_are_ignored(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    ann = LocalAnnouncer(db, announce.new_origin())
    try:
        _send(db, ann.origin, [b"junk", b"\xff" * 128, f"{announce.PREFIX}{ann.origin}:5".encode(),
                               f"{announce.PREFIX}not-an-origin:5".encode(),
                               f"{announce.PREFIX}{'cd' * 6}:999999".encode()])
        calls, seen, listener = _listen(ann)
        try:
            assert seen.wait(10)
        finally:
            listener.stop()  # type: ignore[attr-defined]
        assert calls == [(None, None), ("cd" * 6, 999_999)]
        assert listener.state.ignored == 4  # type: ignore[attr-defined]
    finally:
        ann.close()


def test_junk_asks_for_a_catch_up_from_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Junk fills the socket's short queue and crowds out the peers' datagrams (dropped at the sender): junk
    makes the listener ask for a catch-up from the log (at most once per NOISE_CATCH_UP_SECONDS)."""
    from coordhub.store import localannounce

    monkeypatch.setattr(localannounce, "NOISE_CATCH_UP_SECONDS", 0.0)
    db = tmp_path / "hub.db"
    ann = LocalAnnouncer(db, announce.new_origin())
    try:
        calls, _, listener = _listen(ann)
        try:
            for _ in range(200):
                if listener.state.ignored:  # type: ignore[attr-defined]
                    break
                _send(db, ann.origin, [b"junk"])
                threading.Event().wait(0.05)
        finally:
            listener.stop()  # type: ignore[attr-defined]
        assert listener.state.ignored and calls.count((None, None)) >= 2, calls  # type: ignore[attr-defined]
    finally:
        ann.close()


@pytest.mark.skipif(os.getuid() != 0, reason="sending as another user needs root")
def test_a_datagram_from_another_user_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    ann = LocalAnnouncer(db, announce.new_origin())
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.setuid(65534)
                _send(db, ann.origin, [f"{announce.PREFIX}{'ef' * 6}:123".encode()])
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        _send(db, ann.origin, [f"{announce.PREFIX}{'cd' * 6}:999999".encode()])
        calls, seen, listener = _listen(ann)
        try:
            assert seen.wait(10)
        finally:
            listener.stop()  # type: ignore[attr-defined]
        assert calls == [(None, None), ("cd" * 6, 999_999)]
        assert listener.state.ignored == 1  # type: ignore[attr-defined]
    finally:
        ann.close()


def test_a_registry_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    planted = peers_dir(db)
    planted.mkdir()
    planted.chmod(0o777)  # as someone else's mkdir in a shared directory leaves it
    for n in range(5):
        (planted / f"{n:012x}").touch()
    with pytest.raises(UnsafePath, match="no group or world permissions"):
        LocalAnnouncer(db, announce.new_origin())


def test_a_registry_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    peers_dir(db).symlink_to(elsewhere)
    with pytest.raises(UnsafePath):
        LocalAnnouncer(db, announce.new_origin())


def test_a_lock_file_open_to_others_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    lock = db.with_name(db.name + ".writer.lock")
    lock.touch()
    lock.chmod(0o644)  # anyone who can open it can flock it and stop every write
    with pytest.raises(UnsafePath, match="no group or world permissions"):
        WriterLock(db)
    lock.chmod(0o600)
    release = WriterLock(db)()
    release()


def test_a_lock_file_symlink_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    target = tmp_path / "target"
    target.touch(mode=0o600)
    db.with_name(db.name + ".writer.lock").symlink_to(target)
    with pytest.raises(OSError):
        WriterLock(db)


def test_closing_the_store_closes_its_writer_lock_file(tmp_path: Path) -> None:
    """``coord serve --workers`` forks its serving processes after closing its own store: they must not inherit its
    lock file's descriptor (an flock belongs to the open file, which they would then share with it)."""
    from coordhub.store.sqlite import SQLiteStore

    db = tmp_path / "hub.db"
    store = SQLiteStore(db, shared=True)
    store.open()
    lock = os.fspath(db.with_name(db.name + ".writer.lock"))

    def held() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(lock)
                   for fd in map(int, os.listdir("/proc/self/fd")) if os.path.exists(f"/proc/self/fd/{fd}"))

    assert held() == 1  # opened by the migrations' writes
    store.close()
    assert held() == 0
