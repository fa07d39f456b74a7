"""An identity.json field of another type than text is a usage error naming the file, never a traceback.

Before the fix an identity.json whose ``coord_api`` is a number (a typo, or a
file a repository's archive brought, untracked) ended every ``coord``
command in an ``AttributeError`` traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.coordcli import Coord, git_init, isolated_env


def test_an_identity_json_field_of_another_type_is_a_usage_error(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps({"coord_api": 8001}))
    r = Coord(repo, isolated_env(tmp_path)).fails(2, "status")
    assert '"coord_api" must be a string' in r.err
