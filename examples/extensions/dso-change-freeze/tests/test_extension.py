"""The hook as dso calls it: a veto inside a window, none outside; the entry point is there."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from pathlib import Path

import dso_change_freeze
import pytest

from kernel.extensions import RotationEvent

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def event(**changes: object) -> RotationEvent:
    base: dict[str, object] = {
        "trace_id": "0" * 32,
        "rotation_id": "r-1",
        "target": "shop-web-1",
        "strategy": "rolling",
        "step": "swap",
        "project": "shop",
        "service": "web",
        "references": ("dso://app/db",),
        "versions": {"dso://app/db": "local:2"},
        "fingerprints": {"dso://app/db": "sha256:1f0c2a9b"},
        "started_at": NOW.timestamp(),
        "occurred_at": NOW.timestamp(),
    }
    base.update(changes)
    return RotationEvent(**base)  # type: ignore[arg-type]


@pytest.fixture
def freeze_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "change-freeze.toml"
    monkeypatch.setenv(dso_change_freeze.CONFIG_ENV, str(path))
    monkeypatch.setattr(dso_change_freeze, "now", lambda: NOW)
    return path


def test_inside_a_window_the_swap_is_vetoed_with_the_window_and_file(freeze_file: Path) -> None:
    freeze_file.write_text(
        '[[window]]\nname = "release week"\nstart = 2026-11-30T00:00:00Z\n'
        'end = 2026-12-07T00:00:00Z\nreason = "ask #release first"\n'
    )
    reason = dso_change_freeze.dso_before_swap(event())
    assert reason == (
        "change freeze 'release week' (2026-11-30 00:00 to 2026-12-07 00:00 UTC): "
        f"ask #release first; windows in {freeze_file}"
    )


def test_outside_every_window_or_without_a_file_the_swap_runs(freeze_file: Path) -> None:
    assert dso_change_freeze.dso_before_swap(event()) is None  # no file
    freeze_file.write_text('[[window]]\nname = "fridays"\ndays = ["fri"]\n')  # a Wednesday
    assert dso_change_freeze.dso_before_swap(event()) is None


def test_an_edited_file_is_read_again_and_a_broken_one_fails_closed(freeze_file: Path) -> None:
    freeze_file.write_text('[[window]]\nname = "fridays"\ndays = ["fri"]\n')
    assert dso_change_freeze.dso_before_swap(event()) is None
    freeze_file.write_text('[[window]]\nname = "always"\ndays = ["mon","tue","wed"]\n')
    assert "change freeze 'always'" in (dso_change_freeze.dso_before_swap(event()) or "")
    freeze_file.write_text("[[window]]\nname = \n")
    reason = dso_change_freeze.dso_before_swap(event()) or ""
    assert reason.startswith("the change-freeze file is broken, so every swap waits (fix it):")
    assert str(freeze_file) in reason


def test_the_package_declares_its_dso_entry_point() -> None:
    (entry,) = [
        ep
        for ep in importlib.metadata.entry_points(group="dso")
        if ep.name == "change_freeze_windows"
    ]
    assert entry.load() is dso_change_freeze
