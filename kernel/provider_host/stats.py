"""Latency statistics per provider method: count, errors, min, max, average and p95.

Count, error count, min, max and the average cover every call since the stats were created;
p95 covers the last :data:`WINDOW` calls of each method, so memory stays bounded in an agent
that runs for months and the percentile follows recent behaviour. Thread-safe: the provider
host records from whichever thread finished a call. Feeds ``status --json`` ``.observability``.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

#: Calls per method kept for the percentile.
WINDOW = 1024


@dataclass(frozen=True, slots=True)
class MethodStats:
    """A snapshot of one method's latency, in seconds."""

    count: int
    errors: int
    min: float
    max: float
    avg: float
    p95: float

    def to_json(self) -> dict[str, Any]:
        """Milliseconds, rounded to the microsecond, for ``--json`` output."""
        return {
            "count": self.count,
            "errors": self.errors,
            "min_ms": _ms(self.min),
            "max_ms": _ms(self.max),
            "avg_ms": _ms(self.avg),
            "p95_ms": _ms(self.p95),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def percentile(sorted_samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted samples (0.0 when there are none)."""
    if not sorted_samples:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_samples)))
    return sorted_samples[rank - 1]


class _Series:
    __slots__ = ("count", "errors", "max", "min", "total", "window")

    def __init__(self, window: int) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0
        self.window: deque[float] = deque(maxlen=window)

    def add(self, seconds: float, ok: bool) -> None:
        self.count += 1
        if not ok:
            self.errors += 1
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)
        self.window.append(seconds)

    def snapshot(self) -> MethodStats:
        return MethodStats(
            count=self.count,
            errors=self.errors,
            min=self.min if self.count else 0.0,
            max=self.max,
            avg=self.total / self.count if self.count else 0.0,
            p95=percentile(sorted(self.window), 0.95),
        )


class LatencyStats:
    """Latency of each method of one provider (all its processes, restarts included)."""

    __slots__ = ("_lock", "_series", "_window")

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._window = window
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}

    def record(self, method: str, seconds: float, *, ok: bool = True) -> None:
        """Add one finished call (``ok=False`` for a call that raised)."""
        with self._lock:
            series = self._series.get(method)
            if series is None:
                series = self._series[method] = _Series(self._window)
            series.add(max(0.0, seconds), ok)

    def get(self, method: str) -> MethodStats | None:
        """The snapshot of ``method``, or None if it was never called."""
        with self._lock:
            series = self._series.get(method)
            return None if series is None else series.snapshot()

    def snapshot(self) -> dict[str, MethodStats]:
        """Every method's snapshot, by method name (sorted)."""
        with self._lock:
            return {name: self._series[name].snapshot() for name in sorted(self._series)}

    def to_json(self) -> dict[str, dict[str, Any]]:
        """``{method: {count, errors, min_ms, max_ms, avg_ms, p95_ms}}``."""
        return {name: stats.to_json() for name, stats in self.snapshot().items()}
