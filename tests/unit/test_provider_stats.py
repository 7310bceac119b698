"""Latency stats per provider method: count, errors, min, max, avg over all calls, p95 over a
bounded window."""

from __future__ import annotations

import threading

import pytest

from kernel.provider_host.stats import LatencyStats, percentile


def test_summary_of_one_method() -> None:
    stats = LatencyStats()
    for ms in range(1, 101):  # 1..100 ms
        stats.record("get", ms / 1000)
    stats.record("get", 0.5, ok=False)
    snap = stats.get("get")
    assert snap is not None
    assert (snap.count, snap.errors) == (101, 1)
    assert snap.min == pytest.approx(0.001)
    assert snap.max == pytest.approx(0.5)
    assert snap.avg == pytest.approx((5050 / 1000 + 0.5) / 101)
    assert snap.p95 == pytest.approx(0.096)
    assert stats.get("ping") is None


def test_json_is_in_milliseconds_and_sorted_by_method() -> None:
    stats = LatencyStats()
    stats.record("versions", 0.0015)
    stats.record("get", 0.002)
    doc = stats.to_json()
    assert list(doc) == ["get", "versions"]
    assert doc["versions"] == {
        "count": 1,
        "errors": 0,
        "min_ms": 1.5,
        "max_ms": 1.5,
        "avg_ms": 1.5,
        "p95_ms": 1.5,
    }


def test_p95_follows_the_recent_window_only() -> None:
    stats = LatencyStats(window=10)
    for _ in range(1000):
        stats.record("get", 1.0)
    for _ in range(10):
        stats.record("get", 0.001)
    snap = stats.get("get")
    assert snap is not None
    assert snap.p95 == pytest.approx(0.001)
    assert snap.max == 1.0 and snap.count == 1010


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.95) == 0.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([float(i) for i in range(1, 21)], 0.95) == 19.0
    assert percentile([float(i) for i in range(1, 21)], 0.5) == 10.0


def test_negative_durations_are_clamped_and_bad_windows_refused() -> None:
    stats = LatencyStats()
    stats.record("ping", -1.0)
    snap = stats.get("ping")
    assert snap is not None and snap.min == 0.0
    with pytest.raises(ValueError):
        LatencyStats(window=0)


def test_concurrent_recording_loses_nothing() -> None:
    stats = LatencyStats(window=64)

    def work() -> None:
        for _ in range(2000):
            stats.record("get", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = stats.get("get")
    assert snap is not None and snap.count == 8000
