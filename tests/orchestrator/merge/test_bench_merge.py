"""Merge-queue throughput on a local bare origin with a trivial gate (issue 12 closing note): N branches done by
fake workers, entered at once, merged one by one (and in batches) by one real ``coord agent``. Prints merges per
minute from the hub's own timestamps (first run started → last merged). Slow: run with ``-m slow``."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.orchestrator.merge.conftest import MergeFleet

N = 16


def _ts(v: str) -> float:
    return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_merge_queue_throughput(mfleet: MergeFleet, batch: int) -> None:
    mfleet.set_merge(gate_command="true", batch=batch)
    mfleet.configure(max_workers=4)
    mfleet.start("m1", "--slots", "4")
    ids = mfleet.done(list(range(100, 100 + N)), lambda n: f"fake: success file=b{n}.txt step=0.001")
    entered = mfleet.enter(ids)["entered"]
    finals = [mfleet.wait_entry(e, ("merged", "needs_input"), timeout=300) for e in entered]
    assert [e["state"] for e in finals] == ["merged"] * N
    start = min(_ts(e["started_at"]) for e in finals)
    end = max(_ts(e["ended_at"]) for e in finals)
    rate = N / (end - start) * 60
    print(f"\nmerge queue, batch {batch}: {N} merges in {end - start:.1f} s = {rate:.0f} merges/minute "
          f"(trivial gate, local bare origin, one coord agent, SQLite)")
    assert len([f for f in mfleet.main_files() if f.startswith("b")]) == N
