"""An identity.json ``machine`` or ``project`` with no letter or digit is passed over, not a traceback.

Before the fix ``coord conv status`` (and every command that works out the
caller's ``<machine>.<project>``) ended in a ``ValueError`` traceback for an
identity.json saying ``"machine": "---"``, a file a repository's archive can
bring untracked.
"""

from __future__ import annotations

import json
from pathlib import Path

from coordhub.client import address
from tests.conftest import free_port
from tests.coordcli import Coord, git_init, isolated_env


def test_a_machine_or_project_with_no_letter_or_digit_is_passed_over(tmp_path: Path) -> None:
    assert address.machine({"machine": "---"}, "HOWARD-HOME/claude-main") == "howard-home"
    assert address.machine({"machine": "…"}, None, hostname="Build-7.example") == "build-7"
    repo = git_init(tmp_path / "My.Repo")
    assert address.project_name({"project": "___"}, repo) == "my-repo"

    (repo / ".claude").mkdir()
    url = f"http://127.0.0.1:{free_port()}"
    (repo / ".claude" / "identity.json").write_text(json.dumps({"coord_api": url, "machine": "---", "project": "..."}))
    coord = Coord(repo, isolated_env(tmp_path))
    coord.ok("trust", url)  # the project's hub is the user's (else it is not asked at all)
    r = coord.unreachable("conv", "status")  # asked the hub: the address was made
    assert "Traceback" not in r.err
