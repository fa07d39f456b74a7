"""Latency series and percentiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of an ascending list, or None when empty."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


@dataclass
class Series:
    """Latencies (seconds) and errors of one kind of operation."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        """Count an error; keep the first few for the report."""
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(what[:300])

    def summary(self, seconds: float) -> dict[str, Any]:
        """ops, ops/s and p50/p95/p99 in ms, errors."""
        lat = sorted(self.latencies)

        def ms(p: float) -> float | None:
            v = percentile(lat, p)
            return None if v is None else round(v * 1000, 2)

        return {"ops": len(lat), "ops_per_s": round(len(lat) / seconds, 1) if seconds else 0.0,
                "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99), "errors": self.errors,
                "error_samples": self.error_samples}
