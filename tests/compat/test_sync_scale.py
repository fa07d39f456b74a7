"""``coord conv sync`` of 10,000 turns from a real hub: correct, and how long it takes (printed, not asserted).

Slow (run with ``-m slow -s``). Half the turns carry a signature, so the sync
writes 15,000 files. The time is the wall clock of the ``coord conv sync``
process, interpreter start included; docs/conversations.md quotes it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.compat.conftest import World

TURNS = 10_000
SIG = "-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQ{n:08d}\n=AbCd\n-----END PGP SIGNATURE-----\n"


def fill(world: World) -> None:
    """TURNS turns from career to homelab over HTTP, in 100 conversations; every other one signed (file form)."""
    headers = {"Authorization": f"Bearer {world.career.env['COORD_TOKEN']}"}
    url = f"{world.hub.url}/api/coord/conversations/turns"

    def batch(start: int) -> None:
        with httpx2.Client(headers=headers, timeout=60) as http:
            for n in range(start, min(start + 250, TURNS)):
                conv = f"{world.conv}-{n % 100}"
                sequence = n // 100 + 1
                while True:
                    if n % 2:
                        body = {"to": world.homelab.address, "conversation_id": conv, "type": "progress",
                                "body": f"turn {n}\n"}
                    else:  # a signed file says the sequence it gets: renumbered when another took it (409)
                        body = {"to": world.homelab.address, "signature": SIG.format(n=n), "content": world.org(
                            conversation=conv, kind="progress", sequence=sequence, body=f"signed turn {n}\n")}
                    r = http.post(url, json=body)
                    if r.status_code == 409 and r.json()["error"]["code"] == "sequence_taken":
                        sequence = r.json()["error"]["next_sequence"]
                        continue
                    assert r.status_code == 201, r.text
                    break

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(batch, range(0, TURNS, 250)))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sync_of_ten_thousand_turns(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fill(world)
    started = time.perf_counter()
    r = world.homelab.coord("conv", "sync", "--json")
    took = time.perf_counter() - started
    assert r.code == 0, r
    assert r.json()["written"] == TURNS
    inbox: Path = world.homelab.inbox
    assert len(list(inbox.glob("*.org"))) == TURNS and len(list(inbox.glob("*.asc"))) == TURNS // 2
    started = time.perf_counter()
    again = world.homelab.coord("conv", "sync", "--from-start", "--json").json()
    recheck = time.perf_counter() - started
    assert (again["written"], again["present"]) == (0, TURNS)
    with capsys.disabled():
        print(f"\nsync of {TURNS} turns ({TURNS // 2} signed, {TURNS * 3 // 2} files): {took:.1f} s "
              f"({TURNS / took:.0f} turns/s); again from the start, all present: {recheck:.1f} s")
