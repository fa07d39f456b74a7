"""Writes whose id is malformed are usage errors, found before anything is sent or queued.

While the hub is down the client queues writes for later and reports success; one the hub will surely refuse
(a todo, lease or message id that is no UUID, a conversation id that is no slug) was queued too, reported as
queued (exit 0), and refused only at its replay, when nobody was watching. Tested as the outage queue is: against
an unreachable port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordhub.client.outcomes import BadArgument
from tests.client.conftest import sync_client
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, git_init, isolated_env

GOOD = "01a246b8-7576-7604-ae86-a03baeeeef58"


@pytest.mark.parametrize(("args", "bad"), [
    (("todo", "done", "12"), "'12'"),
    (("lock", "release", "nonuuid"), "'nonuuid'"),
    (("lock", "release", "--force", "0x" + "0" * 30), "'0x" + "0" * 30 + "'"),
    (("lock", "renew", GOOD + "0", "--ttl", "1"), repr(GOOD + "0")),
    (("msg", "read", GOOD, "nope"), "'nope'"),  # the good one is not marked (nor queued) either
    (("conv", "release", "no spaces"), "'no spaces'"),
    (("conv", "release", "inbox"), "'inbox'"),  # a route's name: POST …/inbox/release is refused
])
def test_a_malformed_id_is_a_usage_error_and_queues_nothing(tmp_path: Path, args: tuple[str, ...], bad: str) -> None:
    project = git_init(tmp_path / "gururmm")
    down = Coord(project, isolated_env(tmp_path), url=f"http://127.0.0.1:{free_port()}", token="coord_x")
    r = down.fails(2, *args)
    assert bad in r.err and r.out == "", r
    assert not (project / ".claude").exists(), "nothing queued"
    r = down(*args, "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "usage" and bad in r.json()["error"]["message"], r
    assert not (project / ".claude").exists()


def test_well_formed_ids_in_any_spelling_the_hub_takes_are_still_queued(tmp_path: Path) -> None:
    # the check refuses only what the hub would: upper case, 32 digits, braces and a URN name a record as well
    project = git_init(tmp_path / "gururmm")
    down = Coord(project, isolated_env(tmp_path), url=f"http://127.0.0.1:{free_port()}", token="coord_x")
    for spelled in (GOOD.upper(), GOOD.replace("-", ""), "{" + GOOD + "}", "urn:uuid:" + GOOD):
        r = down.queued("todo", "done", spelled)
        assert f"/api/coord/todos/{GOOD}/done" in r.out, r  # sent in the hub's own spelling
    assert down.queued("conv", "release", "prep-fixup.2")


def test_the_client_refuses_before_sending_or_queueing(tmp_path: Path) -> None:
    # the library's own callers (scripts, the CLI) get the same check: nothing in the queue file
    with sync_client(f"http://127.0.0.1:{free_port()}", tmp_path) as c:
        for call in (lambda: c.todo_done("12"), lambda: c.release("nonuuid"), lambda: c.renew("x", 1.0),
                     lambda: c.mark_read("../locks"), lambda: c.ack(""), lambda: c.release_conversation("a b")):
            with pytest.raises(BadArgument) as caught:
                call()
            assert (caught.value.status, caught.value.code) == (422, "invalid")
            assert "nothing was sent or queued" in caught.value.message
        assert len(c.queue) == 0 and not (tmp_path / "coord-queue.jsonl").exists()


def test_a_malformed_lease_id_is_a_usage_error_with_the_hub_up(live_hub: LiveHub, tmp_path: Path) -> None:
    # it was the hub's 422 (exit 1); the client now says it first, the same way whether the hub is up or down
    me = Coord(git_init(tmp_path / "w"), isolated_env(tmp_path), url=live_hub.url,
               token=live_hub.token("desk/claude-main"))
    r = me.fails(2, "lock", "release", "not-a-lease-id")
    assert "lease id 'not-a-lease-id' is not an id: ids are UUIDs such as" in r.err, r
