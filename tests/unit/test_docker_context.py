"""Which daemon dso talks to: DOCKER_HOST, DOCKER_CONTEXT, the CLI's current context, the socket."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kernel.containers.docker_context import DEFAULT_HOST, Endpoint, resolve_endpoint
from kernel.errors import DockerUnavailableError


def make_context(config: Path, name: str, host: str, *, tls: bool = False) -> None:
    """Write a context the way `docker context create` does."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    doc = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}}
    (meta / "meta.json").write_text(json.dumps(doc))
    if tls:
        (config / "contexts" / "tls" / digest / "docker").mkdir(parents=True)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    make_context(tmp_path, "rootless", "unix:///run/user/1000/docker.sock")
    make_context(tmp_path, "remote", "tcp://10.0.0.5:2376", tls=True)
    return tmp_path


def test_docker_host_wins(config: Path) -> None:
    env = {"DOCKER_CONFIG": str(config), "DOCKER_HOST": "tcp://h:1", "DOCKER_CONTEXT": "rootless"}
    assert resolve_endpoint(env) == Endpoint("tcp://h:1")


def test_docker_context_variable(config: Path) -> None:
    env = {"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "rootless"}
    assert resolve_endpoint(env) == Endpoint("unix:///run/user/1000/docker.sock", "rootless")


def test_current_context_of_the_cli_config(config: Path) -> None:
    (config / "config.json").write_text(json.dumps({"currentContext": "rootless"}))
    assert resolve_endpoint({"DOCKER_CONFIG": str(config)}).context == "rootless"


def test_home_docker_dir_by_default(tmp_path: Path) -> None:
    make_context(tmp_path / ".docker", "rootless", "unix:///r.sock")
    (tmp_path / ".docker" / "config.json").write_text('{"currentContext": "rootless"}')
    assert resolve_endpoint({"HOME": str(tmp_path)}) == Endpoint("unix:///r.sock", "rootless")


@pytest.mark.parametrize("doc", [None, {}, {"currentContext": "default"}, {"auths": {}}])
def test_local_socket_otherwise(config: Path, doc: dict[str, str] | None) -> None:
    if doc is not None:
        (config / "config.json").write_text(json.dumps(doc))
    assert resolve_endpoint({"DOCKER_CONFIG": str(config)}) == Endpoint(DEFAULT_HOST)


def test_unknown_context_names_it_and_the_fix(config: Path) -> None:
    with pytest.raises(DockerUnavailableError, match="context 'nope' does not exist") as info:
        resolve_endpoint({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "nope"})
    assert "docker context ls" in (info.value.hint or "")


def test_tls_context_is_refused_clearly(config: Path) -> None:
    with pytest.raises(DockerUnavailableError, match="'remote' connects with TLS"):
        resolve_endpoint({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "remote"})


def test_broken_cli_config_names_file_and_line(config: Path) -> None:
    (config / "config.json").write_text('{\n  "currentContext": \n}')
    with pytest.raises(DockerUnavailableError, match=r"config.json: not valid JSON \(line 3\)"):
        resolve_endpoint({"DOCKER_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("unix:///run/user/1000/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://localhost:2375", True),
        ("tcp://[::1]:2375", True),
        ("tcp://10.0.0.5:2376", False),
        ("tcp://docker.example.com:2375", False),
        ("ssh://me@host", False),
        ("npipe:////./pipe/docker_engine", False),
    ],
)
def test_is_local(host: str, local: bool) -> None:
    assert Endpoint(host).is_local is local
