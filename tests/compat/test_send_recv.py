"""cross-agent-send and cross-agent-recv against a real hub, with real GnuPG keys: every branch and exit code."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.compat.conftest import GpgKey, World, fields, write


def sync(world: World) -> list[Path]:
    r = world.homelab.coord("conv", "sync")
    assert r.code == 0, r
    return sorted(world.homelab.inbox.glob("*.org"))


def test_a_signed_message_goes_through_the_hub_and_is_processed_by_the_receiver(
        world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    to, conv = world.homelab.address, world.conv
    career, homelab = world.career, world.homelab
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    msg = write(tmp_path / "draft.org", world.org(sequence=7))
    before = msg.read_bytes()
    sent = career.drop("send", to, str(msg))
    assert sent.code == 0, sent
    assert "#+SEQUENCE 7 -> 1" in sent.err  # the hub numbers turns: the signed copy says 1, and it is said
    [line] = sent.out.splitlines()
    assert line.startswith(f"sent: {to}/") and line.endswith(f"-from-career-{conv}-1.org")
    assert msg.read_bytes() == before  # the author's file is never rewritten

    [got] = sync(world)
    assert got.name == line.removeprefix(f"sent: {to}/")
    assert "#+SEQUENCE: 1\n" in got.read_text() and got.with_name(got.name + ".asc").is_file()
    # ratio's keyring lacks the career key: recv checks the signature with the key career registered at the hub
    r = homelab.drop("recv", str(got))
    assert r.code == 0, r
    assert r.out.splitlines()[:4] == ["decision: process", "message_type: request",
                                      f"conversation_id: {conv}", "sequence: 1"]
    assert fields(r)["timestamp"] == "2026-04-27T04:11:42-05:00" and len(fields(r)["sha256"]) == 64
    j = homelab.drop("recv", "--json", str(got))
    assert j.code == 0 and json.loads(j.out) == {
        "decision": "process", "reason": None, "message_type": "request", "conversation_id": conv,
        "sequence": "1", "timestamp": "2026-04-27T04:11:42-05:00", "sha256": fields(r)["sha256"]}
    assert homelab.drop("recv", "--json", "--compact-json", str(got)).out.count("\n") == 1

    # the same file sent again is an identical retry: delivered once
    again = career.drop("send", to, str(msg))
    assert again.code == 0 and again.out == sent.out and "identical retry" in again.err
    # a copy of the file beside it is a dedup for the seed's receiver rule
    twin = write(got.with_name("copy-" + got.name), got.read_bytes())
    write(Path(str(twin) + ".asc"), Path(str(got) + ".asc").read_bytes())
    d = homelab.drop("recv", str(twin))
    assert d.code == 1 and fields(d)["decision"] == "dedup" and fields(d)["reason"] == f"identical retry of {got.name}"
    assert homelab.drop("recv", "--no-dedup", str(twin)).code == 0


def test_a_file_opening_with_a_mode_line_is_sent_and_processed_as_the_seed_did(
        world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    """Review (seed-004 user run): seed 004's parser skips every line before the first ``#+KEY:`` (an Emacs mode
    line, a comment); the hub's stopped there, so such a file was "frontmatter missing required fields: TITLE,
    …" (exit 4) for send and a reject for recv, where the seed sent and processed it."""
    career, homelab = world.career, world.homelab
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    signed = write(tmp_path / "signed.org", "# -*- mode: org -*-\n# drafted by career\n" + world.org(sequence=4))
    unsigned = write(tmp_path / "unsigned.org", "# -*- mode: org -*-\n" + world.org(kind="progress", body="b\n"))
    for msg, flags in ((signed, ()), (unsigned, ("--no-sign",))):
        sent = career.drop("send", homelab.address, str(msg), *flags)
        assert sent.code == 0, sent
    first, second = sync(world)
    assert first.read_text().startswith("# -*- mode: org -*-\n# drafted by career\n#+TITLE: ")
    assert "#+SEQUENCE: 1\n" in first.read_text() and "#+SEQUENCE: 2\n" in second.read_text()
    for got, kind in ((first, "request"), (second, "progress")):
        r = homelab.drop("recv", *(() if got == first else ("--no-verify",)), str(got))
        assert r.code == 0 and fields(r)["decision"] == "process" and fields(r)["message_type"] == kind, r


def test_send_refuses_what_the_seed_refused_with_its_exit_codes(world: World, tmp_path: Path) -> None:
    to, conv = world.homelab.address, world.conv
    career = world.career
    good = write(tmp_path / "good.org", world.org())
    missing = write(tmp_path / "missing.org", world.org().replace("#+TITLE: Prep fix-up\n", ""))
    r = career.drop("send", to, str(missing), "--no-sign")
    assert (r.code, r.err.strip()) == (4, "frontmatter missing required fields: TITLE")
    for bad in (world.org(kind="memo"), world.org(sequence="seven"), world.org(timestamp="yesterday")):
        assert career.drop("send", to, str(write(tmp_path / "bad.org", bad)), "--no-sign").code == 4
    assert career.drop("send", to, str(write(tmp_path / "latin1.org", "é".encode("latin-1"))),
                       "--no-sign").code == 4
    r = career.drop("send", to, str(tmp_path / "nope.org"), "--no-sign")
    assert (r.code, r.err.strip()) == (1, f"message file not found: {tmp_path / 'nope.org'}")

    r = career.drop("send", to.replace("homelab", "garden"), str(good), "--no-sign")
    assert r.code == 2 and to in r.err and world.career.address in r.err, r
    # review (seed-004 user run): it said "destination not found: destination … not found; known destinations:
    # …; available: …", the list twice
    [line] = r.err.splitlines()
    assert line.startswith(f"destination not found: {to.replace('homelab', 'garden')} (no session declared it); "
                           "available: ") and line.count(to) == 1, r
    assert career.drop("send", to.replace(".", ""), str(good), "--no-sign").code == 2

    v4 = career.drop("send", to, str(write(tmp_path / "v4.org", world.org(version="4"))), "--no-sign")
    assert v4.code == 1 and "query" in v4.err and "PROTOCOL_VERSION mismatch: expected 5, got 4" in v4.err
    assert world.homelab.coord("conv", "tools", "set", "rg").code == 0  # the hub checks declared tools only
    tools = career.drop("send", to, str(write(tmp_path / "t.org", world.org(tools="jq"))), "--no-sign")
    assert tools.code == 1 and "required tools unavailable: jq" in tools.err

    unsigned = career.drop("send", to, str(write(tmp_path / "s5.org", world.org(sequence=5))), "--no-sign")
    assert unsigned.code == 0 and "the hub numbered this turn 1 (the file said 5)" in unsigned.err
    local = career.drop("send", "local.career", str(write(tmp_path / "self.org", world.org(conversation=conv + "-n"))),
                        "--no-sign")
    assert local.code == 0 and local.out.startswith(f"sent: {world.career.address}/"), local


def test_signing_problems(world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    to = world.homelab.address
    career = world.career
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    msg = write(tmp_path / "m.org", world.org())
    r = career.drop("send", to, str(msg), "--key", "no-such-key@example.org")
    assert r.code == 1 and r.err.startswith("signing failed:"), r
    # signed with a key the author never registered: the hub rejects it
    stranger = career.drop("send", to, str(msg), env={"GNUPGHOME": str(keys["stranger"].home)})
    assert stranger.code == 1 and "reject" in stranger.err and "signature does not verify" in stranger.err
    # GPG_USER picks the key, as in the seed
    ok = career.drop("send", to, str(msg), env={"GPG_USER": keys["career"].fingerprint})
    assert ok.code == 0, ok


def test_a_sequence_taken_while_signing_is_renumbered_and_signed_again(world: World, keys: dict[str, GpgKey],
                                                                       tmp_path: Path) -> None:
    """A gpg that lets another sender write to the conversation first: the hub answers 409, send renumbers."""
    to, conv = world.homelab.address, world.conv
    career = world.career
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    shim = tmp_path / "bin"
    shim.mkdir()
    marker = tmp_path / "raced"
    gpg = shim / "gpg"
    gpg.write_text(f"""#!{sys.executable}
import os, subprocess, sys
if not os.path.exists({str(marker)!r}):
    open({str(marker)!r}, "w").close()
    subprocess.run([sys.executable, "-m", "coordhub", "conv", "send", {to!r}, "--conversation",
                    {conv!r}, "--type", "progress", "--body", f"me first ({{os.getpid()}})"], check=True,
                   stdout=subprocess.DEVNULL)
os.execvp("/usr/bin/gpg", ["gpg", *sys.argv[1:]])
""")
    gpg.chmod(gpg.stat().st_mode | stat.S_IXUSR)
    path = {"PATH": f"{shim}{os.pathsep}{career.env['PATH']}"}
    msg = write(tmp_path / "m.org", world.org(kind="request", sequence=1, body="second\n"))
    r = career.drop("send", to, str(msg), env=path)
    assert r.code == 0, r
    assert "#+SEQUENCE 1 -> 2" in r.err and r.out.strip().endswith(f"-{conv}-2.org")
    shown = world.homelab.coord("conv", "show", conv, "--json").json()
    second = shown["turns"][1]
    assert (second["sequence"], second["verified"], second["body"]) == (2, True, "second\n")
    assert "#+SEQUENCE: 2\n" in second["content"]
    # with no retries left the send gives up (exit 1) and says why; the racing turn differs from the first one
    # (its pid is in it): an identical one within the same second would be the hub's deduplicated retry
    marker.unlink()
    again = career.drop("send", to, str(write(tmp_path / "n.org", world.org(body="third\n"))), "--retries",
                        "0", env=path)
    assert again.code == 1 and "sequence still taken" in again.err, again


def test_an_unreachable_hub_is_a_failed_delivery_with_a_marker(world: World, tmp_path: Path) -> None:
    to = world.homelab.address
    from tests.conftest import free_port

    down = world.career.with_env(COORD_URL=f"http://127.0.0.1:{free_port()}")
    untrusted = down.drop("send", to, str(write(tmp_path / "m.org", world.org())), "--no-sign")
    assert untrusted.code == 1 and "coord trust" in untrusted.err  # a token goes only where it was first used
    assert down.coord("trust", down.env["COORD_URL"]).code == 0
    r = down.drop("send", to, str(write(tmp_path / "m.org", world.org())), "--no-sign", "--retries", "0")
    assert r.code == 3, r
    # where the seed wrote it (its runbook: cat ~/.local/state/cross-agent-comms/failed-sends/*.json); it went to
    # $XDG_STATE_HOME/coordhub/failed-sends/, where a seed user does not look (seed-004 user run)
    [marker] = (Path(down.env["HOME"]) / ".local" / "state" / "cross-agent-comms" / "failed-sends").glob("*.json")
    assert f"marker written: {marker}" in r.err, r
    assert json.loads(marker.read_text())["destination"] == to
    # a marker that cannot be written is said so; the send still failed (exit 3), with no traceback
    marker.unlink()
    marker.parent.rmdir()
    marker.parent.write_text("not a folder")
    r = down.drop("send", to, str(write(tmp_path / "m.org", world.org())), "--no-sign", "--retries", "0")
    assert r.code == 3 and "marker not written: " in r.err, r


def test_recv_decides_each_branch_of_the_seed_algorithm(world: World, keys: dict[str, GpgKey], tmp_path: Path) -> None:
    conv = world.conv
    homelab = world.homelab
    inbox = tmp_path / "inbox"
    career_home = {"GNUPGHOME": str(keys["career"].home)}

    def signed(name: str, text: str) -> Path:
        path = write(inbox / name, text)
        write(Path(str(path) + ".asc"), keys["career"].sign(path.read_bytes()))
        return path

    def decide(path: Path, *flags: str) -> tuple[int, dict[str, str]]:
        r = homelab.drop("recv", *flags, str(path), env=career_home)
        return r.code, fields(r)

    code, f = decide(signed("a.org", world.org()))
    assert (code, f["decision"]) == (0, "process")
    assert decide(signed("b.org", world.org().replace("#+TITLE: Prep fix-up\n", ""))) == (3, {
        "decision": "reject", "reason": "frontmatter missing required fields: TITLE", "message_type": "request",
        "conversation_id": conv, "sequence": "1", "timestamp": "2026-04-27T04:11:42-05:00"})
    code, f = decide(signed("c.org", world.org(kind="memo")))
    assert code == 3 and f["reason"].startswith("invalid MESSAGE_TYPE: 'memo'")
    code, f = decide(signed("d.org", world.org(version="4")))
    assert (code, f["decision"], f["reason"]) == (2, "query", "PROTOCOL_VERSION mismatch: expected 5, got 4")
    assert decide(inbox / "a.org", "--protocol-version", "6")[0] == 2
    unsigned = write(inbox / "e.org", world.org(conversation="e"))
    code, f = decide(unsigned)
    assert (code, f["reason"]) == (3, "signature file missing: e.org.asc")
    assert decide(unsigned, "--no-verify")[0] == 0
    tampered = signed("f.org", world.org(conversation="f"))
    tampered.write_text(world.org(conversation="f", body="changed after signing\n"))
    code, f = decide(tampered)
    assert code == 3 and f["reason"].startswith("gpg verify failed: ")
    # signed by a key nobody registered: not in ratio's keyring, not at the hub
    stranger = write(inbox / "g.org", world.org(conversation="g"))
    write(Path(str(stranger) + ".asc"), keys["stranger"].sign(stranger.read_bytes()))
    code, f = homelab.drop("recv", str(stranger)).code, fields(homelab.drop("recv", str(stranger)))
    assert code == 3 and f["reason"].startswith("gpg verify failed: ")
    # REQUIRES_TOOLS: on PATH, missing, or declared at the hub by this session
    assert decide(signed("h.org", world.org(conversation="h", tools="sh, git")))[0] == 0
    code, f = decide(signed("i.org", world.org(conversation="i", tools="sh, no-such-tool-x")))
    assert (code, f["reason"]) == (2, "required tools unavailable: no-such-tool-x")
    assert homelab.coord("conv", "tools", "set", "no-such-tool-x").code == 0
    assert decide(inbox / "i.org")[0] == 0
    not_utf8 = write(inbox / "j.org", b"#+TITLE: \xff\n")
    code, f = decide(not_utf8)
    assert code == 3 and f["reason"].startswith("cannot read: ")
    r = homelab.drop("recv", str(inbox / "absent.org"))
    assert (r.code, r.out, r.err.strip()) == (3, "", f"message file not found: {inbox / 'absent.org'}")


def test_recv_stops_with_exit_5_while_halted_and_when_the_hub_cannot_say(world: World, tmp_path: Path) -> None:
    from tests.conftest import free_port

    path = write(tmp_path / "in" / "m.org", world.org())
    assert world.admin("halt", "investigating a runaway loop").code == 0
    r = world.homelab.drop("recv", "--no-verify", str(path))
    assert r.code == 5 and r.out == "" and "investigating a runaway loop" in r.err, r
    assert path.read_text() == world.org()  # left in place for after the resume
    assert world.admin("resume").code == 0
    # seed 004's asymmetry: homelab was active under the halt (its recv counts), so it stays paused until it
    # re-engages
    paused = world.homelab.drop("recv", "--no-verify", str(path))
    assert paused.code == 5 and "coord engage" in paused.err, paused
    assert world.homelab.coord("engage").code == 0
    assert world.homelab.drop("recv", "--no-verify", str(path)).code == 0
    down = world.homelab.with_env(COORD_URL=f"http://127.0.0.1:{free_port()}")
    assert down.coord("trust", down.env["COORD_URL"]).code == 0
    r = down.drop("recv", "--no-verify", str(path))
    assert r.code == 5 and "treated as halted" in r.err


def test_a_negative_retries_is_a_usage_error_not_a_traceback(world: World, tmp_path: Path) -> None:
    """``--retries -1`` made no attempt at all: a traceback with ``--no-sign`` (IndexError on the empty retry log),
    else 'sequence still taken after 0 attempts'; nothing was sent either way."""
    msg = write(tmp_path / "m.org", world.org())
    for extra in (["--no-sign"], []):
        p = subprocess.run([sys.executable, "-m", "coordhub.compat.crossagent", "send", world.homelab.address,
                            str(msg), "--retries", "-1", *extra], cwd=world.career.cwd, env=world.career.env,
                           capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
        assert (p.returncode, p.stdout) == (2, ""), p
        assert p.stderr.splitlines()[-1] == ("cross-agent-send: error: argument --retries: must be a whole number "
                                             "0 or more; got '-1'"), p
    assert world.homelab.coord("conv", "list", "--json").json() == []


def test_required_tools_nobody_declared_are_delivered_for_the_receiver_to_decide(
        world: World, tmp_path: Path) -> None:
    """Review (seed-004 user run): ``#+REQUIRES_TOOLS: git`` to an address whose machine has git but whose
    session never ran ``coord conv tools set`` was refused at send ("query: required tools unavailable: git",
    exit 1), and ``coord conv import`` dropped such turns the same way. Seed 004 delivered the file and its
    receiver decided: ``cross-agent-recv`` answers ``process`` when the tool is installed, ``query`` (exit 2)
    when it is not. The hub now decides only against tools a session at the destination declared."""
    career, homelab = world.career, world.homelab
    bin_dir = tmp_path / "bin"  # a tool installed on the receiving machine only
    write(bin_dir / "seed-tool-x", "#!/bin/sh\n").chmod(0o755)
    has = {"PATH": f"{bin_dir}{os.pathsep}{homelab.env.get('PATH', os.defpath)}"}
    for name, tools in (("present.org", "seed-tool-x"), ("absent.org", "no-such-tool-x")):
        msg = write(tmp_path / name, world.org(conversation=f"{world.conv}-{name[:-4]}", tools=tools))
        sent = career.drop("send", homelab.address, str(msg), "--no-sign")
        assert sent.code == 0 and sent.out.startswith(f"sent: {homelab.address}/"), sent
    got = {p.read_text().split("#+CONVERSATION_ID: ")[1].split("\n")[0]: p for p in sync(world)}
    present = homelab.drop("recv", "--no-verify", str(got[f"{world.conv}-present"]), env=has)
    assert (present.code, fields(present)["decision"]) == (0, "process"), present
    absent = homelab.drop("recv", "--no-verify", str(got[f"{world.conv}-absent"]), env=has)
    assert (absent.code, fields(absent)["reason"]) == (2, "required tools unavailable: no-such-tool-x"), absent

    # import: the importer's own address declared no tools either
    history = tmp_path / "history"
    write(history / "old.org", world.org(conversation=f"{world.conv}-old", tools="git"))
    imported = homelab.coord("conv", "import", str(history), "--json")
    assert imported.code == 0 and imported.json()["files"][0]["decision"] == "process", imported

    # once the destination declares its tools, the hub checks against them (coordhub's tools feature)
    assert homelab.coord("conv", "tools", "set", "rg").code == 0
    refused = career.drop("send", homelab.address, str(write(tmp_path / "d.org", world.org(
        conversation=f"{world.conv}-declared", tools="rg, git"))), "--no-sign")
    assert refused.code == 1 and "required tools unavailable: git" in refused.err, refused


def test_a_file_opening_with_a_byte_order_mark_is_read_whole(world: World, keys: dict[str, GpgKey],
                                                              tmp_path: Path) -> None:
    """Review (seed-004 user run): a file saved with a UTF-8 byte-order mark (some Windows editors write one) was
    refused for missing fields; seed 004's parser lost its first line (TITLE). The mark is skipped: the file is
    sent, kept as written when signed, and processed by the receiver, TITLE included."""
    career, homelab = world.career, world.homelab
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    bom = "\ufeff"
    signed = write(tmp_path / "signed.org", bom + world.org(sequence=1))
    unsigned = write(tmp_path / "unsigned.org", bom + world.org(kind="progress", body="b\n", title="Second"))
    for msg, flags in ((signed, ()), (unsigned, ("--no-sign",))):
        sent = career.drop("send", homelab.address, str(msg), *flags)
        assert sent.code == 0, sent
    plain = career.coord("conv", "send", homelab.address, str(write(tmp_path / "plain.org", bom + world.org(
        conversation=world.conv + "-plain", title="Third"))), "--json")
    assert plain.code == 0 and plain.json()["title"] == "Third", plain
    first, second = [p for p in sync(world) if "-plain-" not in p.name]
    assert first.read_bytes().startswith(bom.encode("utf-8") + b"#+TITLE: Prep fix-up\n")  # signed: byte for byte
    assert "#+SEQUENCE: 2\n" in second.read_text(encoding="utf-8")
    for got, kind in ((first, "request"), (second, "progress")):
        r = homelab.drop("recv", *(() if got == first else ("--no-verify",)), str(got))
        assert r.code == 0 and fields(r)["decision"] == "process" and fields(r)["message_type"] == kind, r
    titles = [t["title"] for t in homelab.coord("conv", "show", world.conv, "--json").json()["turns"]]
    assert titles == ["Prep fix-up", "Second"]


def test_a_negative_sequence_is_sent_as_the_seed_sent_it(world: World, tmp_path: Path) -> None:
    """Review (seed-004 user run): ``#+SEQUENCE: -3`` was refused (exit 4, "must be an integer"); the seed's
    int() took it. The hub numbers the turn and keeps -3 as the stated sequence; the receiver processes it."""
    career, homelab = world.career, world.homelab
    sent = career.drop("send", homelab.address, str(write(tmp_path / "m.org", world.org(sequence=-3))), "--no-sign")
    assert sent.code == 0 and "the hub numbered this turn 1 (the file said -3)" in sent.err, sent
    [turn] = homelab.coord("conv", "show", world.conv, "--json").json()["turns"]
    assert (turn["sequence"], turn["stated_sequence"]) == (1, -3)
    [got] = sync(world)
    r = homelab.drop("recv", "--no-verify", str(got))
    assert r.code == 0 and fields(r)["sequence"] == "1", r
    big = career.drop("send", homelab.address, str(write(tmp_path / "b.org", world.org(sequence=2**31))), "--no-sign")
    assert big.code == 4 and big.err.startswith("SEQUENCE must be an integer from -2147483647 to 2147483647"), big
