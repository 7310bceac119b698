"""The doctor's Swarm checks (``swarm.node``, ``swarm.secrets``) on a fake Docker client."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.doctor import Status
from kernel.paths import Layout
from tests.unit.doctor_support import check, home, make_context  # noqa: F401

LABELS = {"dso.managed": "true", "dso.stack": "shop", "dso.secret": "site"}


class FakeSwarmApi:
    def __init__(self, secrets: list[str], services: list[list[str]]) -> None:
        self._secrets = secrets
        self._services = services

    def secrets(self, filters: Any = None) -> list[dict[str, Any]]:
        assert filters == {"label": ["dso.managed=true"]}
        return [
            {"ID": n, "CreatedAt": f"2026-01-0{i + 1}", "Spec": {"Name": n, "Labels": LABELS}}
            for i, n in enumerate(self._secrets)
        ]

    def services(self, filters: Any = None) -> list[dict[str, Any]]:
        return [
            {
                "ID": f"s{i}",
                "Spec": {
                    "Name": f"shop_{i}",
                    "TaskTemplate": {
                        "ContainerSpec": {"Secrets": [{"SecretName": n} for n in names]}
                    },
                },
            }
            for i, names in enumerate(self._services)
        ]

    def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
        return []


class FakeSwarmDocker:
    def __init__(
        self,
        state: str,
        manager: bool,
        secrets: list[str] = (),
        services: list[list[str]] = (),  # type: ignore[assignment]
    ) -> None:
        self._swarm = {"LocalNodeState": state, "ControlAvailable": manager, "NodeID": "n" * 25}
        self.api = FakeSwarmApi(list(secrets), list(services))

    def info(self) -> dict[str, Any]:
        return {"Swarm": self._swarm}


@pytest.mark.parametrize(
    ("state", "manager", "status", "text"),
    [
        ("inactive", False, Status.OK, "not part of a swarm"),
        ("active", True, Status.OK, "swarm manager (node nnnnnnnnnnnn)"),
        ("active", False, Status.OK, "swarm worker"),
        ("pending", False, Status.WARN, "joining a swarm"),
        ("locked", False, Status.FAIL, "swarm state is locked"),
    ],
)
def test_swarm_node(home: Layout, state: str, manager: bool, status: Status, text: str) -> None:  # noqa: F811
    ctx = make_context(home, docker=FakeSwarmDocker(state, manager))
    found, finding, _, _ = check(ctx, "swarm.node")
    assert found is status and text in finding


def test_swarm_secrets_only_on_a_manager(home: Layout) -> None:  # noqa: F811
    ctx = make_context(home, docker=FakeSwarmDocker("inactive", False))
    assert check(ctx, "swarm.secrets")[:2] == (
        Status.OK,
        "not in a swarm: no swarm secrets to check",
    )
    ctx = make_context(home, docker=FakeSwarmDocker("active", False))
    status, finding, _, _ = check(ctx, "swarm.secrets")
    assert status is Status.OK and "a swarm worker" in finding


def test_swarm_secrets_warns_of_versions_nothing_uses(home: Layout) -> None:  # noqa: F811
    docker = FakeSwarmDocker("active", True, ["shop_site_a", "shop_site_b"], [["shop_site_b"]])
    status, finding, _, fix = check(make_context(home, docker=docker), "swarm.secrets")
    assert status is Status.WARN
    assert finding == (
        "2 dso secret versions for 1 stack (shop); 1 used by no service or task: shop_site_a"
    )
    assert "stack rm" in fix
    docker = FakeSwarmDocker("active", True, ["shop_site_b"], [["shop_site_b"], ["shop_site_b"]])
    status, finding, _, _ = check(make_context(home, docker=docker), "swarm.secrets")
    assert (status, finding) == (Status.OK, "1 dso secret version for 1 stack (shop)")
    docker = FakeSwarmDocker("active", True)
    assert check(make_context(home, docker=docker), "swarm.secrets")[:2] == (
        Status.OK,
        "no dso swarm secrets",
    )
