"""Prometheus /metrics and JSON log lines (issue 14 point 5)."""

from __future__ import annotations

import gc
import json
import re
import socket
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from coordhub.api.app import build_routes, create_app
from coordhub.api.metrics import GC_PAUSES
from coordhub.core.hub import Hub
from coordhub.heap import GC_THRESHOLDS, Freezer, Pacer, absorbing, settle_heap
from tests.conftest import Api, LiveHub, free_port

A = "METRICS-A/claude-main"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_routes_batches_leases_and_refusals(api: Api) -> None:
    me = api.token(A)
    for i in range(3):
        r = api.post("/api/coord/locks", headers=me, json={"project_key": "m", "resource": f"f{i}.py",
                                                          "ttl_hours": 1})
        assert r.status_code == 201, r.text
    assert api.get("/api/coord/definitely-not-a-route", headers=me).status_code == 404
    assert api.get("/metrics", headers=me).status_code == 403  # admin only on the main port
    r = api.get("/metrics", headers=api.admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    assert _value(s, "coord_http_request_seconds_count", route="/api/coord/locks", method="POST", status="2xx") == 3
    assert _value(s, "coord_http_request_seconds_sum", route="/api/coord/locks", method="POST", status="2xx") > 0
    assert _value(s, "coord_http_request_seconds_count", route="unmatched", method="GET", status="4xx") == 1
    assert _value(s, "coord_writer_batch_units_count", writer="own") >= 4  # the token, three claims
    assert _value(s, "coord_writer_batch_units_sum", writer="own") >= 4
    assert _value(s, "coord_writer_commit_seconds_count", writer="own") >= 4
    assert ("coord_writer_batch_units_count", (("writer", "process"),)) in s  # no writer process: none of its
    assert _value(s, "coord_writer_batch_units_count", writer="process") == 0
    assert _value(s, "coord_leases_live") == 3
    assert _value(s, "coord_assignments_queued") == 0
    assert _value(s, "coord_streams_open") == 0
    # events reach the bus after the commit's answer: the last publish may still be on its way
    deadline = time.monotonic() + 10
    while _value(s, "coord_event_publish_lag_seconds_count", source="local") < 4:
        assert time.monotonic() < deadline, _value(s, "coord_event_publish_lag_seconds_count", source="local")
        time.sleep(0.05)
        s = _samples(api.get("/metrics", headers=api.admin).text)
    assert ("coord_rate_limit_refusals_total", (("limit", "token"),)) in s
    for cause in ("isolated", "unit_lost", "stale"):  # no batch ran twice
        assert (("coord_writer_runs_again_total", (("cause", cause), ("writer", "own")))) in s
        assert _value(s, "coord_writer_runs_again_total", writer="own", cause=cause) == 0


def test_a_batch_run_again_is_counted_by_its_cause(api: Api) -> None:
    """A unit of a batch that fails after it wrote makes the batch run again (SQLite's first run takes no
    savepoints, ``BatchWriter._run_unit``); ``coord_writer_runs_again`` counts that run."""
    from tests.store.test_rows_ahead import _one_batch
    from tests.store.test_writer_savepoints import _event

    def wrote_then_failed(tx: Any) -> None:
        _event(tx, "written")
        raise ValueError("after writing")

    store = api.hub.store
    got = _one_batch(store, [lambda tx: _event(tx, "kept"), wrote_then_failed])
    assert isinstance(got[0], int) and isinstance(got[1], ValueError), got
    s = _samples(api.get("/metrics", headers=api.admin).text)
    # PostgreSQL undoes such a unit in its own savepoint: its batch runs once
    assert _value(s, "coord_writer_runs_again_total", writer="own", cause="isolated") == (store.name == "sqlite"), s


def test_rate_limit_refusals_are_counted(hub: object) -> None:
    from fastapi.testclient import TestClient

    from coordhub.api.app import create_app
    from coordhub.core import tokens
    from coordhub.server import SYSTEM

    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body  # type: ignore[attr-defined]
    with TestClient(create_app(hub, sweep_seconds=0, rate_limit=0.5, rate_burst=2)) as c:  # type: ignore[arg-type]
        auth = {"Authorization": f"Bearer {admin}"}
        codes = [c.get("/api/coord/locks", headers=auth).status_code for _ in range(4)]
        assert codes.count(429) >= 1, codes
        refused = c.app.state.auth.limiter.refusals  # type: ignore[attr-defined]
        assert refused == codes.count(429)


def test_separate_metrics_address_and_json_logs(tmp_path: Path) -> None:
    port = free_port()
    hub = LiveHub(tmp_path / "hub", args=("--log-format", "json", "--access-log",
                                          "--metrics-address", f"127.0.0.1:{port}")).start()
    try:
        token = hub.token(A)
        r = httpx2.get(hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {token}",
                                                               "X-Request-ID": "req-42"})
        assert r.status_code == 200
        scraped = httpx2.get(f"http://127.0.0.1:{port}/metrics")  # no token on the separate listener
        assert scraped.status_code == 200
        s = _samples(scraped.text)
        assert _value(s, "coord_http_request_seconds_count", route="/api/coord/locks", method="GET", status="2xx") == 1
        deadline = time.monotonic() + 5
        while "req-42" not in hub.log.read_text():
            assert time.monotonic() < deadline, hub.log.read_text()[-2000:]
            time.sleep(0.05)
    finally:
        hub.stop()
    lines = [line for line in hub.log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message", "request_id", "session", "route"} <= set(r)
                           for r in records)
    mine = [r for r in records if r["request_id"] == "req-42"]
    assert mine and mine[0]["session"] == A and mine[0]["route"] == "/api/coord/locks", mine
    generated = [r for r in records if r["request_id"] not in (None, "req-42")]
    assert generated and all(re.fullmatch(r"[0-9a-f]{16}", r["request_id"]) for r in generated)


def test_bad_metrics_address_and_log_format_are_usage_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    for args in (("--metrics-address", "nope"), ("--metrics-address", "127.0.0.1:99999"), ("--log-format", "xml")):
        p = subprocess.run([sys.executable, "-m", "coordhub", "serve", "--data-dir", str(tmp_path / "d"), *args],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (args, p.stdout, p.stderr)


DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def _exposed_names(text: str) -> set[str]:
    """Every series name a scrape can hold: declared families (with a histogram's series), and samples."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names |= {name, *(name + suffix for suffix in HISTOGRAM_SERIES)} if kind == "histogram" else {name}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.mark.postgres
def test_grafana_dashboard_queries_only_metrics_a_hub_exposes(tmp_path: Path, pg_url: str) -> None:
    # On PostgreSQL, so the LISTEN metrics are there too; the pruner runs by default.
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"  # Grafana asks for the data source on import
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["targets"] and p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in panels)
    hub = LiveHub(tmp_path / "hub", args=("--database-url", pg_url)).start()
    try:
        assert httpx2.get(hub.url + "/api/coord/locks", headers={"Authorization": f"Bearer {hub.token(A)}"}
                          ).status_code == 200
        scraped = httpx2.get(hub.url + "/metrics", headers={"Authorization": f"Bearer {hub.admin_token}"})
        assert scraped.status_code == 200
    finally:
        hub.stop()
    exposed = _exposed_names(scraped.text)
    used = {name for e in exprs for name in re.findall(r"\bcoord_[a-z_]+\b", e)}
    assert used - exposed == set(), f"the dashboard queries metrics no hub exposes: {sorted(used - exposed)}"
    # and every family a hub exposes has a panel (a histogram's creation time, prometheus_client's own, aside)
    families = {line.split(" ")[2] for line in scraped.text.splitlines() if line.startswith("# TYPE coord_")
                and not line.split(" ")[2].endswith("_created")}
    shown = {f for f in families if any(n == f or n.startswith(f + "_") for n in used)}
    assert shown == families, f"metrics with no panel: {sorted(families - shown)}"


def test_gc_probe_times_every_collection_by_generation() -> None:
    """The ``gc.callbacks`` probe counts each collection in its generation, with its pause, as a histogram."""

    from coordhub.api.metrics import GC_BUCKETS, GcPauses

    probe = GcPauses()
    probe.install()
    try:
        for gen in (0, 1, 2, 2):
            gc.collect(gen)
    finally:
        gc.callbacks.remove(probe)
    assert [sum(c) for c in probe.counts][1:] == [1, 2]  # young ones may also have run on their own
    assert sum(probe.counts[0]) >= 1
    assert probe.longest[2] > 0 and probe.sums[2] >= probe.longest[2] and probe.longest_cpu[2] > 0
    families = {f.name: f for f in probe.families()}
    full = [s for s in families["coord_gc_pause_seconds"].samples if s.labels.get("generation") == "2"]
    buckets = [s.value for s in full if s.name.endswith("_bucket")]
    assert len(buckets) == len(GC_BUCKETS) + 1 and buckets == sorted(buckets) and buckets[-1] == 2  # cumulative
    longest = {s.labels["generation"]: s.value for s in families["coord_gc_pause_longest_seconds"].samples}
    assert longest["2"] == probe.longest[2]
    probe.install()  # installing again forgets what was recorded and adds no second callback
    assert probe.longest == probe.longest_cpu == [0.0, 0.0, 0.0]
    gc.callbacks.remove(probe)
    assert probe not in gc.callbacks


def test_a_serving_hub_reports_its_gc_pauses(live_hub: LiveHub) -> None:
    """``coord serve`` installs the probe once start-up is settled: a scrape shows the collections since."""
    admin = {"Authorization": f"Bearer {live_hub.admin_token}"}
    headers = {"Authorization": f"Bearer {live_hub.token(A)}"}
    with httpx2.Client(base_url=live_hub.url, headers=headers, timeout=60) as c:  # a loaded machine: seconds
        # The OpenAPI document, built at its first request and kept, is tens of thousands of new objects: young
        # collections at the hub's thresholds (the routes' own state was built, and frozen, at start-up).
        assert c.get("/openapi.json").status_code == 200
        for i in range(300):
            assert c.post("/api/coord/messages", json={"subject": f"gc {i}", "body": "x" * 200}).status_code == 201
    samples = _samples(httpx2.get(live_hub.url + "/metrics", headers=admin).text)
    collections = sum(_value(samples, "coord_gc_pause_seconds_count", generation=str(g)) for g in range(3))
    assert collections >= 1
    assert _value(samples, "coord_gc_pause_longest_seconds", generation="0") > 0
    assert 1_000 <= _value(samples, "coord_gc_young_threshold") <= 20_000  # the Pacer's range


class _RouteBuilds:
    """Counts FastAPI's builds of a route's state: what ``APIRoute`` does when it is made and an inclusion does
    for each app that includes its router (a private function of FastAPI's: the test's spy, nothing else relies
    on it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import fastapi.routing

        self.count = 0
        build = fastapi.routing._populate_api_route_state

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return build(*args, **kwargs)

        monkeypatch.setattr(fastapi.routing, "_populate_api_route_state", counting)


def test_an_app_shares_the_routes_its_modules_built(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new app builds only its own few routes: the route modules' were built at import, and FastAPI does not
    build them again at the first request that walks them (0.2-0.3 s each app, issue 15; the suite makes ~1,000
    apps and ~250 hubs)."""
    from fastapi.routing import APIRoute

    from coordhub.api.app import ROUTE_MODULES

    builds = _RouteBuilds(monkeypatch)
    app = create_app(hub, sweep_seconds=0, no_auth=True)
    shared = {id(route) for module in ROUTE_MODULES for route in module.router.routes}
    own = [r for r in app.routes if isinstance(r, APIRoute) and id(r) not in shared]
    assert len(shared) > 100 and len(own) < 5 and builds.count == len(own)
    assert all(id(r) in {id(a) for a in app.routes} for m in ROUTE_MODULES for r in m.router.routes)
    with TestClient(app, base_url="http://127.0.0.1:8001") as client:
        for path in ("/api/coord/no-such-route", "/openapi.json", "/api/coord/components", "/api/coord/todos"):
            assert client.get(path).status_code in (200, 404)  # FastAPI walks every route for the 404
        assert client.post("/api/coord/messages", json={"subject": 3}, headers={"X-Coord-Session": "a"}
                           ).status_code == 422  # FastAPI's own validation answer
    assert builds.count == len(own)
    from coordhub.api.auth import caller

    for override in (lambda o: o.__setitem__(caller, lambda: None), lambda o: o.update({caller: print}),
                     lambda o: o.setdefault(caller, print), lambda o: o.__ior__({caller: print})):
        with pytest.raises(TypeError, match="shared by every app"):  # it could not reach them: refused, not ignored
            override(app.dependency_overrides)
    assert app.dependency_overrides == {}


def _count_plans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list that counts the hot routes' plans made from now on (``hotpath.plan`` calls)."""
    from coordhub.api import hotpath

    planned = [0]
    plan = hotpath.plan

    def counting_plan(method: str, route: Any) -> Any:
        planned[0] += 1
        return plan(method, route)

    monkeypatch.setattr(hotpath, "plan", counting_plan)
    return planned


def test_routes_are_planned_before_the_first_request(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """``build_routes`` does what the hot routes and Starlette otherwise do at the first request (issue 15's GC
    pauses): no hot route is planned while requests are served."""
    planned = _count_plans(monkeypatch)
    with TestClient(create_app(hub, sweep_seconds=0, no_auth=True), base_url="http://127.0.0.1:8001") as lazy:
        planned[0] = 0  # create_app plans once to check the hot routes fit
        assert lazy.get("/api/coord/no-such-route").status_code == 404
    assert planned[0] > 5  # the spy sees the lazy way
    app = create_app(hub, sweep_seconds=0, no_auth=True)
    assert build_routes(app) > 5 and app.middleware_stack is not None
    planned[0] = 0
    with TestClient(app, base_url="http://127.0.0.1:8001") as client:
        for path in ("/api/coord/components", "/api/coord/no-such-route", "/openapi.json", "/api/coord/locks"):
            assert client.get(path).status_code in (200, 404)
        assert client.post("/api/coord/messages", json={"subject": "s", "body": "b"},
                           headers={"X-Coord-Session": "a"}).status_code == 201
    assert planned[0] == 0
    assert app.state.hot_routes.served >= 2  # the hot routes served (GET locks, POST messages), planned before


def test_coord_serve_plans_its_routes_before_it_freezes_the_heap(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What the hot routes' plans make is start-up's heap, frozen with it, not young objects of the first
    request."""
    from coordhub import server
    from coordhub.api import hotpath

    planned = _count_plans(monkeypatch)
    seen: list[int] = []
    monkeypatch.setattr(server, "settle_heap", lambda: seen.append(planned[0]))
    monkeypatch.setattr(server._Server, "run", lambda self, sockets: seen.append(-1))
    cfg = server.ServerConfig(data_dir=tmp_path, port=0)
    store, hub, _ = server._open_hub(cfg)
    try:
        with socket.socket() as sock:
            server.run_app(cfg, store, hub, sock)
    finally:
        store.close()
    assert seen[1] == -1
    assert seen[0] > 2 * len(hotpath.HOT)  # create_app's check plans the hot routes once; the table plans all


def test_what_survives_a_young_collection_is_frozen() -> None:
    """``coord serve``'s GC setting: the older generations stay empty, so their collections walk nothing."""
    freezer = Freezer()
    keep = [[i] for i in range(1000)]  # alive across the collection: survivors (lists are always tracked)
    gc.callbacks.append(freezer)
    try:
        before = gc.get_freeze_count()
        gc.collect(0)
        assert gc.get_freeze_count() >= before + len(keep)
        assert gc.get_objects(1) == [] and gc.get_objects(2) == []
    finally:
        gc.callbacks.remove(freezer)
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


class _Node:
    """One half of a reference cycle (weak-referenceable, so the test can see it freed)."""

    other: Any = None


def _frozen_cycles(n: int) -> list[weakref.ref[_Node]]:
    """``n`` reference cycles alive across a young collection, then dropped: garbage only a collector can find."""
    cycles = []
    for _ in range(n):
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        cycles.append(a)
    gc.collect(0)  # the freezer runs here: the cycles, alive, are frozen
    refs = [weakref.ref(a) for a in cycles]
    del cycles, a, b
    return refs


def test_cycles_frozen_while_alive_are_collected_once_the_heap_grows_by_the_slack() -> None:
    """Garbage cycles frozen mid-request would pile up forever (a client sending bad requests could grow the hub
    without bound); past ``slack`` blocks of heap growth the freezer stops and a full collection frees them."""
    gc.collect()
    gc.freeze()  # as settle_heap does: the baseline is the heap as it is now
    freezer = Freezer(slack=8_000)
    gc.callbacks.append(freezer)
    try:
        refs = _frozen_cycles(300)  # 600 objects, a few blocks each: within the slack
        gc.collect()
        assert not freezer.due and all(r() is not None for r in refs)  # frozen: even a full collection misses them
        keep = [[i] for i in range(6_000)]  # the heap grows past the slack (a list, its items, an int: 3 blocks)
        gc.collect(0)
        assert freezer.due and len(keep) == 6_000
        assert freezer.reclaim() >= 2 * 300
        assert all(r() is None for r in refs) and not freezer.due
        assert abs(sys.getallocatedblocks() - freezer.baseline) < 1_000  # the new level to grow from
    finally:
        gc.callbacks.remove(freezer)
        gc.unfreeze()


def test_the_freezer_never_counts_the_frozen_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """``gc.get_freeze_count()`` walks every frozen object (~20 ms with a serving hub's heap, the interpreter
    stopped): the freezer, which runs after every young collection, reads the heap's size another way."""
    counted: list[int] = []
    real = gc.get_freeze_count
    monkeypatch.setattr(gc, "get_freeze_count", lambda: counted.append(1) or real())
    gc.collect()
    gc.freeze()
    freezer = Freezer(slack=10)
    gc.callbacks.append(freezer)
    try:
        keep = [[i] for i in range(1_000)]
        gc.collect(0)
        assert freezer.due and len(keep) == 1_000
        freezer.reclaim()
    finally:
        gc.callbacks.remove(freezer)
        gc.unfreeze()
    assert counted == []


def test_a_load_after_start_up_runs_without_collections_and_is_then_frozen() -> None:
    """What a load after start-up builds (``/mcp``'s SDK) is not walked by collections while it runs, is frozen
    when it ends, and its growth does not count toward the slack (it made the freezer due, which it no longer
    is); growth after it still counts."""
    gc.collect()
    gc.freeze()
    freezer = Freezer(slack=8_000)
    gc.callbacks.append(freezer)
    try:
        with absorbing():
            assert not gc.isenabled()
            loaded = [[i] for i in range(12_000)]  # past the slack
            freezer(  # a young collection's end seen meanwhile (one another thread forced, say)
                "stop", {"generation": 0, "collected": 0, "uncollectable": 0})
            assert freezer.due
        assert gc.isenabled() and not freezer.due
        assert abs(freezer.baseline - sys.getallocatedblocks()) < 1_000
        young = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
        assert not any(id(item) in young for item in loaded)  # frozen
        more = [[i] for i in range(12_000)]
        gc.collect(0)
        assert freezer.due and len(more) == len(loaded)
    finally:
        gc.callbacks.remove(freezer)
        gc.unfreeze()


def test_absorbing_turns_collections_back_on_when_the_load_fails() -> None:
    """A load that raises leaves automatic collections as they were before it, and what it built frozen."""
    freezer = Freezer(slack=8_000)
    gc.callbacks.append(freezer)
    try:
        with pytest.raises(ImportError), absorbing():
            assert not gc.isenabled()
            raise ImportError("no SDK here")
        assert gc.isenabled()
        gc.disable()  # off at entry: stays off
        with absorbing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(freezer)
        gc.unfreeze()


def test_absorbing_does_nothing_where_no_freezer_runs() -> None:
    """In a process that did not settle its heap (a test, ``coord mcp``) collections go on and nothing is frozen."""
    frozen = gc.get_freeze_count()
    with absorbing():
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_serving_hub_reclaims_its_frozen_garbage_in_its_reclaimer_thread() -> None:
    """``settle_heap`` starts the thread that runs the full collection once the freezer says it is due."""
    before = list(gc.callbacks)
    freezer = settle_heap(slack=8_000)
    try:
        # the freezer runs before the pause probe's "stop": the pauses it records include the freeze
        assert gc.callbacks.index(freezer) < gc.callbacks.index(GC_PAUSES)
        assert isinstance(gc.callbacks[0], Pacer)  # first: it times the collection alone
        assert sum(isinstance(c, Pacer) for c in gc.callbacks) == 1
        refs = _frozen_cycles(300)
        gc.collect()
        assert all(r() is not None for r in refs)
        keep = [[i] for i in range(6_000)]
        gc.collect(0)
        deadline = time.monotonic() + 30
        while freezer.reclaims == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(r() is None for r in refs) and freezer.reclaims >= 1 and len(keep) == 6_000
    finally:
        gc.callbacks[:] = before
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)


def _young_collections(pacer: Pacer, times: int) -> list[int]:
    """The first threshold after each of ``times`` young collections with ``pacer`` installed (thresholds restored)."""
    saved = gc.get_threshold()
    gc.callbacks.insert(0, pacer)
    seen = []
    try:
        gc.set_threshold(GC_THRESHOLDS[0], *saved[1:])
        keep = [[i] for i in range(3_000)]  # live young objects: the collection has something to walk
        for _ in range(times):
            gc.collect(0)
            seen.append(gc.get_threshold()[0])
        assert len(keep) == 3_000
    finally:
        gc.callbacks.remove(pacer)
        gc.set_threshold(*saved)
    return seen


def test_young_collections_longer_than_the_target_lower_the_first_threshold_down_to_its_floor() -> None:
    """Under many requests in flight a young collection walks all of them: the pacer collects sooner, so each walks
    fewer (500 agents: 12-15 ms of CPU at the fixed threshold, under 5 ms paced)."""
    pacer = Pacer(target=1e-9, low=2_000)  # every collection takes longer than a nanosecond
    assert _young_collections(pacer, 6) == [10_000, 5_000, 2_500, 2_000, 2_000, 2_000]
    assert pacer.adjustments == 4


class _CpuClock:
    """A CPU clock the test moves by hand."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def _paced(pacer: Pacer, clock: _CpuClock, took: float, generation: int = 0) -> int:
    """Run ``pacer`` around a collection of ``generation`` that took ``took`` seconds; the first threshold after."""
    clock.now = 0.0
    pacer("start", {"generation": generation})
    clock.now = took
    pacer("stop", {"generation": generation, "collected": 0, "uncollectable": 0})
    return gc.get_threshold()[0]


def test_short_young_collections_raise_it_back_and_the_band_between_leaves_it() -> None:
    """Collections under a quarter of the target let the threshold grow back by a quarter, up to its ceiling;
    between a quarter and the whole target it stays where it is, so a steady load does not make it swing; older
    generations' collections are not the pacer's."""
    clock = _CpuClock()
    pacer = Pacer(target=0.004, low=1_000, high=20_000, clock=clock)
    saved = gc.get_threshold()
    try:
        gc.set_threshold(8_000, *saved[1:])
        assert [_paced(pacer, clock, t) for t in (0.002, 0.004, 0.001, 0.0011)] == [8_000] * 4
        assert _paced(pacer, clock, 0.5, generation=1) == 8_000 and pacer.adjustments == 0
        assert [_paced(pacer, clock, 0.0009) for _ in range(6)] == [10_000, 12_500, 15_625, 19_531, 20_000, 20_000]
        assert [_paced(pacer, clock, 0.0041) for _ in range(6)] == [10_000, 5_000, 2_500, 1_250, 1_000, 1_000]
        assert pacer.adjustments == 10
        assert gc.get_threshold()[1:] == saved[1:]  # the older generations' thresholds are left as they were
    finally:
        gc.set_threshold(*saved)
