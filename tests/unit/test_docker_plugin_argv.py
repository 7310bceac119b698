"""How docker hands argv to the plugin (docker/cli cli-plugins conventions)."""

from __future__ import annotations

import pytest

from kernel.cli.docker_plugin import METADATA, plugin_argv


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
