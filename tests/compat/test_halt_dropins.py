"""cross-agent-halt, -resume, and the halt as the other drop-ins see it, with halt scopes at the hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest

from tests.compat.conftest import World, write
from tests.compat.test_fleet_views import Watch, fake_notify, send, wait_for


def test_watch_logs_but_does_not_notify_while_this_machine_is_halted(world: World, tmp_path: Path) -> None:
    env, notified = fake_notify(tmp_path)
    log = tmp_path / "watch.log"
    w = Watch(world.homelab, ["--log", str(log)], env)
    try:
        assert world.homelab.drop("halt", "inspecting", "--no-stop-watcher").code == 0
        turn = send(world, world.homelab.address, "during the halt")  # career's machine is not halted: it sends
        assert wait_for(log, 1)[0].endswith(f"\thomelab\t{turn['file_name']}\t(suppressed by HALT)")
        assert w.line().endswith(f"] homelab: {turn['file_name']} (suppressed by HALT)")
        assert world.homelab.drop("resume").code == 0
        after = send(world, world.homelab.address, "after the resume")
        assert wait_for(log, 2)[1].endswith(f"\thomelab\t{after['file_name']}")
        assert [json.loads(n)[1] for n in wait_for(notified, 1)] == [f"homelab: {after['file_name']}"]
    finally:
        code, err = w.stop()
    assert code == 0 and "Traceback" not in err, err


def test_halt_and_resume_of_this_machine(world: World, tmp_path: Path) -> None:
    career, homelab = world.career, world.homelab
    msg = write(tmp_path / "m.org", world.org())
    r = career.drop("halt", "runaway poll loop", "--no-stop-watcher")
    assert r.code == 0, r
    assert r.out.splitlines() == [f"Halting locally ✓ (halt recorded at the hub for machine:{career.machine})", "",
                                  "Halt active. Run cross-agent-resume to clear.",
                                  "Every write by a session in scope is refused by the hub (423) until then; "
                                  "cross-agent-send and cross-agent-recv exit 5."]
    # seed 004: halting again rewrote the HALT file, so the new reason is the one every view shows (before: the
    # hub refused the second halt and the first reason stayed)
    again = career.drop("halt", "second reason", "--no-stop-watcher")
    assert again.code == 0, again
    assert again.out.splitlines()[0] == (f"Halting locally ✓ (halt at the hub for machine:{career.machine} already "
                                         "stood; its reason is now: second reason)"), again
    sent = career.drop("send", homelab.address, str(msg), "--no-sign")
    assert sent.code == 5 and "second reason" in sent.err and "runaway" not in sent.err, sent
    assert career.drop("recv", "--no-verify", str(msg)).code == 5
    status = career.drop("status")
    assert status.out.splitlines()[:2] == ["⚠ HALT ACTIVE — cross-agent comms paused",
                                           f"  reason: second reason (machine:{career.machine}, by "
                                           f"{career.session} at " + status.out.splitlines()[1].split(" at ")[-1]]
    assert json.loads(career.drop("status", "--json").out)["halt_active"] is True
    # another machine is not halted: it sends, and its own views show no halt
    assert homelab.drop("send", career.address, str(msg), "--no-sign").code == 0
    assert "HALT" not in homelab.drop("status").out

    # the operator resumes career's machine from that machine (the user's own identity.json names it; the admin
    # token does not; a repository's identity.json would not count beside a token that is not its own)
    write(career.home / ".claude" / "identity.json", json.dumps({"machine": career.machine.upper()}))
    operator = career.with_env(COORD_TOKEN=world.hub.admin_token)
    back = operator.drop("resume")
    assert back.code == 0, back
    assert back.out.splitlines()[:2] == ["Resuming locally ✓ (HALT cleared)",
                                         f"Paused until each re-engages: {career.session}"]
    assert "Agent polling does NOT auto-resume" in back.out and "coord engage" in back.out
    # seed 004's asymmetry: the session active under the halt stays paused until it re-engages
    paused = career.drop("send", homelab.address, str(msg), "--no-sign")
    assert paused.code == 5 and "paused" in paused.err, paused
    # review (seed-004 user run): it said "resume with: cross-agent-resume", which does nothing for a pause, and
    # status showed nothing while every send and receive stopped
    assert "coord engage" in paused.err and "cross-agent-resume" not in paused.err, paused
    still = career.drop("status")
    assert still.code == 0 and still.out.startswith("⚠ paused since ") and "`coord engage`" in still.out, still
    assert "HALT ACTIVE" not in still.out
    assert career.drop("recv", "--no-verify", str(msg)).code == 5
    assert career.coord("engage").code == 0
    assert career.drop("send", homelab.address, str(msg), "--no-sign").code == 0
    assert career.drop("resume").out.splitlines()[0] == "Resuming locally ✓ (no HALT was active)"


def test_halting_the_fleet_needs_an_admin(world: World) -> None:
    # review (seed-004 user run): without an admin token nothing at all was halted, where the seed's --tailnet
    # always halted this machine first and reported the peers it could not reach (PARTIAL HALT, exit 1)
    r = world.career.drop("halt", "everyone stop", "--tailnet", "--no-stop-watcher")
    assert r.code == 1, r
    out = r.out.splitlines()
    assert out[0] == f"Halting locally ✓ (halt recorded at the hub for machine:{world.career.machine})", r
    assert out[1].startswith("Halting fleet    ✗ (") and "admin" in out[1], r
    assert out[3].startswith("PARTIAL HALT: only this machine is halted."), r
    msg = write(world.career.cwd / "m.org", world.org())
    assert world.career.drop("send", world.homelab.address, str(msg), "--no-sign").code == 5
    assert world.homelab.drop("send", world.career.address, str(msg), "--no-sign").code == 0  # not halted
    # review (seed-004 user run): resuming as it halted, with --tailnet, refused everything (exit 1) and left this
    # machine halted; the seed cleared its own HALT file first and reported the peers it could not (PARTIAL RESUME)
    back = world.career.drop("resume", "--tailnet")
    assert back.code == 1, back
    out = back.out.splitlines()
    assert out[0] == "Resuming locally ✓ (HALT cleared)", back
    assert out[1].startswith("Resuming fleet   ✗ (") and "admin" in out[1], back
    assert any(line.startswith("PARTIAL RESUME: only this machine's halt is lifted.") for line in out), back
    assert world.career.drop("send", world.homelab.address, str(msg), "--no-sign").code == 0
    assert world.career.drop("resume").code == 0
    admin = world.career.with_env(COORD_TOKEN=world.hub.admin_token)
    done = admin.drop("halt", "everyone stop", "--tailnet", "--no-stop-watcher")
    assert done.code == 0, done
    assert done.out.splitlines()[0] == "Halting fleet ✓ (halt recorded at the hub for fleet)"
    assert re.fullmatch(r"Halt active across \d+ machine\(s\)\.", done.out.splitlines()[2])
    assert world.homelab.drop("recv", "--no-verify", str(write(world.homelab.cwd / "x.org", world.org()))).code == 5
    # a halt this session may not lift keeps the operator's reason: shown, not rewritten
    mine = world.homelab.drop("halt", "my own reason", "--no-stop-watcher")
    assert mine.code == 0 and mine.out.startswith("Halting locally ✓ (already halted: everyone stop (fleet"), mine
    assert admin.drop("halt", "everyone stop, still", "--tailnet", "--no-stop-watcher").out.splitlines()[0] == \
        "Halting fleet ✓ (halt at the hub for fleet already stood; its reason is now: everyone stop, still)"
    back = admin.drop("resume", "--tailnet")
    assert back.code == 0 and back.out.splitlines()[1] == "Resuming fleet   ✓ (HALT cleared)", back
    assert any(re.fullmatch(r"Resume complete across \d+ machine\(s\)\.", line) for line in back.out.splitlines())


def test_a_halt_reason_reaches_the_terminal_escaped(world: World, tmp_path: Path) -> None:
    # A halt's reason and who set it are anyone's text: an orchestrator worker of this machine (Claude with Bash
    # in a repository anyone wrote to) may halt it with a reason of its choosing, which every drop-in printed raw,
    # terminal escapes included (an OSC 52 clipboard write, a screen clear); `coord status` escapes them.
    career = world.career
    worker = world.hub.token(f"{career.machine}/worker-0123abcd")
    reason = "stop\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\x1b[2J\nforged: line"
    r = httpx2.post(f"{world.hub.url}/api/coord/halt", json={"reason": reason, "scope": f"machine:{career.machine}"},
                    headers={"Authorization": f"Bearer {worker}"})
    assert r.status_code == 201, r.text
    try:
        msg = write(tmp_path / "m.org", world.org())
        shown = [career.drop("status"), career.drop("status", "--json"), career.drop("send", world.homelab.address,
                 str(msg), "--no-sign"), career.drop("recv", "--no-verify", str(msg)), career.drop("discover")]
        for result in shown:
            text = result.out + result.err
            assert "\x1b" not in text and "\x07" not in text and "\nforged" not in text, result
        assert "stop\\x1b]52;c;" in shown[0].out, shown[0]
    finally:
        assert career.drop("resume").code == 0


def test_a_halt_the_hub_answers_a_send_with_is_said_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    # a halt that fell between cross-agent-send's own check and its send: the hub's 423 words carry the reason
    from coordhub.client import HubError
    from coordhub.compat.crossagent.send import refused

    words = "machine:velox is halted by velox/worker-0123abcd since …: stop\x1b]52;c;eA==\x07\nforged (…)"
    with pytest.raises(SystemExit) as exited:
        refused(HubError(423, "halted", words, {"error": {"code": "halted", "message": words}}), "velox.career")
    assert exited.value.code == 5
    said = capsys.readouterr().err
    assert said.startswith("halt active: ") and "\\x1b]52" in said, said
    assert "\x1b" not in said and "\x07" not in said and "\nforged" not in said, said


def test_a_blank_reason_says_where_the_halt_came_from(world: World) -> None:
    """The seed wrote a blank reason as an empty HALT file, so a second halt without one erased the reason; the
    hub keeps no halt without a reason (422), so a blank one, first or again, reads cross-agent-halt on <machine>."""
    career = world.career
    assert career.drop("halt", "runaway poll loop", "--no-stop-watcher").code == 0
    again = career.drop("halt", "  ", "--no-stop-watcher")
    assert again.code == 0 and again.out.splitlines()[0].endswith(
        f"its reason is now: cross-agent-halt on {career.machine})"), again
    assert career.drop("resume").code == 0
    assert career.drop("halt", "--no-stop-watcher").code == 0
    [standing] = career.coord("status", "--json").json()["halts"]
    assert standing["reason"] == f"cross-agent-halt on {career.machine}"
    assert career.drop("resume").code == 0
