"""The freeze file's format and the window arithmetic (no dso needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dso_change_freeze.windows import FreezeConfigError, load, parse


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_one_off_window_is_half_open_and_read_in_its_timezone(tmp_path: Path) -> None:
    path = tmp_path / "freeze.toml"
    path.write_text(
        'timezone = "Europe/Berlin"\n'
        "[[window]]\n"
        'name = "year-end"\n'
        "start = 2026-12-20T00:00:00\n"
        "end = 2027-01-04\n"
    )
    config = load(path)
    # 2026-12-19 23:30 UTC is 2026-12-20 00:30 in Berlin: inside.
    assert config.active(at("2026-12-19T23:30:00+00:00"), target="web") is not None
    assert config.active(at("2026-12-19T22:30:00+00:00"), target="web") is None
    assert config.active(at("2027-01-03T22:59:59+00:00"), target="web") is not None
    assert config.active(at("2027-01-03T23:00:00+00:00"), target="web") is None  # end excluded
    (window,) = config.windows
    assert window.describe() == "2026-12-20 00:00 to 2027-01-04 00:00 CET"


def test_a_weekly_window_spanning_midnight() -> None:
    config = parse(
        {"window": [{"name": "nights", "days": ["fri"], "from": "22:00", "to": "06:00"}]}
    )
    friday = "2026-12-04"  # a Friday
    assert config.active(at(f"{friday}T23:00:00+00:00"), target="web") is not None
    assert config.active(at("2026-12-05T05:59:00+00:00"), target="web") is not None  # Sat morning
    assert config.active(at("2026-12-05T06:00:00+00:00"), target="web") is None
    assert config.active(at(f"{friday}T21:59:00+00:00"), target="web") is None
    assert config.active(at("2026-12-04T05:00:00+00:00"), target="web") is None  # Thu night


def test_targets_and_allowed_triggers() -> None:
    config = parse(
        {
            "allow_triggers": ["forced"],
            "window": [
                {
                    "name": "shop",
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "targets": ["shop/*", "billing-*"],
                }
            ],
        }
    )
    when = at("2026-12-02T12:00:00+00:00")
    assert config.active(when, target="shop-web-1", project="shop", service="web")
    assert config.active(when, target="billing-db", project=None, service=None)
    assert config.active(when, target="blog-web-1", project="blog", service="web") is None
    assert (
        config.active(when, target="shop-web-1", project="shop", service="web", trigger="forced")
        is None
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"windows": []}, "unknown key 'windows'"),
        ({"timezone": "Mars/Olympus"}, "not a known time zone"),
        ({"window": [{"name": "x"}]}, "give either `start` and `end`"),
        (
            {"window": [{"name": "x", "start": dt.date(2027, 1, 2), "end": dt.date(2027, 1, 1)}]},
            "end must be after start",
        ),
        ({"window": [{"name": "x", "days": ["friday", "funday"]}]}, "days must name"),
        ({"window": [{"name": "x", "days": ["fri"], "from": "25:00"}]}, "between 00:00 and 24:00"),
        ({"window": [{"name": "x", "days": ["fri"], "form": "10:00"}]}, "unknown key 'form'"),
        (
            {"window": [{"name": "x", "start": "tomorrow", "end": dt.date(2027, 1, 1)}]},
            "must be a TOML date-time",
        ),
    ],
)
def test_mistakes_are_named(doc: dict[str, object], message: str) -> None:
    with pytest.raises(FreezeConfigError, match=message) as caught:
        parse(doc, "freeze.toml")
    assert str(caught.value).startswith("freeze.toml")


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "freeze.toml"
    path.write_text("[[window]]\nname = \n")
    with pytest.raises(FreezeConfigError, match=r"freeze.toml: not valid TOML: .*line 2"):
        load(path)
