"""A seed-000 user's identity.json, where the seed kept it.

Seed 000's script read ``$CLAUDETOOLS_ROOT/.claude/identity.json`` (``coord_api``, ``machine``, ``user``) from
wherever it ran. This client reads an identity.json only inside its own git repository or from ``~/.claude``, so
such a user, pointing that file at the hub as docs/migrating.md says and running ``coord`` in another repository,
had the default hub asked with no token, and nothing said of the file. Now each command says it did not read
that file and how to use it everywhere; once copied there, the commands act from it and the note is gone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveHub, free_port
from tests.coordcli import git_init, isolated_env

NOTE = "(seed 000's identity.json, under CLAUDETOOLS_ROOT): an identity.json is read only inside its own git repository"
ADVICE = 'mkdir -p ~/.claude && cp "$CLAUDETOOLS_ROOT/.claude/identity.json" ~/.claude/'


def _coord(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``coord ARGS`` as the console script runs it (fast path included), the default hub moved to a free port."""
    code = ("import sys, coordhub.config as c; c.DEFAULT_PORT = int(sys.argv[1]); sys.argv[1:2] = []; "
            "from coordhub.cli.entry import main; main()")
    return subprocess.run([sys.executable, "-c", code, str(free_port()), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


def test_seed_000s_identity_file_under_claudetools_root_is_named_until_copied_home(
        tmp_path: Path, live_hub: LiveHub) -> None:
    claudetools = git_init(tmp_path / "claudetools")
    (claudetools / ".gitignore").write_text(".claude/identity.json\n")
    seed_file = claudetools / ".claude" / "identity.json"
    seed_file.parent.mkdir()
    token = live_hub.token("HOWARD-HOME/claude-main")
    seed_file.write_text(f'{{"coord_api": "{live_hub.url}", "machine": "HOWARD-HOME", "user": "howard", '
                         f'"token": "{token}"}}')
    gururmm = git_init(tmp_path / "gururmm")
    env = isolated_env(tmp_path, CLAUDETOOLS_ROOT=str(claudetools))
    for args in (("status",), ("msg", "inbox")):  # the Typer CLI, the fast path
        p = _coord(gururmm, env, *args)
        assert f"coord: warning: not reading {seed_file} {NOTE}" in p.stderr and ADVICE in p.stderr, p
        assert p.returncode == 3, p  # the default hub was asked, with no token
    # a hub URL named another way: nothing to say about the file
    p = _coord(gururmm, {**env, "COORD_URL": live_hub.url, "COORD_TOKEN": token}, "status")
    assert p.returncode == 0 and NOTE not in p.stderr, p
    # the advice taken: the file acts from every repository, and the note is gone
    (Path(env["HOME"]) / ".claude").mkdir()
    shutil.copy(seed_file, Path(env["HOME"]) / ".claude" / "identity.json")
    p = _coord(gururmm, env, "status")
    assert p.returncode == 0 and NOTE not in p.stderr, p
    assert p.stdout.startswith("session HOWARD-HOME/claude-main (token from "), p
