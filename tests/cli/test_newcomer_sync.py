"""``coord sync`` names the queued writes it leaves for another hub.

A newcomer whose first command went to the default URL (no hub there) had a
write queued for that hub; ``coord sync`` against the real hub then said "sent
0 queued write(s)" over a queue file that was not empty, which reads as a
lost write.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, isolated_env


def test_sync_says_how_many_writes_wait_for_another_hub(live_hub: LiveHub, tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    down = Coord(tmp_path, env, url=f"http://127.0.0.1:{free_port()}", token="coord_for_the_other_hub")
    down.queued("msg", "send", "ALL", "to the wrong hub", "queued")
    hub = Coord(tmp_path, env, url=live_hub.url, token=live_hub.token("HOWARD-HOME/claude-main"))
    r = hub.ok("sync")
    assert r.out.splitlines()[:2] == ["sent 0 queued write(s)",
                                      f"1 queued write(s) for another hub or token stay in "
                                      f"{tmp_path / 'xdg-state' / 'coordhub' / 'coord-queue.jsonl'}: sent by the "
                                      "first command that reaches that hub with that token"]
    assert hub.json("sync")["elsewhere"] == 1
