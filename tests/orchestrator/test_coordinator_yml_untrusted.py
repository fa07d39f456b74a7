"""``coord init`` and ``coord config`` on a ``coordinator.yml`` a repository shipped: a symlink, a FIFO, a device.

``init`` must not write through a symlink (dangling or not, ``--force`` or
not); ``config`` and ``config apply`` must answer with one error line, never
read ``/dev/zero`` until memory runs out nor wait on a FIFO for a writer. The
real CLI runs as a subprocess with a bounded address space and a timeout, so
the old behaviour fails the test instead of taking the machine down.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.coordcli import Coord, Result, git_init, isolated_env

MINE = "mine\n"
ADDRESS_SPACE_KB = 2_000_000  # far above what `coord config` needs, far below what /dev/zero would take


def workdir(tmp_path: Path) -> tuple[Path, Coord]:
    """``<tmp>/work`` holding one git repository (``api``), and the CLI run there."""
    work = tmp_path / "work"
    git_init(work / "api")
    return work, Coord(work, isolated_env(tmp_path / "env"))


def bounded(work: Path, env: dict[str, str], *args: str) -> Result:
    """Run ``coord ARGS`` in ``work`` with at most :data:`ADDRESS_SPACE_KB` of memory and 30 seconds."""
    p = subprocess.run(["sh", "-c", f'ulimit -v {ADDRESS_SPACE_KB}; exec "$@"', "sh", sys.executable, "-m",
                        "coordhub", *args], cwd=work, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    return Result(args, p.returncode, p.stdout, p.stderr)


@pytest.mark.parametrize("force", [False, True])
def test_init_refuses_a_dangling_symlink(tmp_path: Path, force: bool) -> None:
    work, coord = workdir(tmp_path)
    (work / "coordinator.yml").symlink_to("../victim.yml")
    r = coord.fails(1, "init", "--yes", *(["--force"] if force else []))
    assert "is a symlink or not a regular file" in r.err, r
    assert not (tmp_path / "victim.yml").exists() and (work / "coordinator.yml").is_symlink()


def test_init_force_refuses_a_symlink_to_a_file_and_a_directory(tmp_path: Path) -> None:
    work, coord = workdir(tmp_path)
    victim = tmp_path / "victim.yml"
    victim.write_text(MINE)
    (work / "coordinator.yml").symlink_to(victim)
    assert "is a symlink" in coord.fails(1, "init", "--yes", "--force").err
    assert victim.read_text() == MINE
    (work / "coordinator.yml").unlink()
    (work / "coordinator.yml").mkdir()
    assert "not a regular file" in coord.fails(1, "init", "--yes", "--force").err


def test_init_still_writes_and_overwrites_a_regular_file(tmp_path: Path) -> None:
    work, coord = workdir(tmp_path)
    coord.ok("init", "--yes", "--machine", "laptop")
    written = work / "coordinator.yml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert yaml.safe_load(written.read_text())["machines"][0]["name"] == "laptop"
    coord.ok("init", "--yes", "--force", "--machine", "desk")
    assert yaml.safe_load(written.read_text())["machines"][0]["name"] == "desk"
    assert not [p for p in work.iterdir() if p.name.startswith(".coordinator.yml")]  # no temp file left


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
@pytest.mark.parametrize("verb", [("config",), ("config", "apply")])
def test_config_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str, verb: tuple[str, ...]) -> None:
    work, coord = workdir(tmp_path)
    target = work / "coordinator.yml"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        target.symlink_to(kind)
    r = bounded(work, coord.env, *verb)
    assert r.code == 1 and "Traceback" not in r.err, r
    assert r.err.startswith("coord: ") and "not a regular file" in r.err, r


def test_config_refuses_a_file_over_the_bound_without_reading_it_all(tmp_path: Path) -> None:
    work, coord = workdir(tmp_path)
    with open(work / "coordinator.yml", "wb") as f:
        f.truncate(8 << 30)  # sparse: 8 GiB that read_bytes() would need all at once
    r = bounded(work, coord.env, "config")
    assert r.code == 1 and "Traceback" not in r.err, r
    assert f"{8 << 30} bytes; the limit is" in r.err, r
