"""Targets of `rotate`: services and containers, their locks, and merging by lock."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from kernel.containers.view import ContainerView
from kernel.errors import DockerNotFoundError
from kernel.rotation.targets import (
    Target,
    container_lock_key,
    describe_spread,
    lock_key_of,
    mixed_services,
    resolve_targets,
    service_containers,
    service_lock_key,
    service_of_lock_key,
    version_spread,
)
from tests.unit.rotation_fixtures import inspect_doc


def compose_doc(name: str, number: int, *, service: str = "web", **labels: str) -> dict[str, Any]:
    doc = inspect_doc(Name=f"/{name}", Id=f"{name}-id")
    doc["Config"]["Labels"] = {
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "False",
        **labels,
    }
    return doc


class FakeApi:
    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs = {d["Name"].lstrip("/"): d for d in docs}
        self.docs.update({d["Id"]: d for d in docs})

    def inspect_container(self, name: str) -> dict[str, Any]:
        if name not in self.docs:
            response = requests.Response()
            response.status_code = 404
            raise docker.errors.NotFound("no such container", response=response)
        return self.docs[name]

    def containers(self, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        wanted = [item.partition("=") for item in filters["label"]]
        found = []
        for doc in {d["Id"]: d for d in self.docs.values()}.values():
            labels = doc["Config"]["Labels"]
            if all and all_match(labels, wanted):
                found.append({"Id": doc["Id"], "Names": [doc["Name"]], "Labels": labels})
        return found


def all_match(labels: dict[str, str], wanted: list[tuple[str, str, str]]) -> bool:
    """Docker's label filter: ``key=value`` matches the value, a bare ``key`` its presence."""
    return all(k in labels and (not eq or labels[k] == v) for k, eq, v in wanted)


class FakeClient:
    def __init__(self, *docs: dict[str, Any]) -> None:
        self.api = FakeApi(*docs)


def test_a_compose_container_locks_its_service_whatever_its_name() -> None:
    replica = ContainerView(compose_doc("shop-web-2", 2))
    clone = ContainerView(compose_doc("shop-web-2_dso_new_1a2b3c4d", 2))
    plain = ContainerView(inspect_doc())
    oneoff = ContainerView(
        compose_doc("shop-web-run-1", 1, **{"com.docker.compose.oneoff": "True"})
    )
    assert lock_key_of(replica) == lock_key_of(clone) == "service-shop.web"
    assert lock_key_of(plain) == container_lock_key("web") == "container-web"
    assert lock_key_of(oneoff) == "container-shop-web-run-1"
    # Project names have no dot, so the key cannot be read two ways.
    assert service_lock_key("a-b", "c") != service_lock_key("a", "b-c")


def test_replicas_in_number_order_without_rotation_leftovers() -> None:
    client = FakeClient(
        compose_doc("shop-web-10", 10),
        compose_doc("shop-web-2", 2),
        compose_doc("shop-web-2_dso_backup_1a2b3c4d", 2),
        compose_doc("shop-web-run-1", 1, **{"com.docker.compose.oneoff": "True"}),
        compose_doc("shop-worker-1", 1, service="worker"),
    )
    views = service_containers(client, "shop", "web")  # type: ignore[arg-type]
    assert [v.name for v in views] == ["shop-web-2", "shop-web-10"]


def test_names_resolve_to_services_and_containers_merged_by_lock() -> None:
    client = FakeClient(
        compose_doc("shop-web-1", 1),
        compose_doc("shop-web-2", 2),
        compose_doc("shop-worker-1", 1, service="worker"),
        inspect_doc(Name="/solo", Id="solo-id"),
    )
    found = resolve_targets(
        client,  # type: ignore[arg-type]
        ["web", "shop-web-2", "solo", "shop-worker-1", "solo"],
        project="shop",
        services=["web", "worker"],
    )
    assert found == [
        Target("web", "service-shop.web", "shop", "web"),
        Target("solo", "container-solo", containers=("solo",)),
        Target("shop-worker-1", "service-shop.worker", "shop", "worker", ("shop-worker-1",)),
    ]
    assert found[0].describe() == "service web (project shop)"
    assert found[2].describe() == "shop-worker-1 (service worker of project shop)"
    two = resolve_targets(client, ["shop-web-1", "shop-web-2"])  # type: ignore[arg-type]
    assert two == [
        Target(
            "shop-web-1 shop-web-2",
            "service-shop.web",
            "shop",
            "web",
            ("shop-web-1", "shop-web-2"),
        )
    ]


def test_unknown_names_and_temporary_containers_are_refused() -> None:
    client = FakeClient(compose_doc("shop-web-1_dso_new_1a2b3c4d", 1))
    with pytest.raises(DockerNotFoundError, match="no container named 'nope'") as caught:
        resolve_targets(client, ["nope"])  # type: ignore[arg-type]
    assert "pass -f/-p" in (caught.value.hint or "")
    with pytest.raises(DockerNotFoundError, match="no service 'api' in project shop"):
        resolve_targets(client, ["api"], project="shop", services=["web"])  # type: ignore[arg-type]
    with pytest.raises(DockerNotFoundError):
        resolve_targets(client, ["shop-web-1_dso_new_1a2b3c4d"])  # type: ignore[arg-type]


def test_replicas_on_different_versions_are_found_and_described() -> None:
    one = compose_doc("shop-web-1", 1, **{"dso.versions": '{"DB_PASSWORD": "local:3"}'})
    two = compose_doc("shop-web-2", 2, **{"dso.versions": '{"DB_PASSWORD": "local:2"}'})
    same = compose_doc("shop-api-1", 1, service="api", **{"dso.versions": '{"T": "local:1"}'})
    also = compose_doc("shop-api-2", 2, service="api", **{"dso.versions": '{"T": "local:1"}'})
    client: Any = FakeClient(one, two, same, also)

    ((target, spread),) = mixed_services(client)

    assert (target.project, target.service, target.lock_key) == ("shop", "web", "service-shop.web")
    assert spread == {
        "shop-web-1": {"DB_PASSWORD": "local:3"},
        "shop-web-2": {"DB_PASSWORD": "local:2"},
    }
    assert (
        describe_spread(spread) == "shop-web-1 DB_PASSWORD=local:3; shop-web-2 DB_PASSWORD=local:2"
    )
    assert version_spread([ContainerView(same), ContainerView(also)]) == {}


def test_service_lock_keys_name_their_service() -> None:
    assert service_of_lock_key(service_lock_key("shop", "web")) == ("shop", "web")
    assert service_of_lock_key(container_lock_key("web")) is None
