"""Round trips per unit of work between the hub's writer and PostgreSQL, counted on the wire (issue 15).

Runs a hub (the core's :class:`~coordhub.core.hub.Hub` with its event bus, as
``coord serve`` does) on a PostgreSQL database under ``strace -f``, drives
message sends to a known recipient, lease claims and lease releases, each
alone (one unit per batch) and in batches of ``--batch`` units, and claims
refused (a file another session holds) in such batches, and counts the
writer thread's round trips: a ``sendto`` followed by a ``recvfrom`` on the
same descriptor is one; and its sends to the database (``sendto`` system calls
on a descriptor it receives answers on: each is the kernel's work, made with
the interpreter lock held). Every batch is counted whole (``BEGIN`` … ``COMMIT``,
and any read of the new events for the event bus after it), and divided by its units. To make a batch of exactly
``--batch`` units, a unit that runs no SQL holds the writer while they queue;
its own batch is left out of the count (each commit is marked on the writer
thread by a ``stat`` of a path that does not exist, which splits the trace
into batches). Each case starts after a few uncounted units, so that the
count is the steady state's.

Run (needs Debian's ``strace``; use a scratch database, the run writes to it)::

    python -m coordhub.bench.round_trips --database-url postgresql://postgres@127.0.0.1:5432/scratch

It prints one JSON object: for each case, round trips and sends per unit and
the units and batches counted. ``--inner`` is the traced half (not for direct use).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from coordhub.core import leases, messages, tokens
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import LeaseConflict
from coordhub.store import open_store
from coordhub.store.base import Ahead

MARK = "/coordhub-round-trips-commit-mark"  # stat()ed on the writer thread after every commit
RECIPIENT = Actor("rt/recipient")
HOLDER, HELD = Actor("rt/holder"), "src/held.py"  # the file every refused claim asks for, and who holds it
_WARM_UP = 6  # units of each kind run before counting
_CALL = re.compile(r"^(sendto|recvfrom)\((\d+),")


async def _drive(url: str, batch: int, rounds: int) -> dict[str, Any]:
    """The traced half: run every case, return what the trace must be split by (writer tid, batches, cases)."""
    store = open_store(url)
    store.open()
    hub = Hub(store)
    await hub.start_bus()
    writer = store._writer  # type: ignore[attr-defined]  # the writer's counters and hooks, for marking batches
    feed = writer.after_commit

    def after_commit(tx: Any) -> None:
        if feed is not None:
            feed(tx)
        try:
            os.stat(MARK)
        except OSError:
            pass

    writer.after_commit = after_commit
    sizes: list[int] = []  # units of each committed batch, in order (as the marks)
    writer.on_batch = lambda units, seconds: sizes.append(units)
    tid = next(t.native_id for t in threading.enumerate() if t.name.endswith("-writer"))
    # The sender acts by a token, as a request does: each of its writes checks its token's epoch.
    minted = await store.write(lambda tx: tokens.mint(tx, "rt/sender", hub.clock.now(), purpose="round trips"))
    sender = await store.read(lambda tx: tokens.authenticate(tx, minted))
    assert sender is not None and sender.token_epoch is not None
    for actor in (RECIPIENT, sender):  # both known to the hub before anything is counted
        await hub.mutate(actor, lambda tx, now: None)
    await hub.mutate(HOLDER, lambda tx, now: leases.claim(tx, HOLDER, project_key="rt", resource=HELD,
                                                          description="held for the refusals", ttl_hours=1, now=now))
    held: list[str] = []
    files = itertools.count()

    def send(tx: Any, now: float) -> Any:
        return messages.send(tx, sender, to_session=RECIPIENT.session_id, subject="s", body="b", now=now)

    def claim(tx: Any, now: float) -> Any:  # stands for a claim of a file of its own (see one)
        raise AssertionError("run by one() with its resource")

    def release(tx: Any, now: float) -> Any:  # stands for the release of the lease claimed last (see one)
        raise AssertionError("run by one() with the lease's id")

    def refused(tx: Any, now: float) -> Any:  # a claim of the file HOLDER holds: refused with its description
        return leases.claim(tx, sender, project_key="rt", resource=HELD, description=None, ttl_hours=1, now=now)

    async def one(op: Callable[[Any, float], Any]) -> None:
        # Each names the rows it looks up, as its route does (the recipient, the lease to release, the leases a
        # claim could collide with).
        if op is release:
            lease_id = held.pop()
            await hub.mutate(sender, lambda tx, now: leases.release(tx, sender, lease_id, now),
                             ahead=Ahead(leases=(lease_id,)))
        elif op is claim:
            resource = f"src/f{next(files)}.py"
            out = await hub.mutate(sender, lambda tx, now: leases.claim(
                tx, sender, project_key="rt", resource=resource, description=None, ttl_hours=1, now=now),
                ahead=Ahead.of(scans=(leases.claim_scan("rt", resource),)))
            held.append(out.body["id"])
        elif op is refused:
            try:
                await hub.mutate(sender, op, ahead=Ahead.of(scans=(leases.claim_scan("rt", HELD),)))
            except LeaseConflict as exc:
                assert "held for the refusals" in str(exc), exc
            else:
                raise AssertionError("a claim of a held file was granted")
        else:
            await hub.mutate(sender, op, ahead=Ahead(sessions=(RECIPIENT.session_id,), quotas=(sender.session_id,)))

    cases: list[dict[str, Any]] = []
    blockers: list[int] = []

    async def batched(op: Callable[[Any, float], Any]) -> None:
        """Run ``batch`` units of ``op`` in one batch: queued while a unit that runs no SQL holds the writer."""
        gate, running = threading.Event(), threading.Event()
        blockers.append(writer.batches)

        def block(tx: Any) -> None:
            running.set()
            gate.wait()

        blocked = writer.submit_async(block)
        await asyncio.to_thread(running.wait)
        queued = [asyncio.ensure_future(one(op)) for _ in range(batch)]
        # Every unit in the writer's queue before the gate opens. A fixed pause (50 ms) was too short on a loaded
        # machine: a refused claim queued late ran in a batch of its own, rolled back uncommitted, so its round
        # trips were counted with the next committed batch (CI saw 2.9 a unit for 20 refused claims).
        deadline = time.monotonic() + 60
        while writer._queue.qsize() < batch and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        gate.set()
        await blocked
        await asyncio.gather(*queued)

    for name, op in (("send", send), ("claim", claim), ("release", release), ("refused claim", refused)):
        if op is refused:  # a unit alone in its batch owns it: refused, it rolls the batch back, uncommitted
            await batched(op)  # not counted: the first uses of each statement (warm caches)
        else:
            for _ in range(_WARM_UP):  # not counted, as above
                await one(op)
            first = writer.batches
            for _ in range(batch * rounds):
                await one(op)
            cases.append({"case": f"{name} alone", "batches": [first, writer.batches]})
        first = writer.batches
        for _ in range(rounds):
            await batched(op)
        cases.append({"case": f"{name} in a batch of {batch}", "batches": [first, writer.batches]})
    store.close()
    return {"tid": tid, "cases": cases, "blockers": blockers, "sizes": sizes}


def _batches(trace: str, tid: int) -> list[tuple[int, int]]:
    """``(round trips, sends)`` of each committed batch of the writer thread, in order (the trace split at each
    mark).

    A round trip is a ``sendto`` on a descriptor followed by a ``recvfrom``
    on that descriptor that received data (one that found nothing yet,
    ``EAGAIN``, is psycopg polling, not an answer). Sends are the ``sendto``
    calls on descriptors the thread receives answers on (the database's; an
    event loop's wake-up socket is only written). Calls strace split in two
    (``<unfinished ...>`` … ``<... resumed>``) are joined.
    """
    out: list[tuple[int, int]] = []
    trips = 0
    sends: dict[str, int] = {}  # descriptor → sendto calls in this batch
    answering: set[str] = set()  # descriptors the thread received data on
    sent: dict[str, bool] = {}  # descriptor → sent since its last answer
    pending = ""  # the start of a call of this thread that strace split
    for line in trace.splitlines():
        tid_text, _, rest = line.partition(" ")
        if not tid_text.isdigit() or int(tid_text) != tid:
            continue
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending = rest
            continue
        if rest.startswith("<..."):
            rest, pending = pending + rest.split("resumed>", 1)[-1], ""
        if MARK in rest:
            out.append((trips, sum(n for fd, n in sends.items() if fd in answering)))
            trips, sends = 0, {}
            continue
        call = _CALL.match(rest)
        if call is None:
            continue
        name, fd, result = call.group(1), call.group(2), rest.rsplit("= ", 1)[-1]
        if name == "sendto":
            sent[fd] = True
            sends[fd] = sends.get(fd, 0) + 1
        elif not result.startswith("-1"):
            answering.add(fd)
            if sent.get(fd):
                trips += 1
                sent[fd] = False
    return out


def _per_unit(inner: dict[str, Any], per_batch: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Each case's round trips and sends per unit, over its batches but the blockers'."""
    blockers, sizes = set(inner["blockers"]), inner["sizes"]
    if len(per_batch) != len(sizes):
        raise RuntimeError(f"the trace holds {len(per_batch)} commits, the writer made {len(sizes)}")
    report = []
    for case in inner["cases"]:
        first, end = case["batches"]
        counted = [i for i in range(first, end) if i not in blockers]
        trips = sum(per_batch[i][0] for i in counted)
        sends = sum(per_batch[i][1] for i in counted)
        units = sum(sizes[i] for i in counted)
        report.append({"case": case["case"], "round_trips_per_unit": round(trips / units, 2),
                       "sends_per_unit": round(sends / units, 2), "units": units, "batches": len(counted)})
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; trace the inner half and print the report (or, with ``--inner``, be the inner half)."""
    p = argparse.ArgumentParser(prog="python -m coordhub.bench.round_trips", description=__doc__.split("\n")[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inner", action="store_true")
    args = p.parse_args(argv)
    if args.inner:
        print(json.dumps(asyncio.run(_drive(args.database_url, args.batch, args.rounds))))
        return 0
    if shutil.which("strace") is None:
        print("strace is missing: apt-get install strace", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace")
        run = subprocess.run(["strace", "-f", "-o", out, "-e", "trace=sendto,recvfrom,%file", "-s", "64",
                              sys.executable, "-m", "coordhub.bench.round_trips", "--inner",
                              "--database-url", args.database_url, "--batch", str(args.batch),
                              "--rounds", str(args.rounds)], capture_output=True, text=True, check=True)
        with open(out, encoding="utf-8", errors="replace") as f:
            trace = f.read()
    inner = json.loads(run.stdout.strip().splitlines()[-1])
    report = _per_unit(inner, _batches(trace, inner["tid"]))
    print(json.dumps({"batch": args.batch, "cases": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
