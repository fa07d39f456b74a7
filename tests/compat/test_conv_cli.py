"""``coord conv`` end to end: real ``coord`` subprocesses against a real hub, on both backends."""

from __future__ import annotations

from pathlib import Path

from coordhub.cli.views import shown_time
from tests.compat.conftest import GpgKey, World, write


def test_a_conversation_from_first_turn_to_release(world: World) -> None:
    career, homelab, conv = world.career, world.homelab, world.conv
    to = homelab.address
    r = career.coord("conv", "send", to, "--conversation", conv, "--type", "request", "--title", "Prep fix-up",
                     "--body", "Please fix the prep script.\nThanks.")
    assert r.code == 0, r
    assert r.out.startswith("sent turn ") and f": {conv} #1 request → {to} (" in r.out
    turn = career.coord("conv", "send", to, "--conversation", conv, "--type", "progress", "--body", "started",
                        "--json").json()
    assert (turn["sequence"], turn["decision"], turn["from"], turn["to"]) == (2, "process", career.address, to)

    pending = homelab.coord("conv", "inbox", "--json").json()
    assert [(t["sequence"], t["pending"]) for t in pending] == [(1, True), (2, True)]
    human = homelab.coord("conv", "inbox")
    assert human.code == 0 and "2 pending." in human.out and f"{conv} #1" in human.out
    status = homelab.coord("conv", "status", "--json").json()
    assert status["projects"] == [{"name": "homelab", "pending_count": 2, "most_recent": {
        "filename": turn["file_name"], "age_seconds": status["projects"][0]["most_recent"]["age_seconds"]}}]
    table = homelab.coord("conv", "status").out.splitlines()
    assert table[0].split() == ["project", "pending", "most-recent"] and table[1].split()[:3] == \
        ["homelab", "2", turn["file_name"]]

    shown = homelab.coord("conv", "show", conv)
    assert shown.code == 0 and "    | Please fix the prep script." in shown.out and "    | Thanks." in shown.out
    turns = homelab.coord("conv", "show", conv, "--json").json()["turns"]
    assert f"  ({shown_time(turns[0]['created_at'])}, by " in shown.out, shown  # to the second, as --json is not
    assert [c["conversation_id"] for c in homelab.coord("conv", "list", "--json").json()] == [conv]

    done = homelab.coord("conv", "release", conv, "--body", "fixed")
    assert done.code == 0 and f"released {conv} (complete) with turn" in done.out and f"→ {career.address}" in done.out
    assert homelab.coord("conv", "inbox", "--json").json() == []
    assert homelab.coord("conv", "inbox").out.strip() == "no pending turns"
    assert homelab.coord("conv", "show", conv, "--json").json()["state"] == "released"
    again = homelab.coord("conv", "release", conv)  # review: it printed "released" as if it had sent a turn
    assert again.code == 0 and again.out.startswith(f"already released {conv} by turn ") and "nothing sent" in \
        again.out, again
    assert homelab.coord("conv", "release", conv, "--json").json()["decision"] == "dedup"


def test_send_usage_and_refusals_have_the_documented_exit_codes(world: World, tmp_path: Path) -> None:
    career, to, conv = world.career, world.homelab.address, world.conv
    msg = write(tmp_path / "m.org", world.org(sequence=9))
    assert career.coord("conv", "send", to, str(msg), "--type", "request").code == 2
    assert career.coord("conv", "send", to, "--body", "x").code == 2  # no conversation or type
    assert career.coord("conv", "send", "nodot", str(msg)).code == 2
    unknown = career.coord("conv", "send", to.replace("homelab", "garden"), str(msg))
    assert unknown.code == 1 and "not found" in unknown.err and to in unknown.err
    ok = career.coord("conv", "send", to, str(msg), "--json").json()
    assert (ok["sequence"], ok["stated_sequence"]) == (1, 9) and "#+SEQUENCE: 1\n" in ok["content"]
    again = career.coord("conv", "send", to, str(msg))
    assert again.code == 0 and again.out.startswith("identical retry: already delivered as turn")
    assert world.homelab.coord("conv", "tools", "set", "git").code == 0  # the hub checks declared tools only
    needs = career.coord("conv", "send", to, "--conversation", conv, "--type", "request", "--body", "b",
                         "--requires-tools", "jq,rg", "--json")
    assert needs.code == 1 and needs.json()["error"]["code"] == "query", needs
    assert "required tools unavailable: jq, rg" in needs.err and "visible to you only" in needs.err
    assert world.homelab.coord("conv", "tools", "set", "jq", "rg").code == 0
    assert world.homelab.coord("conv", "tools", "show", "--json").json()["tools"] == ["jq", "rg"]
    assert career.coord("conv", "send", to, "--conversation", conv, "--type", "request", "--body", "b",
                        "--requires-tools", "jq,rg").code == 0
    v4 = career.coord("conv", "send", to, str(write(tmp_path / "v4.org", world.org(version="4", body="v4\n"))))
    assert v4.code == 1 and "PROTOCOL_VERSION mismatch" in v4.err


def test_keys_and_profile(world: World, keys: dict[str, GpgKey]) -> None:
    career = world.career
    added = career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint, "--json").json()
    assert added["fingerprint"] == keys["career"].fingerprint
    assert [k["fingerprint"] for k in career.coord("conv", "keys", "list", "--json").json()] == \
        [keys["career"].fingerprint]
    own = write(career.cwd.parent / "career.asc", keys["career"].armored)
    assert career.coord("conv", "keys", "add", str(own)).code == 0  # the same key from a file: nothing new
    # a public key whose secret half is not in this keyring: nothing proves it is career's
    stranger = career.coord("conv", "keys", "add", str(write(career.cwd.parent / "stranger.asc",
                                                              keys["stranger"].armored)))
    assert stranger.code == 2 and "cannot prove key" in stranger.err, stranger
    assert career.coord("conv", "keys", "add", "--gpg", "nobody@example.org").code == 2
    assert career.coord("conv", "keys", "add").code == 2
    assert len(world.homelab.coord("conv", "keys", "list", "--session", career.session, "--json").json()) == 1
    assert career.coord("conv", "keys", "remove", keys["career"].fingerprint).code == 0
    assert world.homelab.coord("conv", "keys", "list", "--session", career.session, "--json").json() == []
    shown = career.coord("conv", "profile", "--show", "--json").json()
    assert (shown["session_id"], shown["address"]) == (career.session, career.address)
    # a session may declare only the machine its id names
    other = career.coord("conv", "profile", "--machine", world.homelab.machine)
    assert other.code == 6, other


def test_the_inbox_shows_every_pending_turn_past_the_hubs_page(world: World, tmp_path: Path) -> None:
    """/conversations/inbox answers pages of about 4 MiB (Coord-Next-After names the next): coord conv inbox
    follows them, so 18 pending turns of 250 KB are all shown, not the first page's 16 or so."""
    career, homelab, conv = world.career, world.homelab, world.conv
    big = tmp_path / "big.txt"
    for n in range(18):
        big.write_text(f"{n:02d} " + "x" * 250_000)
        kind = "request" if n == 0 else "progress"
        r = career.coord("conv", "send", homelab.address, "--conversation", conv, "--type", kind, "--body-file",
                         str(big))
        assert r.code == 0, r
    pending = homelab.coord("conv", "inbox", "--json").json()
    assert [t["sequence"] for t in pending] == list(range(1, 19))


def test_tools_show_tells_never_declared_from_declared_none(world: World) -> None:
    # both printed "(none)" and --json "tools": [], though only a declaration (an empty one included) makes the hub
    # check a turn's REQUIRES_TOOLS at the address: a user could not tell which of the two held
    homelab = world.homelab
    never = homelab.coord("conv", "tools", "show")
    assert never.code == 0 and never.out == f"tools of {homelab.session}: (never declared)\n", never
    shown = homelab.coord("conv", "tools", "show", "--json").json()
    assert (shown["tools"], shown["tools_declared"]) == ([], False), shown
    assert "tools: (never declared)" in homelab.coord("conv", "profile").out
    declared = homelab.coord("conv", "tools", "set")
    assert declared.code == 0 and declared.out == f"tools of {homelab.session}: (declared none)\n", declared
    assert homelab.coord("conv", "tools", "show").out == f"tools of {homelab.session}: (declared none)\n"
    shown = homelab.coord("conv", "tools", "show", "--json").json()
    assert (shown["tools"], shown["tools_declared"]) == ([], True), shown
    assert homelab.coord("conv", "tools", "set", "jq").out == f"tools of {homelab.session}: jq\n"
    assert homelab.coord("conv", "tools", "show", "--json").json()["tools_declared"] is True


def _recv(world: World, conversation: str) -> list[tuple[str, int, str]]:
    """Sync homelab's inbox and run cross-agent-recv (signatures verified, its default) on each file of
    ``conversation``: ``(MESSAGE_TYPE, exit code, reason)`` per file in order."""
    assert world.homelab.coord("conv", "sync").code == 0
    got = []
    for path in sorted(world.homelab.inbox.glob(f"*-{conversation}-*.org")):
        r = world.homelab.drop("recv", "--json", str(path))
        kind = next(line.split(": ", 1)[1] for line in path.read_text().splitlines()
                    if line.startswith("#+MESSAGE_TYPE: "))
        got.append((kind, r.code, r.json()["reason"] or ""))
    return got


def test_signed_send_and_release_are_accepted_by_a_verifying_receiver(world: World, keys: dict[str, GpgKey],
                                                                      tmp_path: Path) -> None:
    """Review (seed-004 user): `coord conv send`/`release` could not sign, so a receiver running cross-agent-recv
    with verification refused their turns ("signature file missing"); --sign signs as cross-agent-send does."""
    career, homelab, conv = world.career, world.homelab, world.conv
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    signed, unsigned = f"{conv}-s", f"{conv}-u"
    for c in (signed, unsigned):
        sent = career.coord("conv", "send", homelab.address, "--conversation", c, "--type", "request", "--body",
                            "fix it", *(["--sign"] if c == signed else []))
        assert sent.code == 0, sent
    # a file, signed with the key named by --key: its #+SEQUENCE 9 is renumbered to the hub's 2 before signing
    msg = write(tmp_path / "p.org", world.org(conversation=signed, kind="progress", sequence=9))
    progress = career.coord("conv", "send", homelab.address, str(msg), "--key", keys["career"].fingerprint, "--json")
    assert progress.code == 0 and progress.json()["sequence"] == 2, progress
    done = career.coord("conv", "release", signed, "--sign", "--json")
    assert done.code == 0, done
    turn = done.json()
    assert (turn["type"], turn["to"], turn["sequence"], turn["decision"]) == ("release", homelab.address, 3,
                                                                              "process")
    assert career.coord("conv", "release", unsigned).code == 0
    assert _recv(world, signed) == [("request", 0, ""), ("progress", 0, ""), ("release", 0, "")]
    assert [(k, code) for k, code, _ in _recv(world, unsigned)] == [("request", 3), ("release", 3)]
    assert all(why.startswith("signature file missing") for _, _, why in _recv(world, unsigned))
    # released already: the hub's answer, nothing signed or sent
    again = career.coord("conv", "release", signed, "--sign", "--json")
    assert again.code == 0 and again.json()["decision"] == "dedup", again
    # GPG_USER is the key --sign uses when --key is not given (as for cross-agent-send)
    bad = career.with_env(GPG_USER="nobody-such@example.org").coord(
        "conv", "send", homelab.address, "--conversation", f"{conv}-k", "--type", "request", "--body", "b", "--sign")
    assert bad.code == 1 and "signing failed" in bad.err, bad


def test_the_inbox_hint_names_the_signed_release_to_a_user_who_signs(world: World, keys: dict[str, GpgKey]) -> None:
    career, homelab, conv = world.career, world.homelab, world.conv
    for sender, to in ((career, homelab), (homelab, career)):
        assert sender.coord("conv", "send", to.address, "--conversation", f"{conv}-{to.project}", "--type",
                            "request", "--body", "b").code == 0
    plain = "end a conversation with `coord conv release <conversation>`."
    assert homelab.coord("conv", "inbox").out.rstrip().endswith(plain)
    assert career.coord("conv", "inbox").out.rstrip().endswith(plain)  # no key named or registered yet
    assert homelab.with_env(GPG_USER="someone@example.org").coord("conv", "inbox").out.rstrip().endswith(
        "end a conversation with `coord conv release <conversation> --sign`.")
    assert career.coord("conv", "keys", "add", "--gpg", keys["career"].fingerprint).code == 0
    assert career.coord("conv", "inbox").out.rstrip().endswith(
        "end a conversation with `coord conv release <conversation> --sign`.")
