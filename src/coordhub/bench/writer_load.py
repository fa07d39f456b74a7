"""The writer's own capacity: units of work per second through the core, with no HTTP in the way (issue 15).

``coord bench`` measures the whole hub, whose request handling may saturate a
core before the writer does; this drives :meth:`~coordhub.core.hub.Hub.mutate`
directly from 64 tasks on one event loop (as the HTTP handlers would), so the
figure is the store's: its round trips, its SQL and the writer thread's
Python. Cases: ``send`` (a message to a known recipient), ``lease`` (a claim,
then its release: two units) and ``contended`` (each task a session of its own,
claiming one of 8 files and releasing it when granted: most claims are refused,
one unit each). Prints one line of JSON: units, batches, units per second,
process CPU per unit (µs; the loop's share included), the writer thread's own
CPU per unit (µs; its system calls included), the batches run again after
their first run, by cause, and (``contended``) the claims refused.

Run on a scratch database (it writes)::

    python -m coordhub.bench.writer_load --database-url postgresql://postgres@127.0.0.1:5432/scratch send
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from coordhub.core import leases, messages
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import LeaseConflict
from coordhub.store import open_store
from coordhub.store.base import Ahead

SENDER, RECIPIENT = Actor("load/sender"), Actor("load/recipient")
CONTENDED_FILES = 8  # the files the ``contended`` case's sessions claim


async def run(url: str, case: str, units: int, tasks: int = 64) -> dict[str, Any]:
    """Drive ``units`` units of ``case`` from ``tasks`` concurrent tasks; return the figures."""
    store = open_store(url)
    store.open()
    hub = Hub(store)
    await hub.start_bus()
    contenders = [Actor(f"load/contender-{k}") for k in range(tasks)] if case == "contended" else []
    for actor in (RECIPIENT, SENDER, *contenders):
        await hub.mutate(actor, lambda tx, now: None)
    names = itertools.count()
    refused = 0

    async def send() -> None:
        await hub.mutate(SENDER, lambda tx, now: messages.send(tx, SENDER, to_session=RECIPIENT.session_id,
                                                               subject="s", body="b", now=now),
                         ahead=Ahead(sessions=(RECIPIENT.session_id,),  # as the send route names them
                                     quotas=(SENDER.session_id,)))

    async def cycle() -> None:
        name = f"f{next(names)}"
        got = await hub.mutate(SENDER, lambda tx, now: leases.claim(tx, SENDER, project_key="p", resource=name,
                                                                    description=None, ttl_hours=1, now=now),
                               ahead=Ahead.of(scans=(leases.claim_scan("p", name),)))  # as the claim route names
        await hub.mutate(SENDER, lambda tx, now: leases.release(tx, SENDER, got.body["id"], now),
                         ahead=Ahead(leases=(got.body["id"],)))  # as the release route names its lease

    async def contend(actor: Actor, name: str) -> None:
        nonlocal refused
        try:
            got = await hub.mutate(actor, lambda tx, now: leases.claim(tx, actor, project_key="p", resource=name,
                                                                       description=None, ttl_hours=1, now=now),
                                   ahead=Ahead.of(scans=(leases.claim_scan("p", name),)))
        except LeaseConflict:
            refused += 1
            return
        await hub.mutate(actor, lambda tx, now: leases.release(tx, actor, got.body["id"], now),
                         ahead=Ahead(leases=(got.body["id"],)))

    # What task k runs in its iteration i, and the units an iteration runs (a refused contended claim runs one).
    step: Callable[[int, int], Awaitable[None]] = {
        "send": lambda k, i: send(), "lease": lambda k, i: cycle(),
        "contended": lambda k, i: contend(contenders[k], f"c{(k + i) % CONTENDED_FILES}")}[case]
    per = 1 if case == "send" else 2

    async def worker(k: int) -> None:
        for i in range(units // (tasks * per)):
            await step(k, i)

    writer = store._writer  # type: ignore[attr-defined]  # its batch and unit counters, its thread
    writer_clock = time.pthread_getcpuclockid(writer._thread.ident)
    batches, done, again = writer.batches, writer.units, store.writer_runs_again()
    cpu, wall, own = time.process_time(), time.perf_counter(), time.clock_gettime(writer_clock)
    await asyncio.gather(*[worker(k) for k in range(tasks)])
    own = time.clock_gettime(writer_clock) - own
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = writer.units - done
    again = {cause: n - again[cause] for cause, n in store.writer_runs_again().items()}
    store.close()
    out = {"case": case, "backend": store.name, "units": done, "batches": writer.batches - batches,
           "units_per_s": round(done / wall), "cpu_us_per_unit": round(1e6 * cpu / done),
           "writer_cpu_us_per_unit": round(1e6 * own / done), "runs_again": again}
    return out if case != "contended" else {**out, "refused": refused}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one case, print its JSON line."""
    p = argparse.ArgumentParser(prog="python -m coordhub.bench.writer_load", description=__doc__.split("\n")[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--units", type=int, default=3200)
    p.add_argument("--tasks", type=int, default=64,
                   help="units in flight; a batch holds about as many (under wrk's 64 connections the hub's hold ~31)")
    p.add_argument("case", choices=("send", "lease", "contended"))
    args = p.parse_args(argv)
    if args.tasks < 1 or args.units < args.tasks * 2:
        p.error("--tasks must be at least 1, and --units at least twice --tasks")
    print(json.dumps(asyncio.run(run(args.database_url, args.case, args.units, args.tasks))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
