"""``coordhub.bench.writer_load``: the writer's own capacity, driven through ``Hub.mutate`` without HTTP.

What the instruction counts of docs/benchmarks.md rest on: every unit asked
for runs and is counted, and ``--tasks`` sets how many are in flight, so a
batch holds at most that many (to compare with the hub's batches under wrk).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordhub.bench import writer_load


@pytest.mark.parametrize("case", ["send", "lease"])
def test_every_unit_runs_and_a_batch_holds_at_most_the_units_in_flight(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'coord.db'}"
    assert writer_load.main(["--database-url", url, "--units", "96", "--tasks", "4", case]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["case"] == case and got["backend"] == "sqlite" and got["units"] == 96, got
    assert got["batches"] >= 96 / 4, got  # never more than the 4 in flight in one batch
    assert got["cpu_us_per_unit"] > 0 and got["writer_cpu_us_per_unit"] > 0, got
    assert got["runs_again"] == {"isolated": 0, "unit_lost": 0, "stale": 0}, got  # nothing is refused


def test_contended_claims_are_refused_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sixteen sessions claim from eight files in turn, two at a time for each, releasing what they are granted: a
    claim of a file another holds is refused (one unit), and whatever ran is counted."""
    url = f"sqlite:///{tmp_path / 'coord.db'}"
    assert writer_load.main(["--database-url", url, "--units", "320", "--tasks", "16", "contended"]) == 0
    got = json.loads(capsys.readouterr().out)
    granted = (got["units"] - got["refused"]) / 2  # each granted claim ran its release too
    assert got["refused"] > 0 and granted == int(granted) and granted > 0, got
    assert got["refused"] + granted == 320 / 2, got  # 10 iterations of each of the 16 tasks
    assert set(got["runs_again"]) == {"isolated", "unit_lost", "stale"}, got


def test_units_fewer_than_two_rounds_of_tasks_are_refused(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        writer_load.main(["--database-url", f"sqlite:///{tmp_path / 'coord.db'}", "--units", "10", "--tasks", "8",
                          "lease"])
    assert exc.value.code == 2
    assert "--units at least twice --tasks" in capsys.readouterr().err
