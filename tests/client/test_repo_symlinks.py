"""Symlinks, FIFOs and huge files a repository puts where the client keeps its own files are never followed.

A clone (git commits symlinks) or an unpacked archive (which can hold a FIFO
and its own ``.git``) may have ``.claude -> ~``, ``.claude/coord-queue.jsonl
-> /dev/zero`` or ``-> ~/.bashrc``, ``.git/info/exclude -> ~/.profile``. The
client must not read without end, write, or chmod outside the repository.
Real files, real git, real ``coord`` subprocesses.
"""

from __future__ import annotations

import contextlib
import os
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from coordhub.client import project, settings
from coordhub.client.queue import Entry, QueueUnusable, SoftfailQueue
from coordhub.client.settings import MAX_QUEUE_BYTES, QUEUE_NAME
from coordhub.errors import Invalid
from coordhub.guard import ledger
from tests.client.test_repo_attacks import GIT, Victim, cloned
from tests.client.test_repo_attacks import victim as victim  # noqa: F401 - the fixture, used by name
from tests.coordcli import Coord, git_init, isolated_env

SECRET = "the user's own file\n"


def cloned_with_links(tmp: Path, links: dict[str, str]) -> Path:
    """The attacker's repository committing each ``name -> target`` symlink, cloned; the clone's path."""
    origin = git_init(tmp / "attacker-origin")
    for name, target in links.items():
        (origin / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, origin / name)
    (origin / "README").write_text("helpful\n")
    subprocess.run([*GIT, "-C", str(origin), "add", "-A"], check=True, capture_output=True)
    subprocess.run([*GIT, "-C", str(origin), "commit", "-qm", "links"], check=True, capture_output=True)
    clone = tmp / "victim-clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
    return clone


def _one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # reading /dev/zero without a bound dies here


def test_a_queue_linked_to_dev_zero_is_passed_over_by_every_command(victim: Victim) -> None:
    clone = cloned_with_links(victim.tmp, {f".claude/{QUEUE_NAME}": "/dev/zero"})
    for args in (("msg", "inbox"), ("sync",)):
        p = subprocess.run([sys.executable, "-m", "coordhub", *args], cwd=clone, env=victim.env, capture_output=True,
                           text=True, timeout=60, preexec_fn=_one_gib)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert f"not keeping the softfail queue in {clone / '.claude'}" in p.stderr and "symlink" in p.stderr


def test_the_queue_never_writes_through_a_symlink(tmp_path: Path) -> None:
    mine = tmp_path / "bashrc"
    mine.write_text(SECRET)
    (tmp_path / ".claude").mkdir()
    os.symlink(mine, tmp_path / ".claude" / QUEUE_NAME)
    queue = SoftfailQueue(tmp_path / ".claude" / QUEUE_NAME)
    with pytest.raises(QueueUnusable, match="symlink"):
        queue.append(Entry("POST", "/api/coord/todos", {"title": "x"}, "k1"))
    assert mine.read_text() == SECRET


def test_the_queue_does_not_wait_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / QUEUE_NAME
    os.mkfifo(fifo)
    got: list[BaseException | int] = []

    def count() -> None:
        try:
            got.append(len(SoftfailQueue(fifo)))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            got.append(exc)

    t = threading.Thread(target=count, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the thread ends, then fail
        os.close(os.open(fifo, os.O_WRONLY))
        t.join(10)
        pytest.fail("reading the queue waited on a FIFO")
    assert len(got) == 1 and isinstance(got[0], QueueUnusable), got


def test_a_queue_larger_than_the_bound_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / QUEUE_NAME
    with open(path, "wb") as f:
        f.truncate(MAX_QUEUE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(QueueUnusable, match="larger than"):
        SoftfailQueue(path).pending()
    notes: list[str] = []
    (tmp_path / ".claude").mkdir()
    os.replace(path, tmp_path / ".claude" / QUEUE_NAME)
    assert settings.queue_path(tmp_path, notes) == project.state_dir() / QUEUE_NAME and "larger than" in notes[0]


def test_a_symlinked_claude_dir_holds_no_queue_and_is_never_chmodded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    repo = git_init(tmp_path / "repo")
    os.symlink(home, repo / ".claude")
    notes: list[str] = []
    assert settings.queue_path(repo, notes) == project.state_dir() / QUEUE_NAME
    assert "is a symlink" in notes[0], notes
    project.private_dir(repo / ".claude")
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


def test_a_temp_file_name_planted_as_a_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    mine = tmp_path / "bashrc"
    mine.write_text(SECRET)
    target = tmp_path / QUEUE_NAME
    os.symlink(mine, tmp_path / f".{QUEUE_NAME}.{os.getpid()}.tmp")
    project.write_private(target, "{}\n")
    assert mine.read_text() == SECRET and target.read_text() == "{}\n" and not target.is_symlink()


def test_a_linked_info_exclude_is_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "profile"
    mine.write_text(SECRET)
    repo = git_init(tmp_path / "unpacked")
    (repo / ".git" / "info" / "exclude").unlink(missing_ok=True)
    os.symlink(mine, repo / ".git" / "info" / "exclude")
    assert project.exclude(repo, ("/.claude/coord-queue.jsonl",)) is None
    assert mine.read_text() == SECRET


def test_install_hooks_refuses_a_symlinked_claude_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    repo = git_init(tmp_path / "repo")
    os.symlink(elsewhere, repo / ".claude")
    r = Coord(repo, isolated_env(tmp_path))("install-hooks")
    assert r.code == 1 and "Traceback" not in r.err, r
    assert "is a symlink" in r.err and "nothing was changed" in r.err, r
    assert list(elsewhere.iterdir()) == []
    Coord(repo, isolated_env(tmp_path)).ok("install-hooks", "--scope", "user")  # the user's own place still works


def test_the_guards_ledger_is_not_written_through_a_linked_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git_dir = git_init(tmp_path / "unpacked") / ".git"
    os.symlink(elsewhere, git_dir / "coordhub")
    with pytest.raises(OSError, match="symlink"):
        ledger.save(git_dir / "coordhub" / "leases.json", {})
    assert list(elsewhere.iterdir()) == []


def test_json_state_and_identity_files_that_never_end_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "leases.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    os.symlink("/dev/zero", zero)
    done: list[object] = []

    def read_them() -> None:
        done.append(project.read_json_object(fifo))
        done.append(project.read_json_object(zero))
        for path in (fifo, zero):
            with contextlib.suppress(Invalid):
                settings.load_identity(path)
                done.append("read")
        done.append("end")

    t = threading.Thread(target=read_them, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"waited on a FIFO or read /dev/zero: {done}")
    assert done == [{}, {}, "end"]


def test_warnings_naming_repository_paths_reach_the_terminal_escaped(victim: Victim) -> None:
    planted = '{"coord_api": "http://127.0.0.1:9", "machine": "X"}'
    clone = cloned(victim.tmp, {"\x1b]0;all good\x07/.claude/identity.json": planted})
    r = victim.coord(clone / "\x1b]0;all good\x07").ok("status")
    assert "git tracks it" in r.err and "\\x1b]0;all good\\x07" in r.err and "\x1b" not in r.err, r


@pytest.mark.parametrize("kind", ["done", "expired"])
def test_a_planted_journal_or_expired_file_moves_the_queue_to_the_state_dir(victim: Victim, kind: str) -> None:
    """Review r1: a committed ``coord-queue.done.jsonl`` (the drain's journal) or ``.expired.jsonl`` symlink made
    every drain raise queue_unusable (exit 6); the queue goes to the user's state directory instead."""
    target = victim.tmp / "victim-file"
    target.write_text(SECRET)
    clone = cloned_with_links(victim.tmp, {f".claude/coord-queue.{kind}.jsonl": str(target)})
    notes: list[str] = []
    assert settings.queue_path(clone, notes) == project.state_dir() / QUEUE_NAME
    assert f"coord-queue.{kind}.jsonl" in notes[0] and "symlink" in notes[0], notes
    r = victim.coord(clone).ok("sync")
    assert f"not keeping the softfail queue in {clone / '.claude'}" in r.err, r
    assert target.read_text() == SECRET
