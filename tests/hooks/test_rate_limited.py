"""The edit hook on a hub that answers 429: it waits the Retry-After within its budget, then denies in either fail
mode (review: a rate-limited check counted as "hub unreachable", so ``COORD_HOOK_FAIL_MODE=open`` let an edit of
a file another session leased through, and lost the halt)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.hooks.conftest import PROJECT, Agent, B, agents
from tests.hooks.test_hooks import edit


def limited_hub(tmp_path: Path, rate: str) -> Iterator[LiveHub]:
    """A live hub allowing each token ``rate`` requests a second after a burst of 10, stopped afterwards."""
    hub = LiveHub(tmp_path / "hub", args=("--rate-limit", rate, "--rate-burst", "10")).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def slow_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """One request per 20 s after the burst: a 429's Retry-After (up to 20 s) is past the hook's budget."""
    yield from limited_hub(tmp_path, "0.05")


@pytest.fixture
def brisk_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """One request per 2 s after the burst: a 429's Retry-After (1 or 2 s) is within the hook's budget."""
    yield from limited_hub(tmp_path, "0.5")


def exhaust(agent: Agent) -> None:
    """Spend the agent's token until the hub answers 429."""
    with httpx2.Client(base_url=agent.hub.url, headers=agent.headers, timeout=10) as c:
        for _ in range(40):
            r = c.get("/api/coord/whoami")
            if r.status_code == 429:
                assert r.headers["Retry-After"] == str(r.json()["retry_after"])
                return
            assert r.status_code == 200, r.text
    raise AssertionError("the hub never answered 429")


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_rate_limited_check_denies_in_either_fail_mode(slow_hub: LiveHub, tmp_path: Path, mode: str) -> None:
    a, b = agents(slow_hub, tmp_path)
    b.api("POST", "/locks", json={"project_key": PROJECT, "resource": "src/a.py", "description": "refactor"})
    exhaust(a)
    for name in ("src/a.py", "src/free.py"):  # a free file is as unknown as a leased one: its check was refused
        r = a.hook("pre-tool-use", **edit(a.project_dir / name), env={"COORD_HOOK_FAIL_MODE": mode})
        out = r.json()["hookSpecificOutput"]
        assert out["permissionDecision"] == "deny", r
        reason = out["permissionDecisionReason"]
        assert f"cannot check whether {name} is leased" in reason and "rate-limiting" in reason, reason
        assert "429 rate_limited" in reason and "Retry-After" in reason and "Retry it in about" in reason, reason
        assert "edit allowed" not in r.err and "asking again" not in r.err  # a 20 s wait is past the budget


def test_a_rate_limited_check_waits_the_retry_after_and_asks_again(brisk_hub: LiveHub, tmp_path: Path) -> None:
    a, b = agents(brisk_hub, tmp_path)
    b.api("POST", "/locks", json={"project_key": PROJECT, "resource": "src/a.py", "description": "refactor"})
    for _ in range(3):  # a hook that started after the bucket refilled (a loaded machine) met no 429: again
        exhaust(a)
        r = a.hook("pre-tool-use", **edit(a.project_dir / "src/a.py"))
        if "asking again" in r.err:
            break
    assert "the hub is rate-limiting this session" in r.err and "asking again in" in r.err, r.err
    reason = r.json()["hookSpecificOutput"]["permissionDecisionReason"]
    assert f"src/a.py is leased by {B}" in reason and "refactor" in reason, reason
