"""``coord serve --workers N``: several serving processes that are still one hub (issue 15, "use both cores").

A real ``coord serve --workers 2`` on SQLite and on PostgreSQL: both workers
answer on the one port; the randomized history of ``test_history`` (leases,
fences, idempotent retries, messages, acks) checks clean across them; an
event written through one worker reaches a stream held by the other through
the commit announcement (not the poll); a per-token rate budget is one budget
across workers; a killed worker is started again with nothing acknowledged
lost; SIGTERM stops every worker and the supervisor exits 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub, free_port, scratch_database
from tests.system.test_cluster import Follower
from tests.system.test_history import Plan, assert_clean_and_meaningful, one_line, run_history

WORKERS = 2


@pytest.fixture
def workers_hub(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveHub]:
    """``coord serve --workers 2`` on the backend under test (on PostgreSQL, a database of its own: the session's
    scratch database carries other tests' broadcasts, which a stream here would count); parametrized
    indirectly with ``"writer-process"``, with ``--writer-process`` too."""
    with contextlib.ExitStack() as stack:
        args: tuple[str, ...] = ("--workers", str(WORKERS))
        env = {}
        if getattr(request, "param", None) == "writer-process":
            args += ("--writer-process",)
            env["TMPDIR"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="cw"))  # where its socket goes
        if backend == "postgres":
            args += ("--database-url", stack.enter_context(scratch_database("coordhub_workers")))
        hub = _started(LiveHub(tmp_path / "hub", args=args, env=env))
        stack.callback(hub.stop)
        yield hub



def _started(hub: LiveHub) -> LiveHub:
    """Start ``hub``, giving its spawned workers time to import on a busy machine."""
    hub.start(wait=False)
    try:
        hub.wait_ready(timeout=120)
    except BaseException:
        hub.stop(9)
        raise
    return hub


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _health_on_fresh_connection(url: str) -> dict[str, object]:
    with httpx2.Client(timeout=10) as c:  # a new connection each time: the workers race to accept it
        body: dict[str, object] = c.get(url + "/health").json()
        return body


def _workers_seen(url: str, tries: int = 400) -> set[object]:
    seen: set[object] = set()
    for _ in range(tries):
        seen.add(_health_on_fresh_connection(url)["worker"])
        if len(seen) == WORKERS:
            break
    return seen


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(entry.name))
    return out


def _serving_workers(hub: LiveHub) -> set[int]:
    """The supervisor's worker processes (spawn also starts a resource tracker, which serves nothing)."""
    assert hub.proc is not None
    return {p for p in _children(hub.proc.pid)
            if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()}


def _sample(metrics: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, as Prometheus text prints them) in ``metrics``."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name}")


def _writer_pid(hub: LiveHub) -> int:
    """The writer process's pid, as the workers' links report it once both are connected."""
    deadline = time.monotonic() + 60
    while True:
        links = [h.get("writer_process") for h in (_health_on_fresh_connection(hub.url) for _ in range(20))]
        pids = {link["pid"] for link in links if isinstance(link, dict) and link["connected"]}
        if len(pids) == 1 and all(isinstance(link, dict) and link["connected"] for link in links):
            return int(pids.pop())
        assert time.monotonic() < deadline, links
        time.sleep(0.2)


def _inbox(hub: LiveHub, session: str) -> set[str]:
    """The ids of every message ``session`` holds (fewer than a page of 500: the tests send fewer)."""
    r = httpx2.get(hub.url + "/api/coord/messages", headers=_auth(hub.token(session)),
                   params={"limit": 500, "unread_only": "false"})
    assert r.status_code == 200, r.text
    assert len(r.json()) < 500
    return {m["id"] for m in r.json()}


@pytest.mark.parametrize("workers_hub", ["own-writers", "writer-process"], indirect=True)
def test_both_workers_answer_and_a_history_across_them_is_correct(workers_hub: LiveHub, tmp_path: Path) -> None:
    assert _workers_seen(workers_hub.url) == {1, 2}
    # ~1,100 operations on a quiet machine; the floor only says the run proved something (265 were seen in a CI
    # run beside the three-hub cluster test on the other core)
    counts = assert_clean_and_meaningful(run_history(workers_hub, tmp_path, Plan(workers=6, seconds=4.0, seed=7)),
                                         minimum_ops=150)
    print(one_line(counts))
    links = {h["worker"]: h.get("writer_process") for h in (_health_on_fresh_connection(workers_hub.url)
                                                             for _ in range(40))}
    if "--writer-process" in workers_hub.args:  # the history's claims, releases and sends went through it
        assert all(link is not None and link["connected"] and link["calls"] > 0 for link in links.values()), links
        [pid] = {link["pid"] for link in links.values()}  # one writer process, one of the supervisor's children
        assert pid in _serving_workers(workers_hub)
        metrics = httpx2.get(workers_hub.url + "/metrics", headers=_auth(workers_hub.admin_token)).text
        assert _sample(metrics, 'coord_writer_batch_units_count{writer="process"}') > 0  # its batches, reported
    else:
        assert set(links.values()) == {None}, links


@pytest.mark.parametrize("workers_hub", ["own-writers", "writer-process"], indirect=True)
def test_an_event_written_through_one_worker_reaches_a_stream_on_the_other(workers_hub: LiveHub) -> None:
    a, b = f"W{uuid.uuid4().hex[:6]}-A/main", f"W{uuid.uuid4().hex[:6]}-B/main"
    token_a, token_b = workers_hub.token(a), workers_hub.token(b)
    follower = Follower(workers_hub.url, token_b)
    try:
        assert follower.connected.wait(20)
        sent = 0
        for i in range(40):  # fresh connections: some land on the worker that does not hold the stream
            with httpx2.Client(timeout=10) as c:
                r = c.post(workers_hub.url + "/api/coord/messages", headers=_auth(token_a),
                           json={"to_session": b, "subject": f"m{i}"})
                assert r.status_code == 201, r.text
                sent += 1
        deadline = time.monotonic() + 20
        while len(follower.ids) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        follower.stop()
    assert len(follower.ids) == sent and follower.ids == sorted(set(follower.ids)), follower.ids
    announced = [_health_on_fresh_connection(workers_hub.url) for _ in range(30)]
    # the workers learn of each other's commits by announcement: without it they would poll once a second
    assert any(h["listen"] and h["listen"]["announcements"] > 0 for h in announced), announced  # type: ignore[index]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_one_rate_budget_across_workers(backend: str, tmp_path: Path) -> None:
    hub = _started(LiveHub(tmp_path / "hub", args=("--workers", str(WORKERS), "--rate-limit", "2",
                                                    "--rate-burst", "20")))
    # LiveHub passes --rate-limit 0 first; the later flags win
    try:
        token = hub.token(f"R{uuid.uuid4().hex[:6]}/main")
        ok = 0
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            with httpx2.Client(timeout=10) as c:  # fresh connections spread the requests over both workers
                if c.get(hub.url + "/api/coord/whoami", headers=_auth(token)).status_code == 200:
                    ok += 1
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        hub.stop()
    # one budget: the burst plus the refill, with slack for the quarter-second sharing interval; two separate
    # budgets would let about twice as many through
    budget = 20 + 2 * elapsed
    assert ok <= budget * 1.5, (ok, budget)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_streams_per_token_holds_across_workers(backend: str, tmp_path: Path) -> None:
    """Eight long-polls of one session, each on a fresh connection (the workers race to accept them), with
    ``--streams-per-token 2``: two are held and six refused with 429, however they fell on the two workers (each
    worker counted its own before: up to four were held); once the two end, their slots are free again."""
    hub = _started(LiveHub(tmp_path / "hub", args=("--workers", str(WORKERS), "--streams-per-token", "2")))
    try:
        assert _workers_seen(hub.url) == set(range(1, WORKERS + 1))
        token = hub.token(f"S{uuid.uuid4().hex[:6]}/main")
        answers: list[int] = []

        def wait(seconds: float) -> None:
            with httpx2.Client(timeout=30) as c:
                answers.append(c.get(hub.url + "/api/coord/messages/wait", params={"timeout": seconds},
                                     headers=_auth(token)).status_code)

        polls = [threading.Thread(target=wait, args=(6,)) for _ in range(8)]
        for poll in polls:
            poll.start()
            time.sleep(0.05)
        deadline = time.monotonic() + 4
        while len(answers) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answers == [429] * 6, answers  # the two held ones are still waiting
        for poll in polls:
            poll.join(30)
        assert sorted(answers) == [200, 200] + [429] * 6, answers
        answers.clear()
        again = [threading.Thread(target=wait, args=(1,)) for _ in range(2)]  # slots given back are free in both
        for poll in again:
            poll.start()
        for poll in again:
            poll.join(30)
        assert answers == [200, 200], answers
    finally:
        hub.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_killed_worker_is_started_again_and_nothing_acknowledged_is_lost(workers_hub: LiveHub) -> None:
    sender, to = f"K{uuid.uuid4().hex[:6]}/main", f"K{uuid.uuid4().hex[:6]}/peer"
    token = workers_hub.token(sender)
    before = _serving_workers(workers_hub)
    assert len(before) == WORKERS
    acked: list[str] = []
    stop = threading.Event()

    def send() -> None:
        i = 0
        while not stop.is_set():
            try:
                with httpx2.Client(timeout=5) as c:
                    r = c.post(workers_hub.url + "/api/coord/messages", headers=_auth(token),
                               json={"to_session": to, "subject": f"k{i}"})
                if r.status_code == 201:
                    acked.append(r.json()["id"])
            except httpx2.HTTPError:  # its worker was killed mid-request: outcome unknown, not acknowledged
                pass
            i += 1

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    time.sleep(1.0)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _serving_workers(workers_hub)
        if len(now) == WORKERS and victim not in now:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    thread.join(10)
    assert len(_serving_workers(workers_hub)) == WORKERS and victim not in _serving_workers(workers_hub)
    assert _workers_seen(workers_hub.url) == {1, 2}
    stored = _inbox(workers_hub, to)
    assert acked and set(acked) <= stored, len(set(acked) - stored)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"], indirect=True)
@pytest.mark.parametrize("workers_hub", ["writer-process"], indirect=True)
def test_a_killed_writer_process_is_started_again_and_writes_go_on(workers_hub: LiveHub) -> None:
    """kill -9 of the writer process: the workers make the writes themselves meanwhile, the supervisor starts it
    again, both workers link to the new one, and every acknowledged send is stored."""
    sender, to = f"X{uuid.uuid4().hex[:6]}/main", f"X{uuid.uuid4().hex[:6]}/peer"
    token = workers_hub.token(sender)
    before = _serving_workers(workers_hub)
    assert len(before) == WORKERS + 1
    writer = _writer_pid(workers_hub)
    assert writer in before
    acked: list[str] = []
    failed: list[int] = []
    stop = threading.Event()

    def send() -> None:
        i = 0
        with httpx2.Client(timeout=10) as c:
            while not stop.is_set():
                r = c.post(workers_hub.url + "/api/coord/messages", headers=_auth(token),
                           json={"to_session": to, "subject": f"x{i}"})
                if r.status_code == 201:
                    acked.append(r.json()["id"])
                else:  # only the writes under way when it died may fail (503, outcome unknown)
                    failed.append(r.status_code)
                i += 1
                time.sleep(0.02)  # a few hundred in all: one page of the inbox holds them

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    time.sleep(1.0)
    sent_before = len(acked)
    os.kill(writer, signal.SIGKILL)
    deadline = time.monotonic() + 60
    links: dict[object, object] = {}
    while time.monotonic() < deadline:
        links = {h["worker"]: h.get("writer_process") for h in (_health_on_fresh_connection(workers_hub.url)
                                                                 for _ in range(20))}
        if len(links) == WORKERS and all(isinstance(v, dict) and v["connected"] and v["connections"] >= 2
                                         for v in links.values()):
            break
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    thread.join(20)
    assert all(isinstance(v, dict) and v["connected"] and v["connections"] >= 2 for v in links.values()), links
    now = _serving_workers(workers_hub)
    assert len(now) == WORKERS + 1 and writer not in now and before - {writer} <= now
    assert _writer_pid(workers_hub) in now - before  # the links name the new one
    assert set(failed) <= {503} and len(failed) <= 2, failed  # one client: at most its write under way
    assert sent_before > 0 and len(acked) > sent_before
    assert set(acked) <= _inbox(workers_hub, to)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sigterm_stops_every_worker_and_exits_zero(workers_hub: LiveHub) -> None:
    workers = _serving_workers(workers_hub)
    assert len(workers) == WORKERS
    assert workers_hub.stop(signal.SIGTERM) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_workers_flag_is_checked(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "coordhub", "serve", "--workers", "0", "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--workers" in p.stderr


def test_a_writer_socket_path_too_long_stops_the_start(tmp_path: Path) -> None:
    """A ``TMPDIR`` under which the writer process's socket could not be listened on (over 107 bytes) is refused
    at the start, before anything serves, instead of leaving every write to the workers for ever."""
    deep = tmp_path / ("t" * (110 - len(str(tmp_path))))
    deep.mkdir()
    p = subprocess.run([sys.executable, "-m", "coordhub", "serve", "--writer-process", "--port", str(free_port()),
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "TMPDIR": str(deep)})
    assert p.returncode == 1, (p.returncode, p.stderr)  # EXIT_REFUSED
    assert "too long for a Unix socket" in p.stderr and "TMPDIR" in p.stderr
    assert list(deep.iterdir()) == []


def test_the_socket_path_check_stops_at_the_kernels_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The longest ``TMPDIR`` accepted gives a socket path of 107 bytes, which the kernel binds; one byte more is
    refused (``sun_path`` holds 108 with its NUL)."""
    from coordhub.server import StartupError
    from coordhub.workers import check_link_dir

    with tempfile.TemporaryDirectory(prefix="cw", dir="/tmp") as short:
        for length, accepted in ((73, True), (74, False)):
            base = Path(short) / ("d" * (length - len(short) - 1))
            base.mkdir()
            assert len(str(base)) == length
            monkeypatch.setattr(tempfile, "tempdir", str(base))
            if not accepted:
                with pytest.raises(StartupError, match="too long for a Unix socket"):
                    check_link_dir()
                continue
            check_link_dir()
            made = Path(tempfile.mkdtemp(prefix="coord-writer-"))  # as the supervisor makes it
            path = made / "writer.sock"
            assert len(os.fsencode(path)) == 107
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(str(path))  # the longest path it accepts is one the kernel takes


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("workers_hub", ["own-writers", "writer-process"], indirect=True)
def test_workers_do_not_outlive_a_killed_supervisor(workers_hub: LiveHub) -> None:
    """kill -9 of the supervisor stops its workers (and the writer process, which removes its socket's
    directory): no orphan keeps the port and the file (a restart could not bind)."""
    workers = _serving_workers(workers_hub)
    writer_process = "--writer-process" in workers_hub.args
    assert len(workers) == WORKERS + writer_process
    if writer_process:
        _writer_pid(workers_hub)  # linked: its socket exists
        assert [p.name for p in Path(workers_hub.env["TMPDIR"]).iterdir()][0].startswith("coord-writer-")
    assert workers_hub.proc is not None
    os.kill(workers_hub.proc.pid, signal.SIGKILL)
    workers_hub.proc.wait(30)

    def alive(pid: int) -> bool:
        try:
            return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False

    deadline = time.monotonic() + 60  # a bound on waiting, not a timing claim: they go at once or never
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for pid in left:  # do not leave them serving after the test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their supervisor"
    if writer_process:
        assert list(Path(workers_hub.env["TMPDIR"]).iterdir()) == []


def _memory(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of ``pid`` in kB (/proc/PID/smaps_rollup)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0])


@pytest.mark.parametrize("workers_hub", ["own-writers", "writer-process"], indirect=True)
def test_serving_processes_are_forked_from_the_supervisor_and_share_its_pages(workers_hub: LiveHub) -> None:
    """The supervisor imports what a serving process runs and forks them (nothing of its store or threads left to
    inherit), so the interpreter, the framework and the hub's modules are one copy: measured idle, three spawned
    processes held 161 MiB between them (proportional set sizes) and forked ones 108 MiB."""
    assert workers_hub.proc is not None
    supervisor = workers_hub.proc.pid
    children = _serving_workers(workers_hub)
    assert len(children) == WORKERS + (1 if "--writer-process" in workers_hub.args else 0)
    argv = Path(f"/proc/{supervisor}/cmdline").read_bytes()
    for pid in children:
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == argv  # forked: the supervisor's own command line
    sizes = [_memory(p) for p in (supervisor, *children)]
    rss, pss = sum(r for r, _ in sizes), sum(p for _, p in sizes)
    assert pss < 0.7 * rss, (pss, rss)  # spawned, about 0.78: each process its own copy of nearly everything


def test_a_supervisor_with_another_thread_spawns_its_serving_processes() -> None:
    """Forking copies a thread's locks but not the thread: with any other thread running, the serving processes are
    spawned (and nothing is imported or frozen for them)."""
    import gc
    import multiprocessing

    from coordhub import workers

    hold = threading.Event()
    other = threading.Thread(target=hold.wait, daemon=True)
    other.start()
    try:
        assert workers.context().get_start_method() == "spawn"
    finally:
        hold.set()
        other.join()
    frozen = gc.get_freeze_count()
    try:
        if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
            assert workers.context().get_start_method() == "fork"
            assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_a_serving_process_removes_its_gpg_homes_when_it_stops(tmp_path: Path) -> None:
    """A forked serving process ends by ``os._exit`` (multiprocessing), which runs no ``atexit`` handler: the gpg
    homes it made to check signatures (:mod:`coordhub.openpgp`, removed at exit) stayed in the temporary
    directory after each stop or restart, as a spawned one's did not."""
    from coordhub.core.signingkeys import proof_statement
    from tests.conversations.conftest import make_key

    key = make_key(tmp_path / "gpg", "Career Agent")
    scratch = tmp_path / "t"
    scratch.mkdir()
    hub = _started(LiveHub(tmp_path / "hub", args=("--workers", str(WORKERS)), env={"TMPDIR": str(scratch)}))
    try:
        headers = _auth(hub.token("m1/claude-main"))
        hub_id = httpx2.get(hub.url + "/health").json()["hub_id"]
        proof = key.sign(proof_statement(hub_id, "m1/claude-main", key.fingerprint))
        r = httpx2.post(hub.url + "/api/coord/conversations/keys", json={"armored": key.armored, "proof": proof},
                        headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        assert [p.name for p in scratch.iterdir() if p.name.startswith("coordhub-gpg-")]  # a worker checked it
    finally:
        code = hub.stop(signal.SIGTERM)
        subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"], capture_output=True)
    assert code == 0
    assert [p.name for p in scratch.iterdir()] == []


_SLOW_FORK = ("import os, sys, time; os.register_at_fork(after_in_child=lambda: time.sleep(6)); "
              "sys.argv[0] = 'coord'; from coordhub.cli.entry import main; main()")


def test_a_worker_signalled_before_its_own_handlers_stops(tmp_path: Path) -> None:
    """A forked child runs the supervisor's signal handler until it sets its own: a SIGTERM in that moment (the
    supervisor stopping just after it started or restarted one) only set the child's copy of the supervisor's stop
    flag, and the child went on to serve until it was killed ``STOP_SECONDS`` later. (Each child here takes six
    seconds over its start, an at-fork hook, so that the moment is wide enough to hit.)"""
    port = free_port()
    log = tmp_path / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _SLOW_FORK, "serve", "--port", str(port), "--data-dir",
                                 str(tmp_path / "hub"), "--workers", str(WORKERS)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < WORKERS and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(_children(proc.pid)) == WORKERS, log.read_text()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the supervisor SIGTERMs its workers, still in their at-fork sleep
        code = proc.wait(60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()
    assert "did not stop" not in log.read_text() and took < 5, (took, log.read_text())
