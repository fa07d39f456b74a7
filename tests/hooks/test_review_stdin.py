"""Review: hook stdin the fuzz tests do not reach (tests/hooks/test_stdin_fuzz.py draws at most 200 bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hooks.conftest import Fleet, run_hook


@pytest.mark.parametrize("event", ["session-start", "prompt", "pre-tool-use", "post-tool-use", "stop",
                                   "session-end"])
def test_json_nested_too_deep_is_one_line_and_exit_0(fleet: Fleet, tmp_path: Path, event: str) -> None:
    """``json.loads`` raises RecursionError, not ValueError, past ~1,000 levels: it was a traceback and exit 1."""
    r = run_hook(event, b"[" * 100_000, fleet.a.env, tmp_path)  # asserts exit 0 and no traceback
    r.silent()
    assert r.err.startswith(f"coord-hook {event}: stdin is not JSON") and r.err.count("\n") == 1, r.err
