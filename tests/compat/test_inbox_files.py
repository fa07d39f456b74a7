"""The org-file inbox both ways against a real hub: ``coord conv sync`` (and --follow) and ``coord conv import``.

Interoperability is checked with :mod:`tests.fakes.seed004_receiver`, a
receiver written from seed 004's documented receive rules: what sync writes
must be accepted by it, and files written here in the seed's format must be
accepted by import.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import Agent, GpgKey, World, write
from tests.fakes.seed004_receiver import receive


def send_signed(world: World, keys: dict[str, GpgKey], tmp_path: Path, n: int) -> list[str]:
    """``n`` signed turns from career to homelab through cross-agent-send; their file names."""
    assert world.career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    names = []
    for i in range(1, n + 1):
        msg = write(tmp_path / f"out{i}.org", world.org(sequence=i, body=f"turn {i}\n",
                                                      kind="request" if i == 1 else "progress"))
        r = world.career.drop("send", world.homelab.address, str(msg))
        assert r.code == 0, r
        names.append(r.out.strip().rsplit("/", 1)[1])
    return names


def public_keyring(tmp_path: Path, key: GpgKey) -> Path:
    """A GnuPG home holding only ``key``'s public half: what a seed-004 receiver has of its sender."""
    home = tmp_path / "receiver-gnupg"
    home.mkdir(mode=0o700)
    done = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-autostart", "--import"],
                          input=key.armored.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return home


def test_sync_writes_seed_files_a_seed_receiver_accepts_and_a_second_sync_writes_nothing(
        world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    homelab = world.homelab
    names = send_signed(world, keys, tmp_path, 3)
    unsigned = world.career.coord("conv", "send", homelab.address, "--conversation", world.conv + "-u", "--type",
                                  "request", "--body", "unsigned", "--json").json()
    first = homelab.coord("conv", "sync")
    assert first.code == 0 and first.out.strip() == "4 turns written", first
    assert "turns written" not in first.err, first  # review (seed-004 user run): said on stderr too
    inbox = homelab.inbox
    assert sorted(p.name for p in inbox.glob("*.org")) == sorted([*names, unsigned["file_name"]])
    assert sorted(p.name for p in inbox.glob("*.asc")) == sorted(n + ".asc" for n in names)
    assert not [p for p in inbox.iterdir() if p.name.startswith(".tmp.")]
    ring = public_keyring(tmp_path, keys["career"])
    for name in names:
        assert receive(inbox / name, ring) == ("process", None), name
        # what the hub holds is byte for byte what was signed and what the file holds
        assert "#+TIMESTAMP: 2026-04-27T04:11:42-05:00" in (inbox / name).read_text()
    assert receive(inbox / unsigned["file_name"], ring)[0] == "reject"  # unsigned: the seed's receivers refuse it
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in inbox.iterdir()}

    assert homelab.coord("conv", "sync").out.strip() == "0 turns written"
    for cursor in (Path(homelab.env["XDG_STATE_HOME"]) / "coordhub" / "conv-sync").iterdir():
        cursor.unlink()
    again = homelab.coord("conv", "sync", "--json").json()
    assert (again["written"], again["present"]) == (0, 4)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in inbox.iterdir()} == stamps

    other = tmp_path / "elsewhere"
    moved = homelab.coord("conv", "sync", "--inbox-root", str(other))
    assert moved.out.strip() == "4 turns written"
    assert sorted(p.name for p in (other / "homelab" / "inbox" / "from-agents").glob("*.org")) == \
        sorted(p.name for p in inbox.glob("*.org"))


def test_a_different_file_under_a_turns_name_is_kept_and_the_turn_takes_another(world: World,
                                                                                tmp_path: Path) -> None:
    homelab = world.homelab
    turn = world.career.coord("conv", "send", homelab.address, "--conversation", world.conv, "--type", "request",
                              "--body", "b", "--json").json()
    squatter = write(homelab.inbox / turn["file_name"], "not this turn\n")
    r = homelab.coord("conv", "sync")
    assert r.code == 0 and "1 under another name" in r.out, r
    assert squatter.read_text() == "not this turn\n"
    moved = homelab.inbox / (turn["file_name"].removesuffix(".org") + f"-t{turn['id']}.org")
    assert moved.read_text() == turn["content"]


def test_sync_never_shows_an_org_without_its_asc(world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    """A reader polls the folder the whole time sync writes signed turns; every .org it sees has its .asc."""
    send_signed(world, keys, tmp_path, 6)
    inbox = world.homelab.inbox
    inbox.mkdir(parents=True)
    stop = threading.Event()
    seen: list[tuple[str, bool]] = []

    def watch() -> None:
        while not stop.is_set():
            names = set(os.listdir(inbox))
            seen.extend((n, n + ".asc" in names) for n in names if n.endswith(".org") and not n.startswith(".tmp."))

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        assert world.homelab.coord("conv", "sync").code == 0
    finally:
        stop.set()
        reader.join()
    assert seen and all(has_asc for _, has_asc in seen), [n for n, ok in seen if not ok]


def test_sync_follow_writes_turns_as_they_arrive(world: World) -> None:
    homelab = world.homelab
    lines: list[str] = []  # the syncer writes a turn's file before it reports it: wait for both
    with subprocess.Popen([sys.executable, "-m", "coordhub", "conv", "sync", "--follow", "--poll", "3600"],
                          cwd=homelab.cwd, env=homelab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
        reader.start()
        try:
            for i in (1, 2):
                t = world.career.coord("conv", "send", homelab.address, "--conversation", world.conv, "--type",
                                       "progress", "--body", f"step {i}", "--json").json()
                deadline = time.monotonic() + 60
                said = f"{i} turn{'s' if i > 1 else ''} written\n"
                while not ((homelab.inbox / t["file_name"]).exists() and said in lines):
                    assert proc.poll() is None, (lines, stderr.read())
                    assert time.monotonic() < deadline, f"sync --follow did not write turn {i}: {lines}"
                    time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            reader.join(timeout=30)
        err = stderr.read()
    assert "Traceback" not in err, err
    assert lines == ["1 turn written\n", "2 turns written\n"]  # review: it said "1 turns"


def seed_inbox(agent: Agent, key: GpgKey, conv: str) -> Path:
    """A project inbox as a seed-004 machine leaves it: signed turns of one conversation, one unsigned note."""
    inbox = agent.inbox
    for seq, kind, body in ((1, "request", "Please fix the prep script.\n"), (2, "progress", "On it.\n"),
                            (3, "complete", "Done: see commit 1a2b3c.\n")):
        text = (f"#+TITLE: Prep fix-up\n#+CONVERSATION_ID: {conv}\n#+MESSAGE_TYPE: {kind}\n#+SEQUENCE: {seq}\n"
                f"#+TIMESTAMP: 2026-04-27T0{seq}:11:42-05:00\n#+PROTOCOL_VERSION: 5\n#+WORKFLOW_VERSION: 3\n\n{body}")
        path = write(inbox / f"20260427T0{seq}1142Z-from-career-{conv}.org", text)
        write(Path(str(path) + ".asc"), key.sign(path.read_bytes()))
    write(inbox / f"20260427T091500Z-from-kit-{conv}-note.org",
          f"#+TITLE: A note\n#+CONVERSATION_ID: {conv}-note\n#+MESSAGE_TYPE: request\n#+SEQUENCE: 1\n"
          "#+TIMESTAMP: 2026-04-27T09:15:00Z\n#+PROTOCOL_VERSION: 5\n#+REQUIRES_TOOLS: sh\n\nunsigned\n")
    return inbox


def test_import_of_a_seed_inbox_then_again_is_all_dedup(world: World, keys: dict[str, GpgKey],
                                                        tmp_path: Path) -> None:
    homelab = world.homelab
    assert homelab.coord("conv", "tools", "set", "sh").code == 0
    inbox = seed_inbox(homelab, keys["career"], world.conv)
    ring = public_keyring(tmp_path, keys["career"])
    for path in inbox.glob("*.org"):  # the files are what a seed-004 receiver accepts (the note is unsigned)
        assert receive(path, ring)[0] == ("process" if Path(str(path) + ".asc").exists() else "reject")
    r = homelab.coord("conv", "import", str(inbox), "--json")
    assert r.code == 0, r
    got = r.json()
    assert got["counts"] == {"process": 4, "dedup": 0, "query": 0, "reject": 0, "error": 0}
    assert {f["to"] for f in got["files"]} == {homelab.address}  # a file in homelab's inbox was sent to homelab
    shown = homelab.coord("conv", "show", world.conv, "--json").json()
    assert [(t["sequence"], t["type"], t["signature"] is not None) for t in shown["turns"]] == \
        [(1, "request", True), (2, "progress", True), (3, "complete", True)]
    assert shown["turns"][0]["content"] == (inbox / sorted(p.name for p in inbox.glob("*.org"))[0]).read_text()
    again = homelab.coord("conv", "import", str(inbox))
    assert again.code == 0 and again.out.splitlines()[-1] == "4 file(s): 4 dedup", again


def test_import_of_junk_reports_each_file_and_sends_nothing(world: World, tmp_path: Path) -> None:
    homelab = world.homelab
    junk = tmp_path / "junk"
    write(junk / "notes.txt", "just notes\n")
    write(junk / "binary.org", bytes(range(256)))
    write(junk / "no-title.org", world.org().replace("#+TITLE: Prep fix-up\n", ""))
    write(junk / "bad-type.org", world.org(kind="memo"))
    write(junk / "bad-seq.org", world.org(sequence="two"))
    write(junk / "orphan.org.asc", "-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n")
    write(junk / "bad-sig.org", world.org(conversation=world.conv + "-s"))
    write(junk / "bad-sig.org.asc", "not a signature\n")
    write(junk / ".tmp.abc-half.org", "#+TITLE: half written")  # a writer's staging file: skipped
    (junk / "subdir").mkdir()
    r = homelab.coord("conv", "import", str(junk))
    assert r.code == 1, r
    reasons = dict(line.split(": error — ", 1) for line in r.out.splitlines()[:-1])
    assert reasons == {
        str(junk / "bad-seq.org"): "SEQUENCE must be an integer from -2147483647 to 2147483647 (digits, an "
                                   "optional sign; the hub numbers turns 1, 2, 3… itself); got 'two'",
        str(junk / "bad-sig.org"): "bad-sig.org.asc: signature must be one ASCII-armored detached OpenPGP "
                                   "signature (-----BEGIN PGP SIGNATURE----- … -----END PGP SIGNATURE-----, at most "
                                   "16384 bytes), as `gpg --detach-sign --armor` writes",
        str(junk / "bad-type.org"): "invalid MESSAGE_TYPE: 'memo'; expected one of request, progress, query, "
                                    "pushback, complete, release, escalate",
        str(junk / "binary.org"): "message file is not UTF-8 (byte 128): seed-004 files are UTF-8 text",
        str(junk / "no-title.org"): "frontmatter missing required fields: TITLE",
        str(junk / "notes.txt"): "not a seed-004 message file (*.org)",
        str(junk / "orphan.org.asc"): "a signature without its .org message file",
    }
    assert r.out.splitlines()[-1] == "7 file(s): 7 error"
    assert homelab.coord("conv", "list", "--json").json() == []  # nothing reached the hub
    assert homelab.coord("conv", "import", str(junk / "missing")).code == 2


def test_import_destination_and_decisions(world: World, tmp_path: Path) -> None:
    homelab, conv = world.homelab, world.conv
    loose = tmp_path / "loose"
    write(loose / "a.org", world.org(body="a\n"))
    write(loose / "v4.org", world.org(conversation=conv + "-v4", version="4"))
    out = homelab.coord("conv", "import", str(loose), "--json")
    assert out.code == 0, out
    by = {Path(f["file"]).name: f for f in out.json()["files"]}
    assert by["a.org"]["decision"] == "process" and by["a.org"]["to"] == homelab.address  # the caller's own project
    assert by["v4.org"]["decision"] == "query" and "PROTOCOL_VERSION" in by["v4.org"]["reason"]
    # review (seed-004 user run): a turn that took no sequence was "… #None → …"
    plain = homelab.coord("conv", "import", str(write(tmp_path / "v4b" / "c.org", world.org(
        conversation=conv + "-v4b", version="4"))))
    assert plain.code == 0 and re.search(rf": query \(turn \d+: {re.escape(conv)}-v4b #- → "
                                         rf"{re.escape(homelab.address)}\) — PROTOCOL_VERSION", plain.out), plain
    to = homelab.coord("conv", "import", str(write(tmp_path / "b.org", world.org(body="b\n"))), "--to",
                       world.career.address, "--json").json()
    assert to["files"][0]["to"] == world.career.address and to["files"][0]["decision"] == "process"


def test_sync_follow_reads_again_once_the_event_stream_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn sent while the follower's event stream is still opening raises no event for it, and the first sync
    may have read before it: the sync run when the hub accepts the stream reads it (else it waits for --poll)."""
    from coordhub.cli import orginbox
    from coordhub.compat.orgsync import Syncer

    runs: list[float] = []
    release = threading.Event()

    class Stream:  # the second client: its stream is accepted a moment after the first sync, and stays quiet
        def __enter__(self) -> Stream:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def events(self, kinds: str | None = None, on_connect: Any = None) -> Iterator[dict[str, Any]]:
            time.sleep(0.3)
            if on_connect is not None:
                on_connect()
            release.wait(30)
            yield from ()

    monkeypatch.setattr(orginbox, "client", lambda ctx: Stream())
    syncer = types.SimpleNamespace(run_once=lambda: runs.append(time.monotonic()))
    syncer.follow = functools.partial(Syncer.follow, syncer)
    threading.Thread(target=orginbox._follow, args=(None, syncer, 3600.0), daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(runs) >= 2, "no sync once the stream was accepted: a turn sent meanwhile waits for --poll"
    finally:
        release.set()


def test_signed_history_with_gaps_says_to_import_it_unsigned(world: World, keys: dict[str, GpgKey]) -> None:
    """An inbox holds one side's turns, so their signed SEQUENCE numbers have gaps the hub's cannot follow. Review:
    the error said to renumber and re-sign, which an importer cannot do to another's file."""
    homelab = world.homelab
    inbox = homelab.inbox
    for seq, kind in ((1, "request"), (3, "progress"), (5, "release")):
        text = (f"#+TITLE: Gaps\n#+CONVERSATION_ID: {world.conv}-gaps\n#+MESSAGE_TYPE: {kind}\n#+SEQUENCE: {seq}\n"
                f"#+TIMESTAMP: 2026-04-27T0{seq}:11:42Z\n#+PROTOCOL_VERSION: 5\n\nturn {seq}\n")
        path = write(inbox / f"20260427T0{seq}1142Z-from-career-{world.conv}-gaps.org", text)
        write(Path(str(path) + ".asc"), keys["career"].sign(path.read_bytes()))
    r = homelab.coord("conv", "import", str(inbox), "--json")
    assert r.code == 1, r
    errors = [f for f in r.json()["files"] if f["decision"] == "error"]
    assert len(errors) == 2 and all("--unsigned" in f["reason"] and "sequence_taken" in f["reason"]
                                    for f in errors), errors
    again = homelab.coord("conv", "import", str(inbox), "--unsigned", "--json")
    assert again.code == 0 and again.json()["counts"]["error"] == 0, again
    shown = homelab.coord("conv", "show", f"{world.conv}-gaps", "--json").json()
    assert shown["state"] == "released" and [t["sequence"] for t in shown["turns"]] == [1, 2, 3]


def test_importing_an_inbox_sync_wrote_sends_none_of_its_turns_again(world: World, keys: dict[str, GpgKey],
                                                                      tmp_path: Path) -> None:
    """Review (seed-004 user run): the files ``coord conv sync`` writes are turns the hub holds, sent by their
    author; importing the inbox afterwards sent each one again as the importer's (the hub's dedup is per author),
    so the conversation held every turn twice and the receiver saw them pending again."""
    homelab = world.homelab
    send_signed(world, keys, tmp_path, 2)
    unsigned = world.career.coord("conv", "send", homelab.address, "--conversation", world.conv, "--type",
                                  "progress", "--body", "unsigned note", "--json")
    assert unsigned.code == 0, unsigned
    assert homelab.coord("conv", "sync").code == 0
    before = homelab.coord("conv", "status", "--json").json()
    for flags in ((), ("--unsigned",)):
        r = homelab.coord("conv", "import", str(homelab.inbox), *flags, "--json")
        assert r.code == 0, r
        files = r.json()["files"]
        assert r.json()["counts"]["dedup"] == 3 == len(files), r
        assert all(f["reason"].startswith("already at the hub as turn ") and f["sequence"] in (1, 2, 3)
                   for f in files), files
    shown = homelab.coord("conv", "show", world.conv, "--json").json()
    assert [(t["sequence"], t["author"]) for t in shown["turns"]] == [(i, world.career.session) for i in (1, 2, 3)]
    pending = [(p["name"], p["pending_count"], (p["most_recent"] or {}).get("filename"))
               for p in homelab.coord("conv", "status", "--json").json()["projects"]]
    assert pending == [(p["name"], p["pending_count"], (p["most_recent"] or {}).get("filename"))
                       for p in before["projects"]]
    # a file of the same conversation the hub does not hold yet is still imported
    extra = write(homelab.inbox / "20260427T101010Z-from-career-extra.org", world.org(kind="progress", body="new\n"))
    r = homelab.coord("conv", "import", str(extra), "--json")
    assert r.code == 0 and r.json()["files"][0]["decision"] == "process", r
