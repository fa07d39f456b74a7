"""A turn's ``#+TIMESTAMP`` through the seed-004 commands: one ahead of the hub's clock is refused (exit 4, both
clocks named), one past is taken and shown beside the hub's own time (see docs/conversations.md, *Times*)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.compat.conftest import World, write


def stamp(offset: float) -> str:
    """Now plus ``offset`` seconds as a seed-004 TIMESTAMP at -05:00 (the hub runs on this machine's clock)."""
    when = dt.datetime.now(dt.timezone(dt.timedelta(hours=-5))) + dt.timedelta(seconds=offset)
    return when.isoformat(timespec="seconds")


def test_a_file_stamped_ahead_is_refused_with_both_clocks_and_exit_4(world: World, tmp_path: Path) -> None:
    career, to = world.career, world.homelab.address
    ahead = write(tmp_path / "ahead.org", world.org(timestamp=stamp(3 * 3600)))
    r = career.drop("send", to, str(ahead), "--no-sign")
    assert r.code == 4, r
    assert "TIMESTAMP" in r.err and "ahead of the hub's clock" in r.err and "send again" in r.err, r
    assert career.coord("conv", "show", world.conv).code == 1  # nothing recorded: no such conversation
    signed = career.coord("conv", "send", to, str(ahead), "--sign")  # signed: refused before gpg verifies
    assert signed.code != 0 and "ahead of the hub's clock" in signed.err, signed


def test_a_past_file_is_taken_and_show_gives_its_time_beside_the_hubs(world: World, tmp_path: Path) -> None:
    career, to = world.career, world.homelab.address
    old = stamp(-3 * 86400)
    assert career.drop("send", to, str(write(tmp_path / "old.org", world.org(timestamp=old))), "--no-sign").code == 0
    now = write(tmp_path / "now.org", world.org(kind="progress", timestamp=stamp(0), body="on it\n"))
    assert career.drop("send", to, str(now), "--no-sign").code == 0
    shown = world.homelab.coord("conv", "show", world.conv)
    assert shown.code == 0, shown
    lines = [line for line in shown.out.splitlines() if f"{world.conv} #" in line]
    utc = dt.datetime.fromisoformat(old).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the author's -05:00 also in UTC, the form of the hub's time beside it (review, seed-004 typed conversations)
    assert len(lines) == 2 and lines[0].endswith(f"; its TIMESTAMP says {old} = {utc})"), shown
    assert "its TIMESTAMP says" not in lines[1], shown

