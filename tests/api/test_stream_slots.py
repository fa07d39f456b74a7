"""A session's stream slots shared by the serving processes of one hub (``coord serve --workers N``): byte-range
locks on one file, held by another real process here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coordhub.api.streams import SharedSlots, StreamSlots
from coordhub.errors import TooManyStreams

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from coordhub.api.streams import SharedSlots
    slots = SharedSlots(Path(sys.argv[1]), 2)
    for line in sys.stdin:
        verb, key, *rest = line.split()
        if verb == "take":
            print(slots.take(key), flush=True)
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
        release = slots.acquire("alice")
        with pytest.raises(TooManyStreams, match="across the hub's serving processes"):
            slots.acquire("alice")
        release()
        release()  # idempotent: gives the slot back once
        with slots.hold("alice"):
            assert slots.held == 1
        assert slots.held == 0
    finally:
        other.kill()


def test_a_slots_file_that_cannot_be_opened_leaves_the_count_per_process(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    slots = StreamSlots(per_key=1, total=100)
    slots.share(tmp_path / "missing-dir")
    assert "counted in each serving process" in caplog.text
    with slots.hold("alice"), pytest.raises(TooManyStreams, match="the limit per token"):
        slots.acquire("alice")
