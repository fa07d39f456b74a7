"""Two ``coord conv release --sign`` racing, as real ``coord`` processes against a real hub, on both backends.

Review, seed-004 user run: two sessions of one project released a conversation at once. Each read it open, asked
the next sequence (N) and signed it; the first took N, the second met 409 ``sequence_taken``, signed N+1 and
recorded a second release turn. The hub now answers a release to a released conversation with the release that
did it, in the write's transaction, so the race ends as the two releases one after the other would: one release
turn, the loser told ``already released … nothing sent`` (exit 0).

The race is forced, not hoped for: both processes find a ``gpg`` on ``PATH`` that waits, on its first
``--detach-sign``, until the other process reached its own (so both signed the same sequence), then runs the real
one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.compat.conftest import GpgKey, World, agent, write

BARRIER_GPG = """#!/bin/sh
# the first signature of each process waits (up to 30 s) until two processes are signing; then the real gpg
case " $* " in
  *" --detach-sign "*)
    touch "{barrier}/$PPID"
    i=0
    while [ "$(ls "{barrier}" | wc -l)" -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done ;;
esac
exec {gpg} "$@"
"""


def barrier_path(tmp_path: Path) -> str:
    """A ``PATH`` whose ``gpg`` is :data:`BARRIER_GPG`."""
    real = shutil.which("gpg")
    assert real is not None
    (tmp_path / "barrier").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gpg = bin_dir / "gpg"
    gpg.write_text(BARRIER_GPG.format(barrier=tmp_path / "barrier", gpg=real), encoding="utf-8")
    gpg.chmod(0o755)
    return f"{bin_dir}:{Path(real).parent}:/usr/bin:/bin"


def test_two_signed_releases_racing_leave_one_release(world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    career, homelab, conv = world.career, world.homelab, world.conv
    # a second session at the same address (another agent of the project), signing with a key of its own
    second = agent(world.hub, tmp_path / "second", career.session.replace("/career", "/career2"), "career",
                   keys["stranger"].home)
    assert second.coord("conv", "profile").code == 0
    signers = ((career, keys["career"]), (second, keys["stranger"]))
    try:
        for who, key in signers:
            assert who.coord("conv", "keys", "add", "--gpg", key.fingerprint).code == 0
        assert career.coord("conv", "send", homelab.address, "--conversation", conv, "--type", "request",
                            "--title", "Prep fix-up", "--body", "Please fix the prep script.", "--sign").code == 0
        assert homelab.coord("conv", "send", career.address, "--conversation", conv, "--type", "complete",
                             "--body", "Fixed.").code == 0

        path = barrier_path(tmp_path)
        procs = [subprocess.Popen([sys.executable, "-m", "coordhub", "conv", "release", conv, "--key",
                                   key.fingerprint], cwd=who.cwd, env={**who.env, "PATH": path},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                 for who, key in signers]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert len(list((tmp_path / "barrier").iterdir())) >= 2  # both reached gpg: the race took place

        turns = career.coord("conv", "show", conv, "--json").json()["turns"]
        releases = [t for t in turns if t["type"] == "release"]
        assert len(releases) == 1, turns
        assert (releases[0]["sequence"], releases[0]["verified"]) == (3, True)
        lines = sorted(out.strip() for out, _ in outs)
        assert lines[0].startswith(f"already released {conv} by turn {releases[0]['id']} #3 → {homelab.address} "
                                   f"(released by {releases[0]['author']}); nothing sent"), outs
        assert lines[1].startswith(f"released {conv} (complete) with turn {releases[0]['id']} #3"), outs
        synced = homelab.coord("conv", "sync")
        assert synced.code == 0, synced
        assert len(list(homelab.inbox.glob("*-3.org"))) == 1 and not list(homelab.inbox.glob("*-4.org"))
    finally:
        for who, key in signers:
            httpx2.delete(f"{world.hub.url}/api/coord/conversations/keys/{key.fingerprint}",
                          headers={"Authorization": f"Bearer {who.env['COORD_TOKEN']}"}, timeout=30)


def test_cross_agent_send_of_a_release_to_a_released_conversation_says_so(world: World, tmp_path: Path) -> None:
    career, homelab, conv = world.career, world.homelab, world.conv
    assert career.coord("conv", "send", homelab.address, "--conversation", conv, "--type", "request", "--title",
                        "Prep fix-up", "--body", "Please fix it.").code == 0
    first = career.coord("conv", "release", conv, "--json").json()
    late = tmp_path / "late.org"
    late.write_text(world.org(kind="release", sequence=3, body="Closing too.\n", RELEASE_STATUS="cancelled"),
                    encoding="utf-8")
    r = homelab.drop("send", career.address, str(late), "--no-sign")
    assert r.code == 0, r
    assert r.out.strip() == f"already released: {first['to']}/{first['file_name']}", r  # not "sent:" (review)
    assert f"was released already, by turn {first['id']} #2 (released by {career.session})" in r.err, r
    assert "numbered" not in r.err, r
    # signed: the copy was renumbered from 7 to 3 and signed, but nothing was recorded: no "carries 3" note
    stale = tmp_path / "stale.org"
    stale.write_text(world.org(kind="release", sequence=7, body="Closing too.\n", RELEASE_STATUS="cancelled"),
                     encoding="utf-8")
    signed = career.drop("send", homelab.address, str(stale))
    assert signed.code == 0 and signed.out.strip() == r.out.strip(), signed
    assert "was released already" in signed.err and "SEQUENCE" not in signed.err, signed


def test_importing_history_with_the_seeds_two_releases_keeps_one_and_says_why(world: World) -> None:
    """Seed 004 let both parties release (its own race): the second release file imports as dedup, with a reason."""
    homelab, conv = world.homelab, f"{world.conv}-old"
    for n, (kind, status) in enumerate((("request", None), ("release", "complete"), ("release", "cancelled"))):
        extra = {"RELEASE_STATUS": status} if status else {}
        write(homelab.inbox / f"2026042{n}T101142Z-from-career-{conv}.org",
              world.org(conversation=conv, kind=kind, sequence=n + 1, timestamp=f"2026-04-2{n}T10:11:42Z",
                        body=f"turn {n}\n", **extra))
    r = homelab.coord("conv", "import", str(homelab.inbox), "--unsigned", "--json")
    assert r.code == 0, r
    files = sorted(r.json()["files"], key=lambda f: f["file"])
    assert [f["decision"] for f in files] == ["process", "process", "dedup"], files
    assert files[2]["reason"] == (f"released already by turn {files[1]['turn_id']} (released by {homelab.session}); "
                                  "this release was not recorded"), files


PAUSING_GPG = """#!/bin/sh
# a signature waits (up to 30 s) for the test to let it go, once it says it is signing; then the real gpg
case " $* " in
  *" --detach-sign "*)
    touch "{flags}/signing"
    i=0
    while [ ! -e "{flags}/go" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done ;;
esac
exec {gpg} "$@"
"""


@pytest.mark.parametrize("how", ["release", "send", "cross-agent-send"])
def test_a_turn_arriving_while_a_release_is_signed_stops_it(world: World, keys: dict[str, GpgKey],
                                                            tmp_path: Path, how: str) -> None:
    """Review, seed-004 typed conversations: the other party's ordinary turn took the sequence a signed release
    signed; the client signed the next number and closed the conversation over a turn its author never saw. Now
    it sends nothing, names the turn and exits 4 (conflict); released again, after reading it, it goes. The same
    for ``coord conv send --type release --sign``, and for ``cross-agent-send`` of a release file (exit 1, the
    seed's general error: its 4 means a bad frontmatter)."""
    career, homelab, conv = world.career, world.homelab, world.conv
    key = keys["career"]
    assert career.coord("conv", "keys", "add", "--gpg", key.fingerprint).code == 0
    try:
        assert career.coord("conv", "send", homelab.address, "--conversation", conv, "--type", "request",
                            "--title", "Prep fix-up", "--body", "Please fix the prep script.", "--sign").code == 0
        assert homelab.coord("conv", "send", career.address, "--conversation", conv, "--type", "complete",
                             "--body", "Fixed.").code == 0
        real = shutil.which("gpg")
        assert real is not None
        flags, bin_dir = tmp_path / "flags", tmp_path / "bin"
        flags.mkdir()
        bin_dir.mkdir()
        (bin_dir / "gpg").write_text(PAUSING_GPG.format(flags=flags, gpg=real), encoding="utf-8")
        (bin_dir / "gpg").chmod(0o755)
        path = f"{bin_dir}:{Path(real).parent}:/usr/bin:/bin"
        release = tmp_path / "release.org"
        release.write_text(world.org(kind="release", sequence=3, title="Prep fix-up", body="Done.\n",
                                     RELEASE_STATUS="complete"), encoding="utf-8")
        command = {"release": ["coordhub", "conv", "release", conv, "--sign"],
                   "send": ["coordhub", "conv", "send", homelab.address, "--conversation", conv, "--type", "release",
                            "--release-status", "complete", "--body", "Done.", "--sign"],
                   "cross-agent-send": ["coordhub.compat.crossagent", "send", homelab.address, str(release)]}[how]
        proc = subprocess.Popen([sys.executable, "-m", *command],
                                cwd=career.cwd, env={**career.env, "PATH": path, "GPG_USER": key.fingerprint},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            for _ in range(600):  # the release signs sequence 3 now
                if (flags / "signing").exists() or proc.poll() is not None:
                    break
                time.sleep(0.05)
            assert (flags / "signing").exists(), proc.communicate(timeout=30)
            assert homelab.coord("conv", "send", career.address, "--conversation", conv, "--type", "pushback",
                                 "--title", "Not done yet", "--body", "The CI still fails.").code == 0
        finally:
            (flags / "go").touch()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == (1 if how == "cross-agent-send" else 4), (out, err)
        assert f"turn #3 pushback by {homelab.session} ({homelab.address}): Not done yet arrived; nothing sent" \
            in err, err
        assert f"coord conv show {conv}" in err and "Traceback" not in err, err
        shown = career.coord("conv", "show", conv, "--json").json()
        assert shown["state"] != "released" and [t["type"] for t in shown["turns"]] == [
            "request", "complete", "pushback"], shown

        again = career.coord("conv", "release", conv, "--key", key.fingerprint)  # read it; release again
        assert again.code == 0 and again.out.startswith(f"released {conv} (complete) with turn "), again
        assert [t["type"] for t in career.coord("conv", "show", conv, "--json").json()["turns"]] == [
            "request", "complete", "pushback", "release"]
    finally:
        httpx2.delete(f"{world.hub.url}/api/coord/conversations/keys/{key.fingerprint}",
                      headers={"Authorization": f"Bearer {career.env['COORD_TOKEN']}"}, timeout=30)
