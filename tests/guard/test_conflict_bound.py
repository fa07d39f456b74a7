"""The git guard and the hub's bound on what ``POST /locks/conflicts`` compares (82afd08): the resources after
the first may bring at most 10,000 candidate leases in all. A changed file brings every lease filed at its
scope or an ancestor's, so globs with no literal prefix (``*.gen0``, ``**/*.tmp``) are candidates of every file:
with 102 of them in the project, the guard's batch of 100 files was refused 422, which it took as "the hub could
not be asked" and, under the default ``COORD_HOOK_FAIL_MODE=open``, accepted the commit unchecked, a file another
session holds included. The guard now splits a batch the hub finds too broad, down to one path a request (the
first resource is compared whatever it brings)."""

from __future__ import annotations

import httpx2

from tests.guard.conftest import PROJECT, B, Fleet
from tests.guard.test_guard import refused_lines

GLOBS = 102  # root-scope glob leases: 99 files after the first bring 99 x 102 > 10,000 candidates


def test_a_big_commit_under_many_root_scope_globs_is_still_checked(fleet: Fleet) -> None:
    with httpx2.Client(base_url=fleet.hub.url + "/api/coord", headers=fleet.b, timeout=30) as http:
        for i in range(GLOBS):
            r = http.post("/locks", json={"project_key": PROJECT, "resource": f"*.gen{i}", "ttl_hours": 1})
            assert r.status_code == 201, r.text
    held = fleet.claim(fleet.b, "lib/held.py", "mine")
    repo = fleet.repo
    for i in range(99):
        repo.change(f"src/f{i}.py")
    repo.change("lib/held.py")
    r = repo.commit()
    assert "could not be asked" not in r.err, r
    assert r.code == 1, r
    assert [(x["path"], x["holder"], x["id"]) for x in refused_lines(r.err)] == [("lib/held.py", B, held["id"])]
    # without the held file the same big commit is checked and accepted, no warning
    repo.git("reset", "-q", "--", "lib/held.py")
    r = repo.commit()
    assert r.code == 0 and r.err == "", r
