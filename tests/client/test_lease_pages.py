"""Lists of leases longer than one page (the hub answers 500 at most per request): the Python client,
``coord lock list``, the hooks' client and the lease benchmark's count read every page, on a real
``coord serve`` holding 581 live leases of two sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.client import CoordClient
from coordhub.client.settings import ClientSettings
from coordhub.client.wire import Hub, Listed
from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

A = "A/claude-main"
B = "B/claude-main"
LOCKS = "/api/coord/locks"


class Seeded:
    """A live hub whose project ``p`` holds 580 live leases: A's ``a/f0.py`` … ``a/f549.py`` first, then B's
    ``b/f0.py`` … ``b/f29.py`` (fence order); ``q`` holds one of B's."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.tokens = {A: hub.token(A), B: hub.token(B)}
        self.fences: list[int] = []
        with httpx2.Client(base_url=hub.url, timeout=30) as http:
            for who, prefix, n in ((A, "a", 550), (B, "b", 30)):
                auth = {"Authorization": f"Bearer {self.tokens[who]}"}
                for i in range(n):
                    r = http.post(LOCKS, json={"project_key": "p", "resource": f"{prefix}/f{i}.py",
                                               "description": f"{prefix}{i}", "ttl_hours": 0}, headers=auth)
                    assert r.status_code == 201, r.text
                    self.fences.append(r.json()["fence"])
            r = http.post(LOCKS, json={"project_key": "q", "resource": "x.py"},
                          headers={"Authorization": f"Bearer {self.tokens[B]}"})
            assert r.status_code == 201, r.text

    def client(self, tmp: Path, who: str = A) -> CoordClient:
        return CoordClient(ClientSettings(url=self.hub.url, token=self.tokens[who], session=None, user=None,
                                          machine=None, queue_file=tmp / "queue.jsonl", timeout=30.0))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    hub = LiveHub(tmp_path_factory.mktemp("pages") / "hub").start()
    try:
        yield Seeded(hub)
    finally:
        hub.stop()


def _resources(rows: list[dict[str, Any]]) -> list[str]:
    return [r["resource"] for r in rows]


EVERY = [f"a/f{i}.py" for i in range(550)] + [f"b/f{i}.py" for i in range(30)]


def test_the_client_reads_every_page(seeded: Seeded, tmp_path: Path) -> None:
    with seeded.client(tmp_path) as c:
        rows = c.locks("p")
        assert _resources(rows) == EVERY and rows.next_after_fence is None
        assert [r["fence"] for r in rows] == seeded.fences
        assert len(c.locks()) == 581 and c.locks().next_after_fence is None  # every project
        assert _resources(c.locks(resource="b/")) == EVERY[550:]
        assert len(c.locks(session_id=A)) == 550


def test_the_client_bounds_what_one_call_reads_and_says_where_to_go_on(seeded: Seeded, tmp_path: Path) -> None:
    with seeded.client(tmp_path) as c:
        first = c.locks("p", max_leases=520)
        assert _resources(first) == EVERY[:520] and first.next_after_fence == seeded.fences[519]
        rest = c.locks("p", after_fence=first.next_after_fence)
        assert _resources(rest) == EVERY[520:] and rest.next_after_fence is None
        one = c.locks("p", max_leases=1)
        assert _resources(one) == EVERY[:1] and one.next_after_fence == seeded.fences[0]
        with pytest.raises(ValueError, match="max_leases"):
            c.locks("p", max_leases=0)


@pytest.fixture
def coord(seeded: Seeded, tmp_path: Path) -> Coord:
    return Coord(tmp_path, isolated_env(tmp_path), url=seeded.hub.url, token=seeded.tokens[B])


def test_lock_list_shows_every_lease(coord: Coord) -> None:
    # `lock list [--project P] [--json]` is also the fast path's; a cut answer is left to the full CLI
    for args in (("lock", "list", "--project", "p"), ("lock", "list")):
        listed = coord.json(*args)
        assert _resources(listed)[:580] == EVERY and len(listed) == 580 + (args[-1] == "list")
        table = coord.ok(*args)
        assert "a/f549.py" in table.out and "b/f29.py" in table.out and table.err == ""
    assert _resources(coord.json("lock", "list", "--resource", "b/")) == EVERY[550:]


def test_lock_list_says_when_it_was_cut_and_how_to_go_on(coord: Coord, seeded: Seeded) -> None:
    r = coord.ok("lock", "list", "--project", "p", "--max", "520", "--json")
    assert _resources(r.json()) == EVERY[:520]
    assert f"--after-fence {seeded.fences[519]}" in r.err and "520" in r.err
    r = coord.ok("lock", "list", "--project", "p", "--after-fence", str(seeded.fences[519]), "--json")
    assert _resources(r.json()) == EVERY[520:] and r.err == ""
    r = coord.ok("lock", "list", "--project", "p", "--max", "3")
    assert "a/f2.py" in r.out and "a/f3.py" not in r.out and f"--after-fence {seeded.fences[2]}" in r.err


def test_the_hooks_client_reads_every_page_up_to_a_bound(seeded: Seeded) -> None:
    # the standard-library client of the hooks and the git guard (coordhub.client.wire)
    hub = Hub(seeded.hub.url, seeded.tokens[A], None, 30.0)
    every = hub.pages("/locks", 10_000, project_key="p")
    assert _resources(every.rows) == EVERY and every.more is False
    cut = hub.pages("/locks", 3, project_key="p")
    assert _resources(cut.rows) == EVERY[:500] and cut.more is True  # whole pages: it stops after the first
    assert _resources(hub.pages("/locks", 10_000, project_key="p", resource="b/").rows) == EVERY[550:]
    assert hub.pages("/locks", 10_000, project_key="none") == Listed([], False)


def test_the_lease_benchmark_counts_every_page(seeded: Seeded) -> None:
    from coordhub.bench.runner import _live_leases
    from coordhub.bench.target import Target

    target = Target(seeded.hub.url, seeded.hub.admin_token)
    assert _live_leases(target, "p") == 580  # it reported the first page's 500
    assert _live_leases(target, "none") == 0
    assert _live_leases(Target(seeded.hub.url, "not-the-admin-token"), "p") is None
