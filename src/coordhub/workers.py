"""``coord serve --workers N``: N hub processes on one listening socket and one database, under a supervisor.

One Python process runs its event loop and its writer under one GIL, so a
single hub uses about one core however many the machine has (issue 15). With
``--workers N`` the ``coord serve`` process opens and migrates the database,
writes the admin token, binds the socket, and then only supervises: it starts
N serving processes (each with nothing of the supervisor's store or
threads, see below), each of which opens the store itself and accepts connections on the
shared socket. What keeps N processes one hub:

* **Writes** stay serialised across processes, with ids in commit order:
  PostgreSQL's writers take the advisory lock (as several hubs do), SQLite's
  take an ``flock`` before ``BEGIN IMMEDIATE``
  (:class:`coordhub.store.localannounce.WriterLock`). Each process still
  group-commits its own units (under ``--writer-process`` the hot and routine
  ones go to the writer process's batches instead).
* **Events** written through one worker reach subscribers on the others at
  once: NOTIFY on PostgreSQL, Unix datagrams on SQLite
  (:mod:`coordhub.store.localannounce`); every stream reads the one log.
* **Stream slots** (``streams_per_token``) are one count per session across
  workers (:class:`coordhub.api.streams.SharedSlots`).
* **Rate limits** are one budget per token across workers (the shared
  buckets of each backend).
* **Halts and revocations** are read in each write's own transaction, and a
  revocation's event clears every worker's token cache.

The serving processes are forked from the supervisor when that is safe
(Linux, and no other thread in the supervisor: :func:`context`), after it
has imported what a serving process runs and frozen its heap
(:func:`preload`): the interpreter, the framework and the hub's own modules
are then pages the processes share rather than one copy each. Measured with
``coord bench push --workers 2`` (1,000 streams): three spawned processes
held 229 MiB resident between them; forked, see docs/benchmarks.md. A
serving process forked this way starts from nothing the supervisor made
but the listening socket: the supervisor has closed its store, and runs no
thread and no event loop. Where fork is not safe the processes are
spawned, as before.

A worker that dies is started again (after a pause that grows while workers
keep dying at start); SIGINT/SIGTERM to the supervisor stop every worker
gracefully and it exits 0. A supervisor killed outright (``kill -9``, the
OOM killer) takes its workers with it (Linux's parent-death signal): orphans
would go on serving the port and the file, and a restarted hub could not bind.
``--metrics-address`` is served by worker 1 only:
its figures are that process's.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from coordhub.writer_process import SOCKET_NAME
from coordhub.writer_process import STOP_SECONDS as LINK_STOP_SECONDS

log = logging.getLogger("coordhub")

STOP_SECONDS = 10.0  # a worker still running this long after SIGTERM is killed
RESTART_FIRST = 0.5  # seconds before restarting a worker that died; doubles while they die young
RESTART_MAX = 10.0
YOUNG_SECONDS = 5.0  # a worker that dies sooner than this after its start died "young"
_PR_SET_PDEATHSIG = 1  # prctl(2)
_SUN_PATH = 108  # bytes in a Unix socket address's path on Linux, unix(7)
_LINK_PREFIX = "coord-writer-"


def check_link_dir() -> None:
    """Raise ``StartupError`` unless the writer process's socket can be made where :func:`supervise` puts it.

    That is a new directory under ``TMPDIR`` (``tempfile.mkdtemp``, whose
    names have a fixed length); a path longer than a Unix socket address
    holds (``sun_path``: 108 bytes on Linux, its terminating NUL included,
    unix(7)) could never be listened on, and the serving processes would
    write locally for ever.
    """
    from coordhub.server import StartupError

    base = Path(tempfile.gettempdir())
    longest = base / f"{_LINK_PREFIX}{'x' * 8}" / SOCKET_NAME  # mkdtemp's names: the prefix and 8 characters
    if len(os.fsencode(longest)) > _SUN_PATH - 1:
        raise StartupError(f"the writer process's socket under {base} would be over {_SUN_PATH - 1} bytes, too "
                           "long for a Unix socket: point TMPDIR at a shorter directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise StartupError(f"cannot make the writer process's socket under {base}: not writable (set TMPDIR)")


def supervise(cfg: Any, sock: socket.socket) -> None:
    """Run ``cfg.workers`` serving processes on ``sock`` until SIGINT/SIGTERM; restart any that die.

    With ``cfg.writer_process`` also the writer process (number 0,
    :mod:`coordhub.writer_process`), on a socket in a directory of its own
    (0700, removed at the end); the serving processes connect to it. It is
    started first and stopped last, so that the serving processes' last
    requests still find it.
    """
    ctx = context()
    stop = threading.Event()
    me = os.getpid()

    def on_signal(signum: int, _frame: Any) -> None:
        if os.getpid() != me:  # a forked child, before it set handlers of its own: it stops, as a spawned one would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[int, BaseProcess] = {}
    started: dict[int, float] = {}
    pause = RESTART_FIRST
    link_dir = Path(tempfile.mkdtemp(prefix=_LINK_PREFIX)) if cfg.writer_process else None  # mode 0700
    link = None if link_dir is None else link_dir / SOCKET_NAME
    try:
        if link is not None:
            procs[0], started[0] = _start(ctx, cfg, sock, 0, link), time.monotonic()
        for n in range(1, cfg.workers + 1):
            procs[n], started[n] = _start(ctx, cfg, sock, n, link), time.monotonic()
        while not stop.wait(0.2):
            for n, proc in list(procs.items()):
                if proc.is_alive():
                    continue
                young = time.monotonic() - started[n] < YOUNG_SECONDS
                log.warning("worker %d (pid %s) exited with %s; starting it again in %.1f s", n, proc.pid,
                            proc.exitcode, pause)
                if stop.wait(pause):
                    break
                pause = min(RESTART_MAX, pause * 2) if young else RESTART_FIRST
                procs[n], started[n] = _start(ctx, cfg, sock, n, link), time.monotonic()
    finally:
        writer = procs.pop(0, None)
        _stop_all(procs, STOP_SECONDS)
        if writer is not None:  # it may still be answering a batch its links took: given their own time, and more
            _stop_all({0: writer}, LINK_STOP_SECONDS + STOP_SECONDS)
        if link_dir is not None:
            shutil.rmtree(link_dir, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)


def context() -> Any:
    """The ``multiprocessing`` context the serving processes start in: ``fork`` from a :func:`preload`-ed
    supervisor when it is safe, else ``spawn``.

    Fork is safe here when the platform has it and this process runs no other
    thread (a fork copies a thread's locks but not the thread: a store's
    writer, a pool's worker or the GC reclaimer forked mid-work would leave
    the child with locks nobody releases; Python 3.12 warns of it too).
    """
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() != 1:
        log.info("serving processes are spawned: %s", "this platform cannot fork" if threading.active_count() == 1
                 else f"{threading.active_count() - 1} other threads run in the supervisor")
        return multiprocessing.get_context("spawn")
    preload()
    return multiprocessing.get_context("fork")


def preload() -> None:
    """Import what a serving process runs and freeze the heap, so that forked serving processes share those pages.

    Frozen objects are left out of the collector's passes (``gc.freeze``): a
    collection in a child would otherwise write to every imported object's
    header and copy its page.
    """
    import gc

    import uvicorn.protocols.http.auto  # noqa: F401 - imported for the pages the forked processes share
    import uvicorn.protocols.http.httptools_impl  # noqa: F401

    import coordhub.api.app  # noqa: F401
    import coordhub.api.connections  # noqa: F401

    gc.collect()
    gc.freeze()


def _start(ctx: Any, cfg: Any, sock: socket.socket, n: int, link: Path | None) -> BaseProcess:
    if n == 0:
        from coordhub.writer_process import writer_main

        assert link is not None
        proc: BaseProcess = ctx.Process(target=_child, args=(writer_main, cfg, link, os.getpid()),
                                        name="coord-writer", daemon=False)
    else:
        proc = ctx.Process(target=_child, args=(_worker_main, cfg, sock, n, os.getpid(), link),
                           name=f"coord-worker-{n}", daemon=False)
    proc.start()
    return proc


def _child(main: Callable[..., None], *args: Any) -> None:
    """Run ``main(*args)`` in a started process, then its ``atexit`` handlers, as a spawned process's interpreter
    would at its exit.

    ``multiprocessing`` ends a forked child with ``os._exit``, which runs none:
    the gpg home directories :mod:`coordhub.openpgp` makes (removed at exit)
    were left in the temporary directory by every serving process that
    checked a signature, at each stop and restart.
    """
    try:
        main(*args)
    finally:
        atexit._run_exitfuncs()  # runs each once and clears them: a spawned interpreter's exit finds none left


def _stop_all(procs: dict[int, BaseProcess], seconds: float) -> None:
    """SIGTERM each process, then kill those still running ``seconds`` later."""
    for proc in procs.values():
        if proc.is_alive() and proc.pid is not None:
            proc.terminate()  # SIGTERM: uvicorn finishes its requests, the store closes
    deadline = time.monotonic() + seconds
    for proc in procs.values():
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            log.warning("worker %s did not stop in %.0f s; killing it", proc.name, seconds)
            proc.kill()
            proc.join()


def die_with(supervisor: int) -> None:
    """Have the kernel SIGTERM this process when ``supervisor`` (its parent) dies, however it dies (Linux).

    Elsewhere (no ``prctl``) nothing is set: the supervisor's own shutdown
    still stops its workers, only an outright kill leaves them.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("cannot ask to be stopped with the supervisor: %s", os.strerror(ctypes.get_errno()))
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:  # it died before the request was made: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(cfg: Any, sock: socket.socket, n: int, supervisor: int, link: Path | None) -> None:
    """One serving process: its own store, hub and app on the shared socket (runs in the child).

    ``link``: the writer process's socket, where its calls go (``Hub.remote``), or None.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides: it sends SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # forked: not the supervisor's handler, until uvicorn sets its own
    die_with(supervisor)
    from coordhub import jsonlog
    from coordhub.server import StartupError, _open_hub, run_app

    jsonlog.configure(cfg.log_level, cfg.log_format)
    try:
        store, hub, _ = _open_hub(cfg, worker=n)
    except StartupError as exc:
        log.error("worker %d cannot start: %s", n, exc)
        raise SystemExit(1) from None
    if link is not None:
        from coordhub.writer_process import WriterLink

        hub.remote = WriterLink(link)
    try:
        run_app(cfg, store, hub, sock, worker=n)
    finally:
        store.close()
