"""Where dso finds the Compose plugin binary: where the docker CLI would (docker/cli
cli-plugins/manager: the config's cliPluginsExtraDirs, $DOCKER_CONFIG/cli-plugins, then the
system directories), else ``docker compose``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.compose import plugin


def _binary(directory: Path, *, executable: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "docker-compose"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755 if executable else 0o644)
    return path


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    system = tmp_path / "system"
    monkeypatch.setattr(plugin, "SYSTEM_PLUGIN_DIRS", (str(system / "a"), str(system / "b")))
    monkeypatch.setattr(plugin, "_found", {})
    return system


def test_the_user_config_directory_comes_before_the_system_ones(
    tmp_path: Path, no_system_dirs: Path
) -> None:
    _binary(no_system_dirs / "a")
    mine = _binary(tmp_path / "docker" / "cli-plugins")
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    assert plugin.compose_command(env) == (
        [str(mine), "compose"],
        {"DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND": "docker"},
    )


def test_home_docker_is_the_default_config_directory(tmp_path: Path) -> None:
    mine = _binary(tmp_path / ".docker" / "cli-plugins")
    assert plugin.compose_plugin({"HOME": str(tmp_path)}) == str(mine)


def test_extra_dirs_of_the_config_file_come_first(tmp_path: Path) -> None:
    config = tmp_path / "docker"
    _binary(config / "cli-plugins")
    extra = _binary(tmp_path / "extra")
    config.joinpath("config.json").write_text(
        json.dumps({"cliPluginsExtraDirs": [str(tmp_path / "missing"), str(tmp_path / "extra")]})
    )
    assert plugin.compose_plugin({"DOCKER_CONFIG": str(config)}) == str(extra)


def test_system_directories_in_docker_s_order(tmp_path: Path, no_system_dirs: Path) -> None:
    second = _binary(no_system_dirs / "b")
    env = {"DOCKER_CONFIG": str(tmp_path / "none")}
    assert plugin.compose_plugin(env) == str(second)
    plugin._found.clear()
    first = _binary(no_system_dirs / "a")
    assert plugin.compose_plugin(env) == str(first)


def test_without_a_plugin_docker_compose_runs_it(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "none")}
    assert plugin.compose_command(env) == (["docker", "compose"], {})


def test_a_first_candidate_that_cannot_run_is_left_to_the_docker_cli(tmp_path: Path) -> None:
    # docker takes the first that exists and reports it invalid: so does `docker compose`.
    _binary(tmp_path / "docker" / "cli-plugins", executable=False)
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    assert plugin.compose_command(env) == (["docker", "compose"], {})


def test_an_unreadable_config_file_is_ignored(tmp_path: Path) -> None:
    config = tmp_path / "docker"
    mine = _binary(config / "cli-plugins")
    config.joinpath("config.json").write_text("{not json")
    assert plugin.compose_plugin({"DOCKER_CONFIG": str(config)}) == str(mine)
