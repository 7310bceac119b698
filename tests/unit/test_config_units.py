"""Durations and sizes: what is accepted, what is refused, and how they print back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100ms", 0.1),
        ("5s", 5.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("30", 30.0),
        (30, 30.0),
        (0, 0.0),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("5x", "invalid duration '5x'"),
        ("", "invalid duration ''"),
        ("5 s", "invalid duration '5 s'"),
        (" 5s", "invalid duration ' 5s'"),
        ("-5s", "cannot be negative"),
        (-5, "cannot be negative"),
        ("s", "invalid duration 's'"),
        ("1.5", "invalid duration '1.5'"),
        ("30m1h", "largest first"),
        ("1h1h", "largest first"),
        ("5S", "invalid duration '5S'"),
        ("1h 30m", "invalid duration"),
    ],
)
def test_bad_durations_name_the_text_and_show_an_example(text: str | int, needle: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30s") as info:
        parse_duration(text)
    assert needle in str(info.value)


@pytest.mark.parametrize("value", [True, 1.5, None])
def test_durations_refuse_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500Mi", 500 * 1024**2),
        ("1Ki", 1024),
        ("2Gi", 2 * 1024**3),
        ("1Ti", 1024**4),
        ("10K", 10_000),
        ("500M", 500_000_000),
        ("3G", 3_000_000_000),
        ("1T", 10**12),
        ("1048576", 1048576),
        (1048576, 1048576),
        ("0", 0),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("500Mx", "invalid size '500Mx'"),
        ("500mi", "invalid size '500mi'"),
        ("500 Mi", "invalid size '500 Mi'"),
        ("1.5Gi", "invalid size '1.5Gi'"),
        ("Mi", "invalid size 'Mi'"),
        ("", "invalid size ''"),
        ("-1Mi", "cannot be negative"),
        (-1, "cannot be negative"),
    ],
)
def test_bad_sizes_name_the_text_and_show_an_example(text: str | int, needle: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 500Mi") as info:
        parse_size(text)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (5400, "1h30m"), (0.1, "100ms"), (0, "0s"), (300, "5m"), (90061, "1d1h1m1s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(500 * 1024**2, "500Mi"), (2000, "2K"), (1023, "1023"), (0, "0"), (1024**4, "1Ti")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_durations_in_milliseconds_round_trip(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@given(st.integers(min_value=0, max_value=2**60))
def test_sizes_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size
