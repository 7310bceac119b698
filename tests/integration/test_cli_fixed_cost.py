"""Less fixed cost per command (issue 13, item 2), against the real daemon and Compose plugin:
the image's USER read on the daemon's socket is what `docker image inspect` says, compose run
as the plugin binary answers as `docker compose` does, one negotiated connection serves a
command's Docker clients."""

from __future__ import annotations

import os
import subprocess

import pytest

from kernel.compose.plugin import compose_command
from kernel.containers.client import SharedConnection, connect
from kernel.containers.daemon_info import image_user

pytestmark = pytest.mark.integration

IMAGE = "dso-test/busybox:1"


def _inspect_user(image: str) -> str | None:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format={{.Config.User}}", "--", image],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def test_image_user_on_the_socket_is_docker_image_inspect_s() -> None:
    for image in (IMAGE, f"docker.io/{IMAGE}", "dso-test/no-such-image:0"):
        assert image_user(image, os.environ) == _inspect_user(image), image


def test_compose_runs_as_the_plugin_binary_like_docker_compose() -> None:
    compose, extra = compose_command(os.environ)
    assert compose[0] != "docker", "the Compose plugin is installed here"
    direct = subprocess.run(
        [*compose, "version", "--short"],
        env={**os.environ, **extra},
        capture_output=True,
        text=True,
        check=True,
    )
    through_docker = subprocess.run(
        ["docker", "compose", "version", "--short"], capture_output=True, text=True, check=True
    )
    assert direct.stdout == through_docker.stdout


def test_one_connection_hands_out_its_client_then_clients_on_its_api_version() -> None:
    first = connect()
    shared = SharedConnection(first)
    try:
        assert shared.connect() is first
        second = shared.connect()
        try:
            assert second is not first
            assert second.api.api_version == first.api.api_version
            assert second.ping()
        finally:
            second.close()
    finally:
        first.close()
        shared.close()
