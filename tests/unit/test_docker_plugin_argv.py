"""How docker hands argv to the plugin (docker/cli cli-plugins conventions)."""

from __future__ import annotations

import pytest

from kernel.cli.docker_plugin import METADATA, DockerFlagError, docker_globals, plugin_argv


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["docker-cli-plugin-metadata"], None),
        (["dso", "version", "--json"], ["version", "--json"]),
        (["dso"], []),
        (["help", "dso"], ["--help"]),
        (["help", "dso", "secret"], ["secret", "--help"]),
        (["version"], ["version"]),  # run directly, not through docker
    ],
)
def test_plugin_argv(argv: list[str], expected: list[str] | None) -> None:
    assert plugin_argv(argv) == expected


def test_metadata_has_the_fields_docker_requires() -> None:
    assert METADATA["SchemaVersion"] == "0.1.0"
    assert METADATA["Vendor"]
    assert METADATA["ShortDescription"]
    assert METADATA["Version"]


@pytest.mark.parametrize(
    ("argv", "env", "rest"),
    [
        (["dso", "ps"], {}, ["dso", "ps"]),
        (["-H", "unix:///x.sock", "dso", "up"], {"DOCKER_HOST": "unix:///x.sock"}, ["dso", "up"]),
        (["--host=tcp://h:2375", "dso"], {"DOCKER_HOST": "tcp://h:2375"}, ["dso"]),
        (["-Hunix:///y.sock", "dso"], {"DOCKER_HOST": "unix:///y.sock"}, ["dso"]),
        (
            ["--context", "rootless", "dso"],
            {"DOCKER_CONTEXT": "rootless", "DOCKER_HOST": None},
            ["dso"],
        ),
        (["-c", "default", "dso"], {"DOCKER_CONTEXT": "default"}, ["dso"]),
        (["--config", "/etc/dc", "dso"], {"DOCKER_CONFIG": "/etc/dc"}, ["dso"]),
        (["-D", "dso"], {"DSO_LOG_LEVEL": "debug"}, ["dso"]),
        (["--debug=false", "dso"], {}, ["dso"]),
        (["--tls=false", "-H", "unix:///a", "dso"], {"DOCKER_HOST": "unix:///a"}, ["dso"]),
        (["-l", "warn", "dso"], {"DSO_LOG_LEVEL": "warning"}, ["dso"]),
        (["--log-level=fatal", "dso"], {"DSO_LOG_LEVEL": "error"}, ["dso"]),
        (["-H", "unix:///a", "help", "dso"], {"DOCKER_HOST": "unix:///a"}, ["help", "dso"]),
    ],
)
def test_docker_global_flags_become_environment(
    argv: list[str], env: dict[str, str | None], rest: list[str]
) -> None:
    assert docker_globals(argv) == (env, rest)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tlsverify", "dso"], "does not connect to the Docker daemon over TLS"),
        (["--tlscacert", "ca.pem", "dso"], "does not connect to the Docker daemon over TLS"),
        (["-H"], "docker flag -H needs a value"),
        (["--orchestrator", "swarm", "dso"], "unknown docker flag --orchestrator"),
        (["-H", "unix:///a", "--context", "x", "dso"], "either --host or --context"),
    ],
)
def test_docker_global_flags_dso_cannot_honour(argv: list[str], message: str) -> None:
    with pytest.raises(DockerFlagError, match=message):
        docker_globals(argv)
