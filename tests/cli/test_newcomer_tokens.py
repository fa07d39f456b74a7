"""A newcomer's first ``coord token create`` against a hub that is not where the client looks.

The hub shows a token only in the answer to the request that created it, so a
create queued for later (seed 001's softfail, right for writes whose answer
nobody needs) would make a token that no one ever sees, and printed the
queue notice on stdout where ``TOKEN=$(coord token create …)`` reads the token.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.coordcli import Coord, isolated_env


def test_token_create_against_an_unreachable_hub_exits_3_and_queues_nothing(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    down = Coord(tmp_path, env, url=f"http://127.0.0.1:{free_port()}", token="coord_admin")
    r = down.unreachable("token", "create", "HOWARD-HOME/claude-main")
    assert r.out == ""  # nothing a script would take for the token
    assert not list(tmp_path.rglob("coord-queue*.jsonl")), "a token create was queued"


def test_halt_resume_and_revoke_against_an_unreachable_hub_exit_3_and_queue_nothing(tmp_path: Path) -> None:
    """Each is asked for to take effect now: a halt queued until the user's next command would stop nothing
    meanwhile, and a leaked token revoked only then would serve the thief meanwhile (they were queued, exit 0,
    and the user told the write would be sent later)."""
    env = isolated_env(tmp_path)
    down = Coord(tmp_path, env, url=f"http://127.0.0.1:{free_port()}", token="coord_admin")
    for args in (("halt", "runaway agent"), ("resume",), ("token", "revoke", "HOWARD-HOME/claude-main")):
        down.unreachable(*args)
        assert not list(tmp_path.rglob("coord-queue*.jsonl")), f"coord {' '.join(args)} was queued"
