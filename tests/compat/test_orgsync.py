"""The sync loop over pages of turns: folders per project, the cursor, and idempotence without it.

The hub is replaced here by a list of turns in the shape ``GET …/turns``
answers (ids ascending, ``after``/``limit`` paging); tests/compat/test_conv_e2e.py
runs the same code against a real hub.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from coordhub.compat import orgsync
from coordhub.compat.inboxes import Inboxes
from tests.compat.test_orgfiles import turn


class Turns:
    """Turns served like ``GET …/turns?after=&limit=``; ``calls`` records each page asked for."""

    def __init__(self, turns: list[dict[str, Any]], cut: int | None = None) -> None:
        self.turns = turns
        self.cut = cut  # at most this many per page, as the hub cuts a page at about 4 MiB of text
        self.calls: list[tuple[int, int]] = []

    def __call__(self, after: int, limit: int) -> list[dict[str, Any]]:
        self.calls.append((after, limit))
        return [t for t in self.turns if t["id"] > after][:min(limit, self.cut or limit)]


def many(n: int, machine: str = "velox") -> list[dict[str, Any]]:
    return [{**turn(i, signed=i % 2 == 0), "to": f"{machine}.{'career' if i % 3 else 'homelab'}"}
            for i in range(1, n + 1)]


def inboxes(tmp_path: Path) -> Inboxes:
    return Inboxes(root=tmp_path / "projects", config=tmp_path / "none.toml", seed_peers=tmp_path / "none2.toml")


def syncer(tmp_path: Path, fetch: Turns, after: int = 0) -> orgsync.Syncer:
    return orgsync.Syncer(fetch, "velox", inboxes(tmp_path), tmp_path / "state" / "cursor.json", "http://hub", after)


def test_each_turn_lands_in_its_projects_folder_and_the_cursor_moves(tmp_path: Path) -> None:
    fetch = Turns(many(5) + [{**turn(6), "to": "other.career"}])
    tally = syncer(tmp_path, fetch).run_once()
    assert (tally.written, tally.present, tally.cursor) == (5, 0, 6)
    career = tmp_path / "projects" / "career" / "inbox" / "from-agents"
    homelab = tmp_path / "projects" / "homelab" / "inbox" / "from-agents"
    assert sorted(p.name for p in career.glob("*.org")) == sorted(t["file_name"] for t in many(5) if t["id"] % 3)
    assert [p.name for p in homelab.glob("*.org")] == [turn(3)["file_name"]]
    assert orgsync.load_cursor(tmp_path / "state" / "cursor.json") == 6


def test_a_second_sync_asks_only_for_newer_turns_and_writes_nothing(tmp_path: Path) -> None:
    fetch = Turns(many(3))
    syncer(tmp_path, fetch).run_once()
    fetch.calls.clear()
    again = syncer(tmp_path, fetch, orgsync.load_cursor(tmp_path / "state" / "cursor.json")).run_once()
    assert (again.written, again.present) == (0, 0) and fetch.calls == [(3, orgsync.PAGE)]


def test_a_folder_removed_since_the_last_sync_makes_the_cursor_count_as_lost(tmp_path: Path) -> None:
    """Review, seed-004 user run: an inbox folder removed by hand after a sync was never written again; the next
    sync said 0 turns written, as the cursor was past its turns. Now that sync looks at every turn again and
    writes the removed folder's files, leaving the other folder's identical files alone."""
    import shutil

    fetch = Turns(many(5))
    syncer(tmp_path, fetch).run_once()
    cursor = tmp_path / "state" / "cursor.json"
    assert orgsync.load_cursor(cursor) == 5
    shutil.rmtree(tmp_path / "projects" / "homelab" / "inbox")
    assert orgsync.load_cursor(cursor) == 0
    again = syncer(tmp_path, fetch, orgsync.load_cursor(cursor)).run_once()
    assert (again.written, again.present) == (1, 4), again
    assert (tmp_path / "projects" / "homelab" / "inbox" / "from-agents" / turn(3)["file_name"]).is_file()
    assert orgsync.load_cursor(cursor) == 5
    cursor.write_text('{"url": "http://hub", "machine": "velox", "after": 5}\n')  # saved before folders were kept
    assert orgsync.load_cursor(cursor) == 0


def test_without_the_cursor_existing_identical_files_are_not_rewritten(tmp_path: Path) -> None:
    fetch = Turns(many(4))
    syncer(tmp_path, fetch).run_once()
    files = sorted((tmp_path / "projects").rglob("*.org*"))
    before = [(f.stat().st_ino, f.stat().st_mtime_ns) for f in files]
    again = syncer(tmp_path, fetch).run_once()
    assert (again.written, again.present) == (0, 4)
    assert [(f.stat().st_ino, f.stat().st_mtime_ns) for f in sorted((tmp_path / "projects").rglob("*.org*"))] \
        == before


def test_pages_follow_the_cursor_until_an_empty_page(tmp_path: Path) -> None:
    fetch = Turns(many(orgsync.PAGE + 5))
    pages: list[int] = []
    s = syncer(tmp_path, fetch)
    s.progress = lambda t: pages.append(t.written)
    assert s.run_once().written == orgsync.PAGE + 5
    assert fetch.calls == [(0, orgsync.PAGE), (orgsync.PAGE, orgsync.PAGE), (orgsync.PAGE + 5, orgsync.PAGE)]
    assert pages == [orgsync.PAGE, orgsync.PAGE + 5]


def test_a_page_the_hub_cut_by_size_is_not_taken_for_the_last(tmp_path: Path) -> None:
    fetch = Turns(many(7), cut=3)  # pages of 3, 3, 1 turns: short of PAGE, but more follow
    assert syncer(tmp_path, fetch).run_once().written == 7
    assert [a for a, _ in fetch.calls] == [0, 3, 6, 7]


def test_an_unwritable_folder_stops_the_sync_with_the_cursor_before_that_page(tmp_path: Path) -> None:
    (tmp_path / "projects" / "homelab").mkdir(parents=True)
    (tmp_path / "projects" / "homelab" / "inbox").write_text("a file where the folder should be")
    s = syncer(tmp_path, Turns(many(5)))
    try:
        s.run_once()
        raise AssertionError("expected OSError")
    except OSError:
        pass
    assert orgsync.load_cursor(tmp_path / "state" / "cursor.json") == 0  # the page is read again next time


@contextlib.contextmanager
def following(s: orgsync.Syncer, seen: Callable[[orgsync.Tally], int]) -> Iterator[tuple[queue.Queue[int],
                                                                                         queue.Queue[object]]]:
    """``s.follow`` on a thread, polling once an hour, for the block: yields (each round's ``seen(tally)``, the
    queue that wakes it as an event does); stops it after and checks that it stopped."""
    rounds: queue.Queue[int] = queue.Queue()
    s.progress = lambda t: rounds.put(seen(t))
    wake: queue.Queue[object] = queue.Queue()
    stop = threading.Event()
    runner = threading.Thread(target=s.follow, args=(wake, 3600.0, stop))
    runner.start()
    try:
        yield rounds, wake
    finally:
        stop.set()
        wake.put(None)
        runner.join(timeout=60)
    assert not runner.is_alive()


def test_follow_syncs_again_when_woken(tmp_path: Path) -> None:
    fetch = Turns(many(2))
    s = syncer(tmp_path, fetch)
    with following(s, lambda t: t.cursor) as (synced, wake):
        assert synced.get(timeout=60) == 2
        fetch.turns = many(4)
        wake.put(None)  # what an event does; the poll interval (an hour) cannot be what syncs
        assert synced.get(timeout=60) == 4
    assert s.tally.written == 4


def test_follow_starts_over_when_a_folder_it_wrote_into_is_removed(tmp_path: Path) -> None:
    """A folder removed while ``follow`` runs was noticed only by the next start (load_cursor): the follower's
    cursor was past its turns, and the folder stayed empty for as long as it ran. Each round now notices it."""
    import shutil

    fetch = Turns(many(5))
    s = syncer(tmp_path, fetch)
    with following(s, lambda t: t.written) as (synced, wake):
        assert synced.get(timeout=60) == 5
        shutil.rmtree(tmp_path / "projects" / "homelab" / "inbox")
        fetch.calls.clear()
        wake.put(None)
        assert synced.get(timeout=60) == 6  # the removed folder's one turn, written again
    assert fetch.calls[0] == (0, orgsync.PAGE)
    assert (tmp_path / "projects" / "homelab" / "inbox" / "from-agents" / turn(3)["file_name"]).is_file()
    assert (s.tally.present, orgsync.load_cursor(tmp_path / "state" / "cursor.json")) == (4, 5)


def test_config_gives_a_project_its_own_folder_and_the_seed_peers_file_is_honoured(tmp_path: Path) -> None:
    ours, seed = tmp_path / "conversations.toml", tmp_path / "peers.toml"
    ours.write_text('projects_root = "~/elsewhere"\n[projects.career]\ninbox_path = "/srv/career-in"\n')
    seed.write_text('[peers.velox]\nhost = "velox.local"\n[projects.homelab]\ninbox_path = "~/hl/in"\n'
                    '[projects.career]\ninbox_path = "/seed/loses"\n')
    boxes = Inboxes(config=ours, seed_peers=seed)
    home = Path(os.path.expanduser("~"))
    assert boxes.path_for("career") == Path("/srv/career-in")
    assert boxes.path_for("homelab") == home / "hl" / "in"
    assert boxes.path_for("kit") == home / "elsewhere" / "kit" / "inbox" / "from-agents"
    assert Inboxes(root=tmp_path, config=ours, seed_peers=seed).path_for("kit") == \
        tmp_path / "kit" / "inbox" / "from-agents"
    assert boxes.project_of(Path("/srv/career-in")) == "career"
    assert boxes.project_of(tmp_path / "x" / "Clipper" / "inbox" / "from-agents") == "Clipper"
    assert boxes.project_of(tmp_path) is None


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "conversations.toml"
    bad.write_text("[projects\n")
    try:
        Inboxes(config=bad, seed_peers=tmp_path / "none")
        raise AssertionError("expected ValueError")
    except ValueError as exc:
        assert str(bad) in str(exc) and "TOML" in str(exc)
