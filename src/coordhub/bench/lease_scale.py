"""The ``lease-scale`` scenario: claim and conflict-check latency as live leases grow (issue 8, point 2).

For each size a fresh hub's store is filled through the core's own claim (in
large units of work, so filling is fast and every lease is indexed exactly as
a live claim files it), the hub is started on it, and one client then, one
request at a time:

* claims a new file beside the held ones and releases it (``claim``: the
  claim's latency, the headline; DESIGN/issue 8 ask p50 ≤ 5 ms, p99 ≤ 20 ms);
* asks ``GET /locks/conflicts`` for a file, as the edit hook does before every
  edit (``conflicts``: p50 ≤ 3 ms).

Two layouts: ``literal`` (N file leases spread over 1,000 packages) and
``globs`` (N ``gpkgK/**/*.py`` globs plus N file leases; the measured claims
and checks are of ``.rs`` files inside the globs' packages, so each one has a
glob candidate whose automaton must run). Percentiles are nearest-rank, in ms.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from coordhub.bench.driver import Tick
from coordhub.bench.stats import Series
from coordhub.bench.target import start

LITERAL_SIZES = (100, 1_000, 10_000, 100_000)
GLOB_SIZES = (100, 1_000, 10_000)
HOLDERS = 100  # sessions the filled leases are spread over
PROJECT = "scale"


def _literal(i: int) -> str:
    return f"pkg{i % 1000}/src/mod{i // 1000}/file{i}.py"


def _glob(i: int) -> str:
    return f"gpkg{i}/**/*.py"


def fill(database_url: str, literals: int, globs: int, tick: Tick = lambda _: None) -> None:
    """Grant ``literals`` file leases and ``globs`` glob leases (ttl 0) through ``leases.claim``, in chunks."""
    from coordhub.core import leases
    from coordhub.core.hub import Hub
    from coordhub.core.identity import Actor
    from coordhub.store import open_store
    from coordhub.store.tx import Tx

    store = open_store(database_url)
    store.open()
    hub = Hub(store)
    wanted = [_literal(i) for i in range(literals)] + [_glob(i) for i in range(globs)]
    step = 2000

    def chunk(first: int) -> Callable[[Tx, float], None]:
        def op(tx: Tx, now: float) -> None:
            for k in range(first, min(first + step, len(wanted))):
                holder = Actor(f"SCALE/holder{k % HOLDERS:03d}")
                leases.claim(tx, holder, project_key=PROJECT, resource=wanted[k], description="held",
                             ttl_hours=0, now=now)
        return op

    try:
        for first in range(0, len(wanted), step):
            hub.mutate_sync(Actor("SCALE/filler", is_admin=True), chunk(first))
            tick(min(1.0, (first + step) / max(1, len(wanted))))
    finally:
        store.close()


def _measure(url: str, token: str, n: int, claim_path: Callable[[int], str],
             check_path: Callable[[int], str]) -> dict[str, Any]:
    claims, checks = Series(), Series()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx2.Client(base_url=url, headers=headers, timeout=60.0) as c:
        for i in range(n):
            t0 = time.perf_counter()
            r = c.post("/api/coord/locks", json={"project_key": PROJECT, "resource": claim_path(i), "ttl_hours": 1})
            if r.status_code != 201:
                claims.fail(f"{r.status_code} {r.text[:200]}")
            else:
                claims.latencies.append(time.perf_counter() - t0)
                c.delete(f"/api/coord/locks/{r.json()['id']}")
            t0 = time.perf_counter()
            r = c.get("/api/coord/locks/conflicts", params={"project_key": PROJECT, "resource": check_path(i)})
            if r.status_code != 200:
                checks.fail(f"{r.status_code} {r.text[:200]}")
            else:
                checks.latencies.append(time.perf_counter() - t0)
    return {"claim": claims.summary(0.0), "conflicts": checks.summary(0.0)}


def _one(layout: str, size: int, requests: int, hub_args: list[str], database_url: str | None,
         progress: Callable[[str], Tick]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coord-bench-scale-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'coord.db'}"
        literals, globs = (size, 0) if layout == "literal" else (size, size)
        t0 = time.perf_counter()
        fill(url, literals, globs, progress(f"lease-scale {layout} {size:,}: fill"))
        filled = round(time.perf_counter() - t0, 1)
        target = start(hub_args + (["--database-url", database_url] if database_url else []), data_dir=Path(folder))
        try:
            token = httpx2.post(target.url + "/api/coord/tokens", json={"name": "SCALE/measurer"}, timeout=30,
                                headers={"Authorization": f"Bearer {target.admin_token}"}).json()["token"]
            if layout == "literal":
                result = _measure(target.url, token, requests, lambda i: f"pkg{i % 1000}/src/new/n{i}.py",
                                  lambda i: f"./{_literal((i * 7919) % size)}")
            else:
                result = _measure(target.url, token, requests, lambda i: f"gpkg{i % size}/src/n{i}.rs",
                                  lambda i: f"./gpkg{(i * 7919) % size}/src/lib.rs")
            result.update(size=size, layout=layout, fill_seconds=filled, rss_mib=target.rss_mib())
            return result
        finally:
            target.stop()


def lease_scale(hub_args: list[str], database_url: str | None, requests: int,
                progress: Callable[[str], Tick]) -> dict[str, Any]:
    """Both layouts at every size; the headline is claim latency at the largest literal size."""
    if database_url and database_url.startswith("postgres"):
        raise SystemExit("bench: lease-scale fills a fresh store per size; run it on SQLite (the default)")
    curve = [_one("literal", n, requests, hub_args, database_url, progress) for n in LITERAL_SIZES]
    curve += [_one("globs", n, requests, hub_args, database_url, progress) for n in GLOB_SIZES]
    headline = dict(curve[len(LITERAL_SIZES) - 1]["claim"])
    errors = sum(r["claim"]["errors"] + r["conflicts"]["errors"] for r in curve)
    headline.update(errors=errors, error_samples=[s for r in curve for s in r["claim"]["error_samples"]][:3])
    return {"headline": headline, "headline_is": f"claim latency at {LITERAL_SIZES[-1]:,} live literal leases",
            "curve": curve}
