"""Durations (``1h30m``) and sizes (``500Mi``) as written in dso configuration.

Both parsers are strict so a typo never silently becomes a different number: ``5x``, ``5 s``,
``-5s`` and ``500Mx`` are refused with a message that repeats the text and shows a valid value.
They raise :class:`ValueError` (the stdlib contract of a parse function); the config validator
adds the file, line and key.

Durations: a whole number of seconds (``30``), or one or more ``<number><unit>`` parts with units
``ms``, ``s``, ``m``, ``h``, ``d`` from the largest to the smallest (``1h30m``, ``1.5s``), no
spaces. Sizes: a whole number of bytes (``1048576``), or a whole number with a suffix, ``Ki Mi Gi
Ti`` (1024-based) or ``K M G T`` (1000-based), no spaces.
"""

from __future__ import annotations

import math
import re

#: Duration units, largest first, in seconds.
DURATION_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

#: Size suffixes in bytes.
SIZE_SUFFIXES: dict[str, int] = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}

DURATION_EXAMPLE = "30s, 5m, 1h30m or 100ms"
SIZE_EXAMPLE = "500Mi, 2Gi or 1048576"

# "ms" must be tried before "m" and "s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_SIZE = re.compile(r"(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?")


def parse_duration(value: str | int) -> float:
    """Seconds in ``value``: a bare integer is seconds, text is ``<number><unit>`` parts.

    Raises :class:`ValueError` naming the text and showing valid examples.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a duration such as {DURATION_EXAMPLE}, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}; e.g. {DURATION_EXAMPLE}")
        return float(value)
    text = value
    if text.isdigit():
        return float(int(text))
    if text.startswith("-"):
        raise ValueError(f"a duration cannot be negative, got {text!r}; e.g. {DURATION_EXAMPLE}")
    invalid = ValueError(
        f"invalid duration {text!r}: use a whole number of seconds or <number><unit> parts "
        f"with units ms, s, m, h, d and no spaces, e.g. {DURATION_EXAMPLE}"
    )
    position = 0
    total = 0.0
    ranks = list(DURATION_UNITS)
    last_rank = -1
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            raise invalid
        number, unit = match.groups()
        rank = ranks.index(unit)
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {text!r}: write each unit once, largest first, "
                f"e.g. {DURATION_EXAMPLE}"
            )
        last_rank = rank
        total += float(number) * DURATION_UNITS[unit]
        position = match.end()
    if position != len(text) or not text:
        raise invalid
    return total


def format_duration(seconds: float) -> str:
    """The shortest duration text that :func:`parse_duration` reads back as ``seconds``.

    ``3600 → "1h"``, ``5400 → "1h30m"``, ``0.1 → "100ms"``, ``0 → "0s"``.
    """
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format {seconds!r} as a duration")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if abs(millis - seconds * 1000) > 1e-6 * max(1.0, seconds):
        # Sub-millisecond precision: seconds with a fraction is the only exact spelling.
        return f"{seconds:g}s"
    parts: list[str] = []
    for unit, size in DURATION_UNITS.items():
        unit_millis = round(size * 1000)
        count, millis = divmod(millis, unit_millis)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: a bare integer is bytes, text may end in Ki/Mi/Gi/Ti or K/M/G/T.

    Raises :class:`ValueError` naming the text and showing valid examples.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a size such as {SIZE_EXAMPLE}, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}; e.g. {SIZE_EXAMPLE}")
        return value
    match = _SIZE.fullmatch(value)
    if match is None:
        if value.startswith("-"):
            raise ValueError(f"a size cannot be negative, got {value!r}; e.g. {SIZE_EXAMPLE}")
        raise ValueError(
            f"invalid size {value!r}: use a whole number of bytes, optionally followed by "
            f"Ki, Mi, Gi, Ti (1024-based) or K, M, G, T (1000-based), no spaces, "
            f"e.g. {SIZE_EXAMPLE}"
        )
    number, suffix = match.groups()
    return int(number) * (SIZE_SUFFIXES[suffix] if suffix else 1)


def format_size(size: int) -> str:
    """The shortest exact size text: ``524288000 → "500Mi"``, ``2000 → "2K"``, ``1023 → "1023"``."""
    if size < 0:
        raise ValueError(f"cannot format {size!r} as a size")
    if size == 0:
        return "0"
    for suffix, factor in sorted(SIZE_SUFFIXES.items(), key=lambda item: -item[1]):
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)
