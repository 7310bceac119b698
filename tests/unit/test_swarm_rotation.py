"""The pure parts of Swarm rotations: what a service mounts, the swapped task template, the plan,
the time allowed, what recovery resumes (no Docker: the engine's JSON as the API returns it)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from kernel.errors import SecretNotFoundError
from kernel.injection.resolver import Outcome, Resolved
from kernel.reference import SecretReference, parse_reference
from kernel.rotation.journal import Journal, RotationEntry
from kernel.rotation.recovery import resume_targets
from kernel.secret_value import SecretValue
from kernel.swarm.convergence import rollback_cause, wait_converged
from kernel.swarm.plan import plan_swaps, swapped_template
from kernel.swarm.recovery import resume_swarm_targets, unfinished_swarm_targets
from kernel.swarm.secret_versions import SwarmSecret, fingerprint, secret_name
from kernel.swarm.services import SwarmService
from kernel.swarm.targets import service_of_swarm_lock, swarm_lock_key

REF = "dsofile://shop/site"
CANARY = "canary-swarm-7c1e"


def _secret(name: str, version: str) -> SwarmSecret:
    return SwarmSecret(
        id=f"id-{name}",
        name=name,
        stack="shop",
        secret="shop_site",
        reference=REF,
        version=version,
        created="2026-01-01T00:00:00Z",
    )


def _doc(secret: str, *, other: str = "plain") -> dict[str, Any]:
    return {
        "ID": "svc1",
        "Version": {"Index": 41},
        "Spec": {
            "Name": "shop_web",
            "Labels": {"com.docker.stack.namespace": "shop"},
            "Mode": {"Replicated": {"Replicas": 4}},
            "UpdateConfig": {"Parallelism": 2, "Order": "start-first", "Monitor": 5 * 10**9},
            "TaskTemplate": {
                "ForceUpdate": 3,
                "ContainerSpec": {
                    "Image": "busybox",
                    "Secrets": [
                        {
                            "File": {
                                "Name": "/run/secrets/site",
                                "UID": "33",
                                "GID": "33",
                                "Mode": 256,
                            },
                            "SecretID": f"id-{secret}",
                            "SecretName": secret,
                        },
                        {
                            "File": {
                                "Name": "/run/secrets/other",
                                "UID": "0",
                                "GID": "0",
                                "Mode": 292,
                            },
                            "SecretID": "id-other",
                            "SecretName": other,
                        },
                    ],
                },
            },
        },
        "UpdateStatus": {"State": "completed", "StartedAt": "2026-01-01T00:00:01Z"},
    }


class FakeResolver:
    def __init__(self, version: str | None) -> None:
        self.version = version
        self.asked: list[SecretReference] = []

    def provider_of(self, ref: SecretReference) -> str:
        return "local"

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        self.asked += refs
        if self.version is None:
            return {r: SecretNotFoundError(f"no secret {r.path}") for r in refs}
        return {r: Resolved(SecretValue(CANARY), self.version, "local") for r in refs}


def _name_at(version: str) -> str:
    ref = parse_reference(REF)
    resolved = Resolved(SecretValue(CANARY), version, "local")
    return secret_name("shop", "shop_site", fingerprint(ref, resolved))


def test_a_service_mounts_only_dsos_secrets() -> None:
    old = _name_at("1")
    service = SwarmService.from_api(_doc(old), {old: _secret(old, "local:1")})
    assert (service.name, service.stack, service.version, service.replicas) == (
        "shop_web",
        "shop",
        41,
        4,
    )
    assert [m.target for m in service.mounted] == ["/run/secrets/site"]
    assert service.secret_names() == {old, "plain"}


def test_a_new_version_is_one_swap_and_the_same_version_none() -> None:
    old = _name_at("1")
    service = SwarmService.from_api(_doc(old), {old: _secret(old, "local:1")})
    resolver = FakeResolver("2")
    swaps, unchanged = plan_swaps(service, resolver)
    assert [(s.old.name, s.new_name) for s in swaps] == [(old, _name_at("2"))]
    assert swaps[0].labels["dso.version"] == "local:2"
    assert CANARY not in repr(swaps) and CANARY not in str(swaps[0].labels)
    assert unchanged == []
    assert plan_swaps(service, FakeResolver("1")) == ([], [REF])


def test_a_reference_that_does_not_resolve_stops_the_plan() -> None:
    old = _name_at("1")
    service = SwarmService.from_api(_doc(old), {old: _secret(old, "local:1")})
    with pytest.raises(SecretNotFoundError):
        plan_swaps(service, FakeResolver(None))


def test_the_swapped_template_keeps_path_owner_mode_and_the_rest() -> None:
    old = _name_at("1")
    doc = _doc(old)
    service = SwarmService.from_api(doc, {old: _secret(old, "local:1")})
    template = swapped_template(service, {old: ("shop_shop_site_new", "id-new")})
    site, other = template["ContainerSpec"]["Secrets"]
    assert site == {
        "File": {"Name": "/run/secrets/site", "UID": "33", "GID": "33", "Mode": 256},
        "SecretID": "id-new",
        "SecretName": "shop_shop_site_new",
    }
    assert other["SecretName"] == "plain"
    assert template["ForceUpdate"] == 3 and template["ContainerSpec"]["Image"] == "busybox"
    # The service's own spec is not changed (a retry starts from it).
    assert doc["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"] == old


def test_lock_keys() -> None:
    assert swarm_lock_key("shop_web") == "swarm-shop_web"
    assert service_of_swarm_lock("swarm-shop_web") == "shop_web"
    assert service_of_swarm_lock("service-shop.web") is None


def test_recovery_resumes_swarm_entries_as_services_and_containers_apart() -> None:
    swarm = RotationEntry(
        id="a1", trace_id="t", target="shop_web", strategy="swarm",
        lock_key="swarm-shop_web", swarm={"stack": "shop", "service_id": "svc1"},
    )  # fmt: skip
    rolling = RotationEntry(
        id="a2", trace_id="t", target="shop-web-1", strategy="rolling",
        lock_key="service-shop.web",
    )  # fmt: skip
    [target] = resume_swarm_targets([swarm, rolling])
    assert (target.name, target.lock_key, target.project, target.service) == (
        "shop_web",
        "swarm-shop_web",
        "shop",
        "shop_web",
    )
    assert [t.lock_key for t in resume_targets([swarm, rolling])] == ["service-shop.web"]


def test_a_swarm_entry_round_trips_through_the_journal_document() -> None:
    entry = RotationEntry(
        id="a1", trace_id="t", target="shop_web", strategy="swarm",
        swarm={"secrets": {"/run/secrets/site": {"from": "a", "to": "b"}}},
    )  # fmt: skip
    assert RotationEntry.from_dict(entry.to_dict()).swarm == entry.swarm


@pytest.mark.parametrize(
    ("task_error", "cause"),
    [
        ("task: non-zero exit (143): dockerexec: unhealthy container", "health_gate"),
        ("task: non-zero exit (1)", "health_gate"),
        (None, "health_gate"),
        ("network sandbox does not exist for container shop_api.1.q53h4l8m", "docker"),
        ("no suitable node (scheduling constraints not satisfied on 1 node)", "docker"),
    ],
)
def test_an_engine_rollback_is_final_only_when_a_task_failed_its_health(
    task_error: str | None, cause: str
) -> None:
    assert rollback_cause(task_error) == cause


def test_unfinished_swarm_rotations_are_handed_to_the_scheduler(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.save(
        RotationEntry(
            id="s1", trace_id="t", target="shop_web", strategy="swarm",
            lock_key="swarm-shop_web", swarm={"stack": "shop"},
        )
    )  # fmt: skip
    journal.save(
        RotationEntry(
            id="c1", trace_id="t", target="shop-web-1", strategy="rolling",
            lock_key="service-shop.web",
        )
    )  # fmt: skip
    [target] = unfinished_swarm_targets(journal)
    assert (target.lock_key, target.project) == ("swarm-shop_web", "shop")


def test_a_stopping_agent_stops_waiting_for_the_engine_at_once() -> None:
    stop = threading.Event()
    stop.set()
    done = wait_converged(
        cast(Any, None), "svc1", since_version=1, prior_started=None, timeout=60, stop=stop
    )
    assert (done.state, done.seconds < 1) == ("stopped", True)
