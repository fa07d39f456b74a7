"""``clock.isoformat``: the per-second cache writes exactly what ``datetime`` writes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub import clock


def _reference(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


@settings(max_examples=3000)
@given(st.floats(min_value=0, max_value=253402300798.999, allow_nan=False, allow_infinity=False))
def test_any_time_renders_as_datetime_renders_it(ts: float) -> None:
    assert clock.isoformat(ts) == _reference(ts)


def test_edges_of_a_second_and_of_the_range() -> None:
    for ts in (0.0, 1.0, 1764500000.0, 1764500000.0000005, 1764500000.0000015, 1764500000.9999995,
               1764500000.999999, 1764500000.5, 253402300798.999999, 253402300799.5):
        assert clock.isoformat(ts) == _reference(ts), ts
    assert clock.isoformat(None) is None


def test_the_cache_stays_bounded() -> None:
    for second in range(clock._SECONDS_MAX * 2):
        clock.isoformat(1764500000.25 + second)
    assert len(clock._SECONDS) <= clock._SECONDS_MAX
