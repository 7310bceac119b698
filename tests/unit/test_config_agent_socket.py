"""``agent.socket`` without a full load (kernel.config.agent_socket): the same answer and the
same errors as ``load_config``, and the record trusted only while the file is unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel.config import agent_socket, load_config
from kernel.config.agent_socket import RECORD_NAME, configured_socket, recorded_socket
from kernel.errors import ConfigError, ConfigPermissionError

WITH_SOCKET = "version: 1\nagent:\n  socket: {path}\n"


@pytest.fixture
def cache(dso_home: Path) -> Path:
    path = dso_home / "cache"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (else only after agent_socket.SETTLE seconds)."""
    monkeypatch.setattr(agent_socket, "SETTLE", 0.0)


def write_config(dso_home: Path, text: str, mode: int = 0o600) -> Path:
    path = dso_home / "config.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def loading_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the configuration was loaded")

    monkeypatch.setattr(agent_socket, "load_config", fail)


def test_without_a_file_the_socket_is_not_set_and_nothing_is_recorded(cache: Path) -> None:
    assert configured_socket(None, cache) is None
    assert recorded_socket(None, cache) == (True, None)
    assert not (cache / RECORD_NAME).exists()


@pytest.mark.usefixtures("settled")
def test_a_valid_file_is_loaded_once_then_answered_from_its_record(
    dso_home: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(dso_home, WITH_SOCKET.format(path="/run/elsewhere/agent.sock"))
    assert recorded_socket(None, cache) == (False, None)

    assert configured_socket(None, cache) == Path("/run/elsewhere/agent.sock")

    record = cache / RECORD_NAME
    assert record.stat().st_mode & 0o777 == 0o600
    loading_fails(monkeypatch)
    assert configured_socket(None, cache) == Path("/run/elsewhere/agent.sock")
    assert recorded_socket(None, cache) == (True, Path("/run/elsewhere/agent.sock"))


@pytest.mark.usefixtures("settled")
def test_a_file_without_agent_socket_is_recorded_as_not_setting_it(
    dso_home: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(dso_home, "version: 1\n")
    assert configured_socket(None, cache) is None
    loading_fails(monkeypatch)
    assert recorded_socket(None, cache) == (True, None)


def test_a_file_changed_moments_ago_is_not_recorded(dso_home: Path, cache: Path) -> None:
    # A second write inside one tick of the file system's clock could keep the stamp.
    write_config(dso_home, WITH_SOCKET.format(path="/run/a.sock"))
    assert configured_socket(None, cache) == Path("/run/a.sock")
    assert not (cache / RECORD_NAME).exists()


@pytest.mark.usefixtures("settled")
def test_a_changed_file_is_loaded_again(dso_home: Path, cache: Path) -> None:
    write_config(dso_home, WITH_SOCKET.format(path="/run/a.sock"))
    assert configured_socket(None, cache) == Path("/run/a.sock")

    write_config(dso_home, WITH_SOCKET.format(path="/run/longer/b.sock"))

    assert recorded_socket(None, cache) == (False, None)
    assert configured_socket(None, cache) == Path("/run/longer/b.sock")


@pytest.mark.usefixtures("settled")
def test_a_recorded_file_made_group_writable_is_refused_as_load_config_refuses_it(
    dso_home: Path, cache: Path
) -> None:
    path = write_config(dso_home, WITH_SOCKET.format(path="/run/a.sock"))
    assert configured_socket(None, cache) == Path("/run/a.sock")

    path.chmod(0o620)

    with pytest.raises(ConfigPermissionError) as expected:
        load_config(None)
    with pytest.raises(ConfigPermissionError) as raised:
        configured_socket(None, cache)
    assert str(raised.value) == str(expected.value)
    assert "group-writable" in str(raised.value)


@pytest.mark.usefixtures("settled")
def test_an_invalid_file_raises_what_load_config_raises_every_time(
    dso_home: Path, cache: Path
) -> None:
    write_config(dso_home, "version: 1\nagent:\n  socket: relative.sock\n  bogus: 1\n")
    with pytest.raises(ConfigError) as expected:
        load_config(None)
    for _ in range(2):
        with pytest.raises(ConfigError) as raised:
            configured_socket(None, cache)
        assert str(raised.value) == str(expected.value)
    assert not (cache / RECORD_NAME).exists()


@pytest.mark.usefixtures("settled")
def test_a_file_reading_the_environment_is_never_recorded(
    dso_home: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ${VAR} makes the verdict depend on the environment, which the stamp does not hold.
    write_config(dso_home, "version: 1\nagent:\n  socket: ${SOCK_DIR}/agent.sock\n")
    monkeypatch.setenv("SOCK_DIR", "/run/one")
    assert configured_socket(None, cache) == Path("/run/one/agent.sock")
    assert not (cache / RECORD_NAME).exists()

    monkeypatch.delenv("SOCK_DIR")
    with pytest.raises(ConfigError, match="SOCK_DIR is not set"):
        configured_socket(None, cache)


@pytest.mark.usefixtures("settled")
@pytest.mark.parametrize("tamper", ["world-writable", "symlink", "garbage"])
def test_a_record_dso_cannot_trust_is_ignored(
    dso_home: Path, cache: Path, tmp_path: Path, tamper: str
) -> None:
    write_config(dso_home, WITH_SOCKET.format(path="/run/a.sock"))
    configured_socket(None, cache)
    record = cache / RECORD_NAME
    if tamper == "world-writable":
        record.chmod(0o666)
    elif tamper == "symlink":
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_bytes(record.read_bytes())
        record.unlink()
        record.symlink_to(elsewhere)
    else:
        record.write_text("{not json")

    assert recorded_socket(None, cache) == (False, None)


@pytest.mark.usefixtures("settled")
def test_an_explicit_file_beats_the_record_of_another(dso_home: Path, cache: Path) -> None:
    write_config(dso_home, WITH_SOCKET.format(path="/run/a.sock"))
    configured_socket(None, cache)
    other = dso_home / "other.yaml"
    other.write_text(WITH_SOCKET.format(path="/run/other.sock"))
    other.chmod(0o600)

    assert recorded_socket(other, cache) == (False, None)
    assert configured_socket(other, cache) == Path("/run/other.sock")
    with pytest.raises(ConfigError, match="configuration file not found"):
        configured_socket(dso_home / "missing.yaml", cache)


@pytest.mark.usefixtures("settled")
def test_without_a_cache_directory_nothing_is_recorded(dso_home: Path) -> None:
    dso_home.mkdir(parents=True, exist_ok=True)
    write_config(dso_home, WITH_SOCKET.format(path="/run/a.sock"))
    assert configured_socket(None, dso_home / "cache") == Path("/run/a.sock")
    assert not (dso_home / "cache").exists()
    assert os.listdir(dso_home) == ["config.yaml"]
