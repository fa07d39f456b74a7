"""The seed-004 drop-ins end quietly when their stdout's reader has gone (``cross-agent-recv FILE | head -2``), as
``coord`` does: exit 141, nothing on stderr. They printed a ``BrokenPipeError`` traceback (review, seed-004 user
run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coordhub.cli.entry import EXIT_BROKEN_PIPE
from tests.cli.test_json_and_edges import _with_closed_stdout
from tests.compat.conftest import World, write


@pytest.mark.parametrize("args", [("recv", "--no-verify", "{msg}"), ("recv", "--no-verify", "--json", "{msg}"),
                                  ("discover",), ("status", "--json")])
def test_a_closed_stdout_ends_a_drop_in_quietly(world: World, tmp_path: Path, args: tuple[str, ...]) -> None:
    msg = write(tmp_path / "m.org", world.org())
    cmd = [sys.executable, "-m", "coordhub.compat.crossagent", *(a.format(msg=msg) for a in args)]
    env = {k: v for k, v in world.homelab.env.items() if k != "PYTHONUNBUFFERED"}
    code, err = _with_closed_stdout(cmd, env, world.homelab.cwd)
    assert (code, err) == (EXIT_BROKEN_PIPE, ""), err
