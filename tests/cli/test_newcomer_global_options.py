"""A global option given after the command says where it goes.

``coord status --url http://hub:8001`` (the order most CLIs accept) answered
only "No such option: --url", although ``--url`` is an option of ``coord``.
"""

from __future__ import annotations

from pathlib import Path

from tests.coordcli import Coord, isolated_env


def test_a_global_option_after_the_command_is_a_usage_error_naming_where_it_goes(tmp_path: Path) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path))
    for args, option, hint in ((("status", "--url", "http://127.0.0.1:9"), "--url", "--url … status)"),
                               (("msg", "inbox", "--token=x"), "--token", "--token … msg inbox)"),
                               (("lock", "list", "--admin"), "--admin", "--admin … lock list)")):
        r = coord(*args)
        assert r.code == 2, r
        assert f"{option} is a global option: give it before the command" in r.err and hint in r.err, r
    assert "No such option: --bogus" in coord("status", "--bogus").err  # any other option: as before
