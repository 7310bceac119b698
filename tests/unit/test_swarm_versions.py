"""Which Swarm secret versions are in use, and removing the others (kernel.swarm.secret_versions,
kernel.swarm.deploy.retire) against a fake Docker API: no daemon needed."""

from __future__ import annotations

from typing import Any

import docker.errors
import requests

from kernel.secret_value import SecretValue
from kernel.swarm.deploy import retire
from kernel.swarm.secret_versions import create_secret, remove_unused, secret_uses, secrets_in_use

CANARY = "canary-versions-3b9d"


def _secret(name: str, ref: str, created: str) -> dict[str, Any]:
    labels = {"dso.managed": "true", "dso.stack": "shop", "dso.reference": ref}
    return {"ID": f"id-{name}", "CreatedAt": created, "Spec": {"Name": name, "Labels": labels}}


def _spec(*names: str) -> dict[str, Any]:
    return {"TaskTemplate": {"ContainerSpec": {"Secrets": [{"SecretName": n} for n in names]}}}


class FakeApi:
    def __init__(self) -> None:
        self.stored: list[dict[str, Any]] = []
        self.service_list: list[dict[str, Any]] = []
        self.task_list: list[dict[str, Any]] = []
        self.removed: list[str] = []
        self.values: dict[str, bytes] = {}

    def secrets(self, filters: Any = None) -> list[dict[str, Any]]:
        wanted = dict(f.split("=", 1) for f in (filters or {}).get("label", []))
        return [s for s in self.stored if wanted.items() <= (s["Spec"]["Labels"] or {}).items()]

    def services(self, filters: Any = None) -> list[dict[str, Any]]:
        return self.service_list

    def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
        return self.task_list

    def remove_secret(self, name: str) -> None:
        self.removed.append(name)
        self.stored = [s for s in self.stored if s["Spec"]["Name"] != name]

    def create_secret(self, name: str, data: bytes, labels: Any = None) -> dict[str, str]:
        if any(s["Spec"]["Name"] == name for s in self.stored):
            response = requests.Response()
            response.status_code = 409
            raise docker.errors.APIError("conflict", response=response, explanation="exists")
        self.values[name] = data
        self.stored.append(_secret(name, labels["dso.reference"], "2026-01-09"))
        return {"ID": f"id-{name}"}


class FakeDocker:
    def __init__(self) -> None:
        self.api = FakeApi()


def test_a_version_is_used_by_specs_updates_that_may_roll_back_and_live_tasks() -> None:
    client = FakeDocker()
    client.api.service_list = [
        {"ID": "s1", "Spec": {"Name": "shop_web", **_spec("v3")}, "PreviousSpec": _spec("v2"),
         "UpdateStatus": {"State": "updating"}},
        {"ID": "s2", "Spec": {"Name": "shop_api", **_spec("v3")}, "PreviousSpec": _spec("v1"),
         "UpdateStatus": {"State": "completed"}},
    ]  # fmt: skip
    client.api.task_list = [
        {"ServiceID": "s2", "Status": {"State": "running"}, "Spec": _spec("v0")["TaskTemplate"]},
        {"ServiceID": "s2", "Status": {"State": "shutdown"}, "Spec": _spec("v1")["TaskTemplate"]},
    ]
    uses = {(u.service, u.secret, u.via) for u in secret_uses(client)}  # type: ignore[arg-type]
    assert uses == {
        ("shop_web", "v3", "spec"),
        ("shop_web", "v2", "previous"),
        ("shop_api", "v3", "spec"),
        ("shop_api", "v0", "task"),
    }
    assert secrets_in_use(client) == {"v0", "v2", "v3"}  # type: ignore[arg-type]
    client.api.stored = [_secret(n, "dsofile://a", "2026-01-0" + n[1]) for n in ("v1", "v2")]
    assert remove_unused(client, ["v1", "v2", "v1"]) == ["v1"]  # type: ignore[arg-type]
    assert client.api.removed == ["v1"]


def test_deploy_sweeps_keep_the_newest_version_of_each_reference_stack_rm_does_not() -> None:
    client = FakeDocker()
    client.api.stored = [
        _secret("a1", "dsofile://a", "2026-01-01"),
        _secret("b1", "dsofile://b", "2026-01-02"),
        _secret("a2", "dsofile://a", "2026-01-03"),
        _secret("a3", "dsofile://a", "2026-01-04"),  # a rotation just created it: not yet used
    ]
    client.api.service_list = [{"ID": "s", "Spec": {"Name": "shop_web", **_spec("a2", "b1")}}]
    removed, kept = retire(client, "shop", keep=["a2"])  # type: ignore[arg-type]
    assert (removed, kept) == (["a1"], [])
    client.api.service_list = []
    removed, kept = retire(client, "shop", keep_newest=False)  # type: ignore[arg-type]
    assert (removed, kept) == (["b1", "a2", "a3"], [])


def test_creating_an_existing_version_returns_it_and_the_value_only_goes_to_the_api() -> None:
    client = FakeDocker()
    labels = {"dso.managed": "true", "dso.stack": "shop", "dso.reference": "dsofile://a"}
    first = create_secret(client, "shop_a_0123456789", SecretValue(CANARY), labels)  # type: ignore[arg-type]
    again = create_secret(client, "shop_a_0123456789", SecretValue("other"), labels)  # type: ignore[arg-type]
    assert first == again and first.reference == "dsofile://a"
    assert client.api.values == {"shop_a_0123456789": CANARY.encode()}
    assert CANARY not in repr(first)
