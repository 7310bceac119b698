"""The restart strategy for a container that cannot run twice: a fixed published host port."""

from __future__ import annotations

import urllib.request

import pytest

from tests.integration.rotation_support import (
    Scope,
    engine_factory,
    env_changes,
    free_port,
    scope,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["engine_factory", "scope"]


def get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.read().decode().strip()
    except OSError:
        return None


def test_published_port_rotates_with_restart(scope: Scope, engine_factory) -> None:
    port = free_port()
    network = scope.network("net")
    web = scope.web("web", network, msg="old", ports={"80/tcp": ("127.0.0.1", port)})
    wait_for(lambda: get(port) == "old")

    outcome = engine_factory().rotate(web.name, env_changes(MSG="new"))

    assert outcome.status == "completed", outcome.error
    assert outcome.plan is not None and outcome.plan.strategy.value == "restart"
    assert f"published host port 127.0.0.1:{port}->80/tcp" in outcome.plan.reason
    assert get(port) == "new"
    assert scope.names() == [web.name]
    new = scope.inspect(web.name)
    assert new["Id"] == outcome.new_id != web.id
    assert new["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    }


def test_failed_restart_brings_the_old_container_back(scope: Scope, engine_factory) -> None:
    port = free_port()
    network = scope.network("net")
    web = scope.web("web", network, msg="old", ports={"80/tcp": ("127.0.0.1", port)})
    wait_for(lambda: get(port) == "old")

    outcome = engine_factory(timeout=3.0, retries=2).rotate(web.name, env_changes(MSG="bad"))

    assert outcome.status == "rolled_back", outcome.error
    assert outcome.plan is not None and outcome.plan.strategy.value == "restart"
    assert wait_for(lambda: get(port) == "old", timeout=5)
    assert scope.names() == [web.name]
    assert scope.inspect(web.name)["Id"] == web.id
