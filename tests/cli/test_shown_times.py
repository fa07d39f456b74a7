"""Times the CLI prints to people are to the second, as its tables and the hooks' banners print them; ``--json``
keeps the hub's microseconds.

Review: `coord lock claim` ("expires …"), `coord lock renew` ("until …"), the "already done / read / acked" notes
and `coord watch`'s event lines printed the hub's raw timestamps (``2026-12-07T07:55:26.123456Z``). Real ``coord``
subprocesses against a real ``coord serve``.
"""

from __future__ import annotations

import re
from pathlib import Path

from coordhub.cli.views import shown_time
from coordhub.cli.watch import describe
from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
FRACTION = re.compile(r"T\d\d:\d\d:\d\d\.\d")  # a time with a fraction of a second


def test_human_output_shows_times_to_the_second(live_hub: LiveHub, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    a = Coord(work, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(A))
    outs: list[str] = []

    claimed = a.ok("lock", "claim", "shop", "deploy:staging", "deploying", "--ttl", "1").out
    lease = a.json("lock", "list")[0]
    assert f"expires {shown_time(lease['expires_at'])})" in claimed, claimed
    renewed = a.ok("lock", "renew", lease["id"]).out
    outs += [claimed, renewed]

    todo = a.json("todo", "add", "rotate the keys")["id"]
    a.ok("todo", "done", todo)
    done = a.json("todo", "done", todo)
    again = a.ok("todo", "done", todo).out
    assert f"at {shown_time(done['completed_at'])}); nothing changed" in again, again
    outs.append(again)

    mid = a.json("msg", "send", A, "please ack", "to myself", "--requires-ack")["id"]
    read = a.json("msg", "read", mid)[0]
    outs.append(a.ok("msg", "read", mid).out)
    assert f"(at {shown_time(read['read_at'])}); nothing changed" in outs[-1], outs[-1]
    acked = a.json("msg", "ack", mid)
    outs.append(a.ok("msg", "ack", mid).out)
    assert outs[-1] == f"already acked {mid} (at {shown_time(acked['acked_at'])}); nothing changed\n", outs[-1]

    event = {"id": 7, "kind": "todo.done", "session_id": A, "project_key": None, "subject_id": todo,
             "created_at": done["completed_at"], "payload": {}}
    outs.append(describe(event))
    assert outs[-1].startswith(f"{shown_time(done['completed_at'])}  #7  "), outs[-1]

    shown = [line for out in outs for line in out.splitlines() if FRACTION.search(line)]
    assert shown == [], shown


def test_tables_show_their_time_columns_to_the_second(live_hub: LiveHub, tmp_path: Path) -> None:
    # `coord presence`, `coord token list`, `coord component list`, `coord msg inbox --all` printed the hub's raw
    # timestamps in their time columns: every table now shows a `*_at` or `last_heartbeat` column to the second
    work = tmp_path / "work"
    work.mkdir()
    a = Coord(work, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(A))
    a.ok("msg", "send", A, "hello", "to myself")  # each command heartbeats: its session is present
    a.ok("component", "set", "shop", "api", "ready")
    tables = {args: a.ok(*args).out for args in (("presence",), ("msg", "inbox", "--all"), ("component", "list"))}
    for args, out in tables.items():
        assert re.search(r"T\d\d:\d\d:\d\d", out), (args, out)  # the table has a time column, shown
        assert not FRACTION.search(out), (args, out)
