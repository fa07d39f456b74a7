"""``coord agent`` is non-dumpable: a worker (any process of the same user) cannot read its environment.

The agent holds the machine's hub token and the host's GitHub token in its
environment; its children (workers, gates, reviewers) run untrusted code as
the same user, and without the seal ``/proc/<agent>/environ`` is theirs to
read (found by a review). Root reads it whatever the flag (CAP_SYS_PTRACE),
so the probe runs as an ordinary user: ``nobody`` when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordhub.orchestrator import environment

PROBE = """
import subprocess, sys
from coordhub.orchestrator.environment import seal_from_children
if sys.argv[1] == "seal":
    assert seal_from_children()
p = subprocess.run(["sh", "-c", "cat /proc/$PPID/environ"], capture_output=True)
print("SECRET_OF_THE_AGENT=xyz" in p.stdout.decode(errors="replace").split("\\0"))
"""


@pytest.fixture
def src() -> Iterator[Path]:
    """The module under test in a directory anyone may read (the checkout and pytest's own may not be)."""
    root = Path(tempfile.mkdtemp(prefix="coord-seal-"))
    try:
        (root / "coordhub" / "orchestrator").mkdir(parents=True)
        (root / "coordhub" / "__init__.py").write_text("")
        (root / "coordhub" / "orchestrator" / "__init__.py").write_text("")
        shutil.copy(environment.__file__, root / "coordhub" / "orchestrator" / "environment.py")
        for d in (root, *root.rglob("*")):
            d.chmod(0o755)
        yield root
    finally:
        shutil.rmtree(root)


def _as_ordinary_user(src: Path, mode: str) -> str:
    """Run the probe as this user, or as ``nobody`` (with the system's python, which ``nobody`` may run) when root."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1",
           "SECRET_OF_THE_AGENT": "xyz"}
    python = sys.executable
    prefix: list[str] = []
    if os.geteuid() == 0:
        python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    p = subprocess.run([*prefix, python, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60,
                       cwd="/")
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_a_child_cannot_read_the_sealed_agents_environment(src: Path) -> None:
    assert _as_ordinary_user(src, "open") == "True"  # the door the seal shuts: without it the child reads the token
    assert _as_ordinary_user(src, "seal") == "False"
