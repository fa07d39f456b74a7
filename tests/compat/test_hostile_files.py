"""Message files someone else put in an inbox: signatures by keys out of good standing, oversized files.

Whoever can write into a project's ``inbox/from-agents/`` (a shared folder, a
cloned repository) chooses every byte there, so the receiver's checks must
hold against files made to pass them.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.conftest import GpgKey, World, fields, write

PAST = "20200101T120000!"  # gpg --faked-system-time: a key made, and a signature made, in 2020


def gpg(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase",
                           "", *args], input=stdin, capture_output=True, check=True)


def signer(home: Path, name: str, *extra: str, expire: str = "never") -> str:
    """A new ed25519 key in ``home`` (``extra`` gpg options, e.g. a faked time); its fingerprint."""
    home.mkdir(mode=0o700, parents=True)
    gpg(home, *extra, "--quick-gen-key", f"{name} <{name}@example.org>", "ed25519", "sign", expire)
    listing = gpg(home, "--with-colons", "--list-keys").stdout.decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def reader_with(tmp_path: Path, signer_home: Path, fingerprint: str, *extra: bytes) -> dict[str, str]:
    """A receiver's keyring holding the signer's public key (and ``extra`` armored blocks, e.g. its revocation)."""
    reader = tmp_path / "reader"
    reader.mkdir(mode=0o700)
    gpg(reader, "--import", stdin=gpg(signer_home, "--armor", "--export", fingerprint).stdout)
    for block in extra:
        gpg(reader, "--import", stdin=block)
    return {"GNUPGHOME": str(reader)}


def signed(path: Path, text: str, home: Path, fingerprint: str, *extra: str) -> Path:
    write(path, text)
    write(Path(f"{path}.asc"), gpg(home, *extra, "--local-user", fingerprint, "--detach-sign", "--armor",
                                   "--output", "-", str(path)).stdout)
    return path


def kill_agents(*homes: Path) -> None:
    for home in homes:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def test_recv_rejects_a_signature_by_a_revoked_key(world: World, tmp_path: Path) -> None:
    """gpg exits 0 (and says VALIDSIG) for a good signature by a revoked key: a stolen key, revoked by its owner,
    must not make a planted file ``process``."""
    home = tmp_path / "revoked"
    fpr = signer(home, "revoked")
    try:
        msg = signed(tmp_path / "inbox" / "m.org", world.org(), home, fpr)
        cert = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
        revocation = cert.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----")
        env = reader_with(tmp_path, home, fpr, revocation.encode())
        r = world.homelab.drop("recv", str(msg), env=env)
        assert (r.code, fields(r)["decision"]) == (3, "reject"), r
        assert fields(r)["reason"] == f"gpg verify failed: signing key {fpr[-16:]} was revoked", r
    finally:
        kill_agents(home, tmp_path / "reader")


def test_recv_rejects_a_signature_by_an_expired_key(world: World, tmp_path: Path) -> None:
    """Made in 2020 by a key that expired a day later: gpg exits 0 with EXPKEYSIG; the hub's check
    (python-gnupg) refuses it, so the receiver does too."""
    home = tmp_path / "expired"
    fpr = signer(home, "expired", "--faked-system-time", PAST, expire="1d")
    try:
        msg = signed(tmp_path / "inbox" / "m.org", world.org(), home, fpr, "--faked-system-time", PAST)
        env = reader_with(tmp_path, home, fpr)
        r = world.homelab.drop("recv", str(msg), env=env)
        assert (r.code, fields(r)["decision"]) == (3, "reject"), r
        assert fields(r)["reason"] == f"gpg verify failed: signing key {fpr[-16:]} has expired", r
        # the same file signed by a key in good standing is processed: only the key's standing decides
        good = tmp_path / "good"
        good_fpr = signer(good, "good")
        ok = signed(tmp_path / "inbox2" / "m.org", world.org(), good, good_fpr)
        fine = world.homelab.drop("recv", str(ok), env={"GNUPGHOME": str(good)})
        assert (fine.code, fields(fine)["decision"]) == (0, "process"), fine
    finally:
        kill_agents(home, tmp_path / "reader", tmp_path / "good")


BIG = 2 * 2**30  # a sparse file of 2 GiB: no disk, but reading it whole needs 2 GiB of memory
MEMORY = 2**30   # the address space the commands below run in: ample for them, not for such a file


def capped(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``cmd`` with at most :data:`MEMORY` of address space (a file read whole fails with MemoryError)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, preexec_fn=limit,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def sparse(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(BIG)
    return path


def test_recv_never_reads_an_oversized_file_whole(world: World, tmp_path: Path) -> None:
    """A huge ``.org`` beside the message (dedup looks at every sibling) or as the message itself: each recv in
    that folder read it whole, a MemoryError (or the OOM killer) for every agent polling the inbox."""
    inbox = tmp_path / "inbox"
    msg = write(inbox / "a.org", world.org())
    big = sparse(inbox / "big.org")
    recv = [sys.executable, "-m", "coordhub.compat.crossagent", "recv", "--no-verify"]
    code, out, err = capped([*recv, str(msg)], world.homelab.cwd, world.homelab.env)
    assert (code, out.splitlines()[:1], "Traceback" in err) == (0, ["decision: process"], False), err[-2000:]
    code, out, err = capped([*recv, str(big)], world.homelab.cwd, world.homelab.env)
    assert (code, "Traceback" in err) == (3, False), err[-2000:]
    assert out.splitlines()[:2] == ["decision: reject",
                                    f"reason: cannot read: message file is {BIG} bytes; the limit is 262144"], out


def test_import_never_reads_an_oversized_file_whole(world: World, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    write(inbox / "a.org", world.org())
    sparse(inbox / "big.org")
    write(inbox / "c.org", world.org(conversation=world.conv + "-c"))
    sparse(inbox / "c.org.asc")
    code, out, err = capped([sys.executable, "-m", "coordhub", "conv", "import", str(inbox), "--json"],
                            world.homelab.cwd, world.homelab.env)
    assert (code, "Traceback" in err) == (1, False), err[-2000:]
    by = {Path(f["file"]).name: (f["decision"], f["reason"]) for f in json.loads(out)["files"]}
    assert by == {"a.org": ("process", None),
                  "big.org": ("error", f"message file is {BIG} bytes; the limit is 262144"),
                  "c.org": ("error", f"c.org.asc: signature file is {BIG} bytes; the limit is 16384")}, by


def deflated(*chunks: bytes) -> bytes:
    """An OpenPGP compressed data packet (RFC 4880 §5.6: old-format tag 8, indeterminate length, ZIP) of
    ``chunks``."""
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"\xa3\x01" + b"".join([z.compress(c) for c in chunks] + [z.flush()])


def armored(packets: bytes) -> str:
    import base64
    import textwrap

    return "\n".join(["-----BEGIN PGP SIGNATURE-----", "", *textwrap.wrap(base64.b64encode(packets).decode(), 64),
                      "-----END PGP SIGNATURE-----", ""])


def test_recv_never_hands_gpg_a_signature_file_that_is_not_signature_packets(world: World, tmp_path: Path) -> None:
    """A ``.asc`` of a few KiB whose compressed packet inflates to a gigabyte of marker packets: gpg unpacks it all
    (seconds of CPU per GiB, up to recv's two-minute gpg timeout) before it says there is no signature, on every
    recv of the file. The hub checks a signature's packets before gpg sees it (coordhub.openpgp); so does recv."""
    marker = b"\xca\x03PGP" * 200_000  # marker packets (tag 10, RFC 4880 §5.8), 1 MB
    bomb = armored(deflated(deflated(*[marker] * 1000)))
    assert len(bomb) < 16 * 1024
    msg = write(tmp_path / "inbox" / "m.org", world.org())
    write(Path(f"{msg}.asc"), bomb)
    r = world.homelab.drop("recv", str(msg))
    assert (r.code, fields(r)["reason"]) == (3, "gpg verify failed: m.org.asc is not one armored detached "
                                                "signature (`gpg --detach-sign --armor` writes one): signature "
                                                "packets only"), r
    big = write(Path(f"{msg}.asc"), "\n".join(["-----BEGIN PGP SIGNATURE-----", "A" * 20_000,
                                               "-----END PGP SIGNATURE-----", ""]))
    r = world.homelab.drop("recv", str(msg))
    assert (r.code, fields(r)["reason"]) == (3, f"gpg verify failed: m.org.asc is {big.stat().st_size} bytes; the "
                                                "limit is 16384"), r


def test_a_planted_identity_file_does_not_take_recv_out_of_this_machines_halt(world: World, tmp_path: Path) -> None:
    """A repository's ``.claude/identity.json`` may name another machine (seed 000's ``machine``); the drop-ins then
    looked only for halts over that machine, so recv answered ``process`` (exit 0) under a halt the hub says
    applies to this token's session. A halt the hub marks as applying to the caller now always counts."""
    career = world.career
    msg = write(tmp_path / "m.org", world.org())
    assert career.drop("halt", "runaway poll loop", "--no-stop-watcher").code == 0
    write(career.cwd / ".claude" / "identity.json", json.dumps({"machine": "elsewhere"}))
    r = career.drop("recv", "--no-verify", str(msg))
    assert (r.code, r.out) == (5, ""), r
    assert f"runaway poll loop (machine:{career.machine}" in r.err, r
    sent = career.drop("send", world.homelab.address, str(msg), "--no-sign")
    assert sent.code == 5 and "runaway poll loop" in sent.err, sent


def test_a_fifo_under_a_turns_name_does_not_hang_sync(world: World) -> None:
    """A sender learns its turn's file name from the hub's answer; whoever can write the receiver's inbox folder
    then puts a FIFO under that name (or its ``.asc``). Sync opened it to compare contents and waited forever for
    a writer: no turn after it was delivered. A name holding anything but a regular file is taken by something
    else, like a different file."""
    homelab = world.homelab
    for suffix in ("", ".asc"):
        turn = world.career.coord("conv", "send", homelab.address, "--conversation", world.conv, "--type", "request",
                                  "--body", f"b{suffix}", "--json").json()
        homelab.inbox.mkdir(parents=True, exist_ok=True)
        os.mkfifo(homelab.inbox / (turn["file_name"] + suffix))
        try:
            p = subprocess.run([sys.executable, "-m", "coordhub", "conv", "sync"], cwd=homelab.cwd, env=homelab.env,
                               capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"coord conv sync hung on a FIFO named {turn['file_name'] + suffix}") from None
        assert p.returncode == 0 and "1 under another name" in p.stdout, p
        moved = homelab.inbox / (turn["file_name"].removesuffix(".org") + f"-t{turn['id']}.org")
        assert moved.read_text() == turn["content"]


def test_import_of_a_folder_does_not_follow_a_symlink_out_of_it(world: World, tmp_path: Path) -> None:
    """Seed 004's peers wrote into the inbox (rsync keeps symlinks), and seed senders only ever wrote regular
    files. A symlink there to another project's message file made ``coord conv import`` of the folder send that
    file's text to the hub, as the caller, to this project's address."""
    homelab = world.homelab
    secret = write(tmp_path / "elsewhere" / "secret.org", world.org(conversation=world.conv + "-secret",
                                                                    body="the other project's private note\n"))
    inbox = homelab.inbox
    write(inbox / "a.org", world.org())
    inbox.joinpath("steal.org").symlink_to(secret)
    inbox.joinpath("b.org").write_text(world.org(conversation=world.conv + "-b"))
    inbox.joinpath("b.org.asc").symlink_to(tmp_path / "elsewhere" / "any.asc")
    r = homelab.coord("conv", "import", str(inbox), "--json")
    by = {Path(f["file"]).name: (f["decision"], f["reason"]) for f in r.json()["files"]}
    assert r.code == 1 and by == {
        "a.org": ("process", None),
        "b.org": ("error", "b.org.asc is a symbolic link: not imported (seed-004 senders write regular files)"),
        "steal.org": ("error", "a symbolic link: not imported (seed-004 senders write regular files)")}, by
    assert [c["conversation_id"] for c in homelab.coord("conv", "list", "--json").json()] == [world.conv]


def test_watch_refuses_a_log_it_cannot_append_to_at_start(world: World, tmp_path: Path) -> None:
    """``--log`` naming a folder: the watcher started, then died with a traceback at the first turn (every later
    one unlogged, unnotified). It now says so at start, exit 1, as it does for a log folder it cannot create."""
    from tests.compat.test_fleet_views import send

    homelab = world.homelab
    proc = subprocess.Popen([sys.executable, "-m", "coordhub.compat.crossagent", "watch", "--log", str(tmp_path),
                             "--no-notify"], cwd=homelab.cwd, env=homelab.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # still running: the first turn is what it meets the folder with
            send(world, homelab.address, "first turn")
            out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, "Traceback" in err) == (1, False), err
    assert err.strip() == f"cross-agent-watch: cannot append to the log {tmp_path}: Is a directory", err


def test_recv_never_fetches_the_signers_key_from_a_keyserver(world: World, keys: dict[str, GpgKey],
                                                             tmp_path: Path) -> None:
    """With ``auto-key-retrieve`` in the user's gpg.conf, ``gpg --verify`` fetched the unknown signer's key from the
    keyserver and said good signature: a file planted by anyone with a key on a public keyserver was ``process``.
    Only keys already in the keyring (or registered at the hub) vouch for a file."""
    import http.server
    import threading

    armored_key = keys["stranger"].armored.encode()
    fetched: list[str] = []

    class Keyserver(http.server.BaseHTTPRequestHandler):  # HKP (draft-shaw-openpgp-hkp): GET /pks/lookup?op=get
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/pgp-keys")
            self.end_headers()
            self.wfile.write(armored_key)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keyserver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        home = Path(world.homelab.env["GNUPGHOME"])
        write(home / "gpg.conf", f"keyserver hkp://127.0.0.1:{server.server_address[1]}\nauto-key-retrieve\n")
        msg = write(tmp_path / "inbox" / "m.org", world.org())
        write(Path(f"{msg}.asc"), keys["stranger"].sign(msg.read_bytes()))
        r = world.homelab.drop("recv", str(msg))
        assert (r.code, fields(r)["decision"]) == (3, "reject"), (r, fetched)
        assert fetched == [], fetched
        # auto-key-import: the key travels inside the signature (gpg --include-key-block) and was imported
        write(home / "gpg.conf", "auto-key-import\n")
        write(Path(f"{msg}.asc"), gpg(keys["stranger"].home, "--include-key-block", "--detach-sign", "--armor",
                                      "--output", "-", str(msg)).stdout)
        r = world.homelab.drop("recv", str(msg))
        assert (r.code, fields(r)["decision"]) == (3, "reject"), r
        listed = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--list-keys"], capture_output=True)
        assert keys["stranger"].fingerprint.encode() not in listed.stdout  # and nothing was added to the keyring
    finally:
        server.shutdown()
        server.server_close()


def test_a_staging_file_swapped_for_a_symlink_is_never_linked_into_place(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync writes each file as ``.tmp.<random>-<name>`` and then hard-links it to its name. Someone else who can
    write the inbox folder sees the staging file and renames a symlink over it (to the user's ``~/.ssh/id_ed25519``,
    say) before the link: ``os.link`` followed the symlink, and the user's secret was hard-linked into the shared
    inbox under the turn's name. The swap is made here at that moment, the one an attacker races for."""
    from coordhub.compat import orgfiles

    secret = write(tmp_path / "home" / ".ssh" / "id_ed25519", "PRIVATE KEY\n")
    staged = orgfiles._staged

    def raced(folder: Path, name: str, data: bytes, mtime: float | None) -> Path:
        tmp = staged(folder, name, data, mtime)
        bait = folder / ".bait"
        bait.symlink_to(secret)
        os.rename(bait, tmp)  # what the attacker does between the write and the link
        return tmp

    monkeypatch.setattr(orgfiles, "_staged", raced)
    turn = {"id": 7, "file_name": "20260427T091142Z-from-career-c-1.org", "content": "#+TITLE: t\n",
            "signature": None, "created_at": "2026-04-27T09:11:42Z"}
    for place in (lambda folder: orgfiles.place(folder, turn), lambda folder: orgfiles.place_all([(folder, turn)])):
        inbox = tmp_path / f"inbox-{id(place)}"
        inbox.mkdir()
        with pytest.raises(OSError, match="replaced while being written"):
            place(inbox)
        linked = [p.name for p in inbox.iterdir() if p.exists() and os.path.samefile(p, secret)]
        assert linked == [], f"the user's secret is in the inbox as {linked}"
        assert not os.path.lexists(inbox / turn["file_name"])
    assert secret.read_text() == "PRIVATE KEY\n"


def test_a_planted_identity_file_does_not_choose_the_conversation_address(world: World, tmp_path: Path) -> None:
    """Review, seed-004 user: a repository's untracked ``.claude/identity.json`` (an archive brings its own
    ``.git``) saying ``"project": "career"`` made a session of this machine, working in that clone with the user's
    own token, declare ``<machine>.career``: it read career's pending turns (and its agent would have sent as
    career). Beside a token that is not the file's own, its ``project`` and ``machine`` are passed over, with a note."""
    from tests.compat.conftest import agent

    career, homelab = world.career, world.homelab
    assert homelab.coord("conv", "send", career.address, "--conversation", world.conv, "--type", "request",
                         "--title", "Private", "--body", "career's own business").code == 0
    clone = agent(world.hub, tmp_path / "clone", career.session.replace("/career", "/clone"), "clone",
                  tmp_path)
    del clone.env["COORD_PROJECT"]  # the user's token (COORD_TOKEN); the project is the repository's
    write(clone.cwd / ".claude" / "identity.json", json.dumps({"project": "career"}))
    r = clone.coord("conv", "profile", "--json")
    assert (r.code, r.json()["address"]) == (0, f"{career.machine}.clone"), r  # not career's
    write(clone.cwd / ".claude" / "identity.json", json.dumps({"project": "career", "machine": "elsewhere"}))
    r = clone.coord("conv", "profile", "--json")
    assert r.code == 0, r
    assert r.json()["address"] == f"{career.machine}.clone", r
    assert "ignoring machine 'elsewhere' and project 'career' of" in r.err, r
    inbox = clone.coord("conv", "inbox", "--json")
    assert inbox.code == 0 and inbox.json() == [], inbox
    status = clone.drop("status", "--json")
    assert status.code == 0 and "ignoring machine 'elsewhere' and project 'career'" in status.err, status
    assert career.coord("conv", "inbox", "--json").json()[0]["title"] == "Private"  # career's own still sees it


def test_an_inbox_in_a_folder_whose_identity_file_is_passed_over_shows_the_declared_address(
        world: World, tmp_path: Path) -> None:
    """Seed-004 user: a session that declared ``<machine>.career`` works in a folder ``career-wt`` whose untracked
    ``.claude/identity.json`` says ``"project": "career"``, with the user's own token (``COORD_TOKEN``): the file is
    passed over, this folder's address is ``<machine>.career-wt``, and ``coord conv inbox`` was refused (exit 6)
    naming neither the declared address nor a way to it. It shows the declared address's turns, and says so."""
    from tests.compat.conftest import agent
    from tests.coordcli import git_init

    career = world.career
    assert world.homelab.coord("conv", "send", career.address, "--conversation", world.conv, "--type", "request",
                               "--title", "For career", "--body", "b").code == 0
    env = {k: v for k, v in career.env.items() if k != "COORD_PROJECT"}
    worktree = git_init(tmp_path / "career-wt")
    write(worktree / ".claude" / "identity.json", json.dumps({"project": "career"}))
    r = type(career)(career.session, career.machine, career.project, career.home, worktree, env).coord(
        "conv", "inbox", "--json")
    assert r.code == 0 and [t["title"] for t in r.json()] == ["For career"], r
    assert (f"{career.machine}.career-wt (this folder's address) is not this session's: showing the turns of the "
            f"address it declared, {career.address} (name this folder's project with COORD_PROJECT=…") in r.err, r
    fresh = agent(world.hub, tmp_path / "fresh", career.session.replace("/career", "/fresh"), "fresh", tmp_path)
    r = fresh.coord("conv", "inbox")  # a session that declared nothing is told how to
    assert r.code == 6 and f"declared no address: `coord conv profile` declares {fresh.address}" in r.err, r
