"""Change-freeze windows: the TOML file, and which window (if any) covers a moment.

Pure Python (no dso import), so it can be tested and reused on its own. The format::

    timezone = "Europe/Berlin"        # optional, default "UTC": how window times are read
    allow_triggers = ["forced"]       # optional: rotations with these triggers pass a freeze

    [[window]]                        # a one-off window
    name = "year-end"
    start = 2026-12-20T00:00:00       # TOML date-time (local ones are in `timezone`) or date
    end = 2027-01-04                  # exclusive

    [[window]]                        # a weekly window
    name = "friday-afternoon"
    days = ["fri"]
    from = "14:00"
    to = "24:00"                      # from > to spans midnight
    targets = ["shop/*"]              # optional globs on project/service or container name
    reason = "no deploys on Friday afternoons"   # optional, shown in the veto
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TOP_KEYS = frozenset({"timezone", "allow_triggers", "window"})
WINDOW_KEYS = frozenset({"name", "start", "end", "days", "from", "to", "targets", "reason"})


class FreezeConfigError(ValueError):
    """The freeze file is wrong; the message names the file, the window and the key."""


@dataclass(frozen=True)
class Window:
    name: str
    tz: dt.tzinfo
    start: dt.datetime | None = None  # one-off window: [start, end)
    end: dt.datetime | None = None
    days: frozenset[int] = frozenset()  # weekly window: weekday numbers, 0 = Monday
    from_minute: int = 0
    to_minute: int = 24 * 60
    targets: tuple[str, ...] = ()
    reason: str = ""

    def covers(self, when: dt.datetime) -> bool:
        """Whether the aware moment ``when`` falls inside this window."""
        if self.start is not None and self.end is not None:
            return self.start <= when < self.end
        local = when.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        if self.from_minute <= self.to_minute:
            return local.weekday() in self.days and self.from_minute <= minute < self.to_minute
        # Spans midnight: the evening part belongs to the listed day, the morning to the next.
        if local.weekday() in self.days and minute >= self.from_minute:
            return True
        return (local.weekday() - 1) % 7 in self.days and minute < self.to_minute

    def applies_to(self, target: str, project: str | None, service: str | None) -> bool:
        if not self.targets:
            return True
        names = [target] + ([f"{project}/{service}"] if project and service else [])
        return any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in self.targets)

    def describe(self) -> str:
        if self.start is not None and self.end is not None:
            return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} {self.start.tzname()}"
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {_hhmm(self.from_minute)}-{_hhmm(self.to_minute)} {self.tz}"


@dataclass(frozen=True)
class FreezeConfig:
    windows: tuple[Window, ...]
    allow_triggers: frozenset[str] = frozenset()

    def active(
        self,
        when: dt.datetime,
        *,
        target: str,
        project: str | None = None,
        service: str | None = None,
        trigger: str = "manual",
    ) -> Window | None:
        """The first window that freezes this rotation at ``when``, or None."""
        if trigger in self.allow_triggers:
            return None
        for window in self.windows:
            if window.covers(when) and window.applies_to(target, project, service):
                return window
        return None


def load(path: Path) -> FreezeConfig:
    """Read and check the freeze file; :class:`FreezeConfigError` says what and where."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FreezeConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FreezeConfigError(f"{path}: cannot read it: {exc}") from None
    return parse(doc, str(path))


def parse(doc: Mapping[str, Any], where: str = "change-freeze") -> FreezeConfig:
    _no_unknown(doc, TOP_KEYS, where)
    tz_name = doc.get("timezone", "UTC")
    try:
        tz: dt.tzinfo = ZoneInfo(_str(tz_name, f"{where}: timezone"))
    except (ZoneInfoNotFoundError, ValueError):
        raise FreezeConfigError(f"{where}: timezone {tz_name!r} is not a known time zone") from None
    allow = doc.get("allow_triggers", [])
    allow_list = _str_list(allow, f"{where}: allow_triggers")
    raw = doc.get("window", [])
    if not isinstance(raw, list):
        raise FreezeConfigError(f"{where}: `window` must be an array of tables ([[window]])")
    windows = tuple(_window(item, tz, f"{where}: window {i + 1}") for i, item in enumerate(raw))
    return FreezeConfig(windows, frozenset(allow_list))


def _window(item: Any, tz: dt.tzinfo, where: str) -> Window:
    if not isinstance(item, dict):
        raise FreezeConfigError(f"{where}: must be a table")
    name = _str(item.get("name", ""), f"{where}: name") or where.rsplit(": ", 1)[-1]
    where = f"{where} ({name!r})" if "name" in item else where
    _no_unknown(item, WINDOW_KEYS, where)
    targets = tuple(_str_list(item.get("targets", []), f"{where}: targets"))
    reason = _str(item.get("reason", ""), f"{where}: reason")
    one_off = "start" in item or "end" in item
    weekly = any(k in item for k in ("days", "from", "to"))
    if one_off == weekly:
        raise FreezeConfigError(
            f"{where}: give either `start` and `end` (one-off) or `days`, `from`, `to` (weekly)"
        )
    if one_off:
        start = _moment(item.get("start"), tz, f"{where}: start")
        end = _moment(item.get("end"), tz, f"{where}: end")
        if end <= start:
            raise FreezeConfigError(f"{where}: end must be after start")
        return Window(name, tz, start=start, end=end, targets=targets, reason=reason)
    days = _str_list(item.get("days", []), f"{where}: days")
    unknown = [d for d in days if d.lower()[:3] not in DAYS]
    if not days or unknown:
        raise FreezeConfigError(f"{where}: days must name some of {', '.join(DAYS)}")
    return Window(
        name,
        tz,
        days=frozenset(DAYS.index(d.lower()[:3]) for d in days),
        from_minute=_minute(item.get("from", "00:00"), f"{where}: from"),
        to_minute=_minute(item.get("to", "24:00"), f"{where}: to"),
        targets=targets,
        reason=reason,
    )


def _moment(value: Any, tz: dt.tzinfo, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=tz)
    raise FreezeConfigError(f"{where}: must be a TOML date-time or date, e.g. 2026-12-20T18:00:00")


def _minute(value: Any, where: str) -> int:
    text = _str(value, where)
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise FreezeConfigError(f"{where}: {text!r} is not HH:MM") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or hours * 60 + minutes > 24 * 60:
        raise FreezeConfigError(f"{where}: {text!r} is not a time between 00:00 and 24:00")
    return hours * 60 + minutes


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FreezeConfigError(f"{where}: must be a string")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FreezeConfigError(f"{where}: must be an array of strings")
    return list(value)


def _no_unknown(doc: Mapping[str, Any], known: Sequence[str] | frozenset[str], where: str) -> None:
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise FreezeConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
