"""Run ``coord`` with a SIGKILL of this very process at a named point (env ``CRASH_AT``), once: the marker
file ``CRASH_MARK`` stops it firing again after the restart. ``CLOCK_SKEW`` (seconds) sets this process's
clock off (``time.time`` only). Used by ``test_crash_points.py``."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

if os.environ.get("CLOCK_SKEW"):
    _real, _skew = time.time, float(os.environ["CLOCK_SKEW"])
    time.time = lambda: _real() + _skew  # type: ignore[assignment]
point = os.environ.get("CRASH_AT")
mark = os.environ.get("CRASH_MARK")


def die(label: str) -> None:
    if mark and os.path.exists(mark):
        return
    if mark:
        with open(mark, "w") as f:
            f.write(label)
    sys.stderr.write(f"INJECT: SIGKILL at {label}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


if point == "after_push":  # the done branch is pushed, before the worktree is removed
    from coordhub.orchestrator import worktree as _wt

    _orig_remove = _wt.remove

    def _remove(*a: Any, **k: Any) -> None:
        die("after_push")
        _orig_remove(*a, **k)

    _wt.remove = _remove  # type: ignore[assignment]
elif point == "after_remove":  # the done branch is pushed and its worktree removed, before the report
    from coordhub.orchestrator import worktree as _wt

    _orig_remove2 = _wt.remove

    def _remove2(*a: Any, **k: Any) -> None:
        _orig_remove2(*a, **k)
        die("after_remove")

    _wt.remove = _remove2  # type: ignore[assignment]
elif point == "before_spawn":  # the dispatch taken, the worktree made, claude not started
    from coordhub.orchestrator import worker as _w

    _orig_spawn = _w.Worker._spawn

    def _spawn(self: Any) -> None:
        die("before_spawn")
        _orig_spawn(self)

    _w.Worker._spawn = _spawn  # type: ignore[method-assign]

from coordhub.cli.entry import main  # noqa: E402

main()
