"""``coordhub.bench.round_trips``: the writer's round trips per unit of work on PostgreSQL, counted by strace.

The counts are exact (they do not depend on the machine's speed), so this
holds issue 15's bound (at most 3 round trips per unit of work) and what the
hub does today: one for a whole batch of 20 message sends, lease claims or
lease releases that queued while the batch before them ran (their BEGIN, with
their senders, their recipients, the leases they could collide with or the
leases they end, travels with that batch's COMMIT; each sender's check is
answered by its row read ahead, and a send's daily quota by its sender's
row of the day, so nothing waits before their own COMMIT), and
2 for one alone in its batch (BEGIN with the standing halts, the counters and
the rows it names, and COMMIT with the counters' move and the event bus's read
of the batch's events); and that each round trip leaves in one system call.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import scratch_database


@pytest.mark.postgres
def test_each_unit_of_work_costs_one_round_trip_in_a_batch() -> None:
    if shutil.which("strace") is None:
        pytest.fail("strace is missing: apt-get install strace")
    with scratch_database("coordhub_rt") as url:
        p = subprocess.run([sys.executable, "-m", "coordhub.bench.round_trips", "--database-url", url,
                            "--rounds", "1"], capture_output=True, text=True, timeout=170)
    assert p.returncode == 0, p.stderr
    cases = {c["case"]: c for c in json.loads(p.stdout)["cases"]}
    for unit in ("send", "claim", "release"):
        alone, batched = cases[f"{unit} alone"], cases[f"{unit} in a batch of 20"]
        assert batched["units"] == 20 and batched["batches"] == 1, batched
        assert batched["round_trips_per_unit"] <= 1.1, batched
        assert alone["units"] == alone["batches"] == 20 and alone["round_trips_per_unit"] <= 2, alone
    # A send names its recipient, a claim the leases it could collide with and a release its lease, and each its
    # sender, read with the batch's BEGIN in the round trip of the COMMIT before it: the whole batch waits for
    # one answer of its own (its COMMIT), not one more per unit. So does a claim refused for a file another
    # session holds: its answer names the holder's lease from the rows read ahead, description included, and
    # the units after it keep those rows and the standing halts (it wrote nothing a rollback undoes).
    refused = cases["refused claim in a batch of 20"]
    assert refused["units"] == 20 and refused["batches"] == 1 and "refused claim alone" not in cases, refused
    for unit in ("send", "claim", "release", "refused claim"):
        assert cases[f"{unit} in a batch of 20"]["round_trips_per_unit"] <= 1 / 20, cases
    # Each round trip is sent in one system call: a pipeline's statements go with its sync, not one send before
    # it (a lone unit sent 3 for its 2 round trips). A batch of 20 adds the writes sent ahead while it runs.
    for unit in ("send", "claim", "release"):
        alone, batched = cases[f"{unit} alone"], cases[f"{unit} in a batch of 20"]
        assert alone["sends_per_unit"] == alone["round_trips_per_unit"], alone
        assert batched["sends_per_unit"] <= 3 / 20, batched
    assert refused["sends_per_unit"] <= 3 / 20, refused
