"""Malformed hook stdin: every handler exits quietly with a clear line, never an internal error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordhub.hooks.run import CLAUDE_EVENTS, run_claude_event
from tests.conftest import LiveHub

JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=20)),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3), max_leaves=8)
FIELDS = ("session_id", "transcript_path", "cwd", "tool_name", "tool_input", "tool_response", "prompt", "source",
          "reason", "stop_hook_active", "tool_use_id", "permission_mode")


@pytest.fixture
def hook_env(live_hub: LiveHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORD_URL", live_hub.url)
    monkeypatch.setenv("COORD_TOKEN", live_hub.token("FUZZ/agent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("CLAUDE_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)


def _answer_ok(event: str, answer: Any, err: str) -> None:
    assert "internal error" not in err and "Traceback" not in err, err
    if answer is not None:
        json.dumps(answer)  # what the hook prints must be JSON
        assert isinstance(answer, dict)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=st.sampled_from(sorted(CLAUDE_EVENTS)), raw=st.binary(max_size=200))
def test_random_bytes(hook_env: None, capsys: pytest.CaptureFixture[str], event: str, raw: bytes) -> None:
    answer = run_claude_event(event, raw)
    err = capsys.readouterr().err
    _answer_ok(event, answer, err)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=st.sampled_from(sorted(CLAUDE_EVENTS)), fields=st.dictionaries(st.sampled_from(FIELDS), JSONISH),
       file_path=st.one_of(st.none(), JSONISH, st.text(alphabet="/ab.\x00\\:*?", max_size=30)))
def test_wrong_types_in_real_shaped_payloads(hook_env: None, capsys: pytest.CaptureFixture[str], event: str,
                                             fields: dict[str, Any], file_path: Any) -> None:
    payload = {"hook_event_name": CLAUDE_EVENTS[event], **fields}
    if event == "pre-tool-use" and file_path is not None:
        payload.setdefault("tool_name", "Edit")
        payload["tool_input"] = {"file_path": file_path}
    answer = run_claude_event(event, json.dumps(payload).encode())
    err = capsys.readouterr().err
    _answer_ok(event, answer, err)
