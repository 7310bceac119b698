"""What the agent queues again after a rotation (kernel.agent.deliveries)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel.agent.deliveries import Deliveries


@dataclass
class Outcome:
    rotation_id: str | None


@dataclass
class Result:
    ok: bool
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class Entry:
    cause: str | None


class Journal:
    def __init__(self, causes: dict[str, str | None]) -> None:
        self.causes = causes

    def get(self, rotation_id: str) -> Entry | None:
        return Entry(self.causes[rotation_id]) if rotation_id in self.causes else None


V2 = {"dso://app/db": "local:2"}
V3 = {"dso://app/db": "local:3"}


def test_a_target_queued_for_these_versions_is_not_queued_twice() -> None:
    deliveries = Deliveries()
    assert deliveries.claim("shop/web", V2)
    assert not deliveries.claim("shop/web", V2)
    assert deliveries.claim("shop/web", V3)  # the versions moved meanwhile


def test_a_health_gate_failure_is_not_retried_until_a_version_moves() -> None:
    deliveries = Deliveries()
    deliveries.claim("shop/web", V2)
    failed = Result(ok=False, outcomes=[Outcome("r1")])
    deliveries.settle("shop/web", failed, Journal({"r1": "health_gate"}))  # type: ignore[arg-type]
    assert deliveries.failed_before("shop/web", V2)
    assert not deliveries.failed_before("shop/web", V3)
    assert deliveries.claim("shop/web", V3)
    assert not deliveries.failed_before("shop/web", V2)  # a new attempt clears it


def test_a_rotation_stopped_by_a_lost_daemon_is_retried() -> None:
    deliveries = Deliveries()
    deliveries.claim("shop/web", V2)
    stopped = Result(ok=False, outcomes=[Outcome("r1")])
    deliveries.settle("shop/web", stopped, Journal({"r1": "docker_lost"}))  # type: ignore[arg-type]
    assert not deliveries.failed_before("shop/web", V2)
    assert deliveries.claim("shop/web", V2)


def test_an_abandoned_rotation_is_claimed_again() -> None:
    deliveries = Deliveries()
    deliveries.claim("shop/web", V2)
    deliveries.abandon("shop/web")
    assert deliveries.claim("shop/web", V2)
