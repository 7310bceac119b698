"""Which installation a command without ``--mode`` works on (kernel.paths.installation_mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel import paths
from kernel.paths import installation_mode


@pytest.fixture
def system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The agent layout's configuration moved to a temporary path (tests never read /etc/dso)."""
    config = tmp_path / "etc" / "dso.yaml"
    real = paths.agent_layout

    def moved() -> paths.Layout:
        layout = real()
        return paths.Layout(
            **{**{f: getattr(layout, f) for f in layout.__slots__}, "config": config}
        )

    monkeypatch.setattr(paths, "agent_layout", moved)
    return config


def test_dso_mode_wins(system_config: Path) -> None:
    system_config.parent.mkdir()
    system_config.write_text("version: 1\n")
    assert installation_mode(None, {"DSO_MODE": "local"}) == "local"
    assert installation_mode(Path("/elsewhere.yaml"), {"DSO_MODE": "agent"}) == "agent"


def test_a_dso_home_is_local_even_on_an_agent_host(system_config: Path) -> None:
    system_config.parent.mkdir()
    system_config.write_text("version: 1\n")
    assert installation_mode(None, {"DSO_HOME": "/tmp/home"}) == "local"


def test_the_host_agent_config_in_use_means_agent(system_config: Path) -> None:
    assert installation_mode(None, {}) == "local"  # not bootstrapped
    system_config.parent.mkdir()
    system_config.write_text("version: 1\n")
    assert installation_mode(None, {}) == "agent"
    assert installation_mode(system_config, {}) == "agent"
    assert installation_mode(system_config.parent / "other.yaml", {}) == "local"


def test_an_unknown_dso_mode_is_ignored(system_config: Path) -> None:
    assert installation_mode(None, {"DSO_MODE": "bogus"}) == "local"
