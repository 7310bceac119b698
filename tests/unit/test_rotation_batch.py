"""Batch: one lock per target held across its replicas, replicas in order and stopped at the
first failure, targets in parallel (bounded) and independent. The engine is a fake here; the
real thing runs in tests/integration/test_rotation_service*.py."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kernel.config.model import RotationConfig
from kernel.containers.view import ContainerView
from kernel.errors import RotationBusyError, UsageError
from kernel.rotation.batch import Batch, BatchSettings, parallel_of
from kernel.rotation.journal import Journal
from kernel.rotation.locks import TargetLocks
from kernel.rotation.model import NullObserver, Outcome
from kernel.rotation.targets import Target
from tests.unit.rotation_fixtures import inspect_doc


def replica(service: str, number: int) -> ContainerView:
    doc = inspect_doc(Name=f"/shop-{service}-{number}", Id=f"{service}{number}")
    doc["Config"]["Labels"] = {
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": service,
    }
    return ContainerView(doc)


class Client:
    def close(self) -> None:
        pass


class Resolver:
    def provider_of(self, ref: Any) -> str:
        return "local"

    def resolve(self, refs: Any) -> dict[Any, Any]:
        return {}


class Recorder:
    """What the fake engine saw: calls in order, and the most targets rotating at once."""

    def __init__(self, failing: set[str], delay: float = 0.0) -> None:
        self.failing = failing
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.settled: list[str] = []
        self.stop_after_first: threading.Event | None = None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(set())

    class FakeEngine:
        def __init__(self, client: Any, **kwargs: Any) -> None:
            self.client = client

        def settle(self, key: str) -> list[Any]:
            with rec.lock:
                rec.settled.append(key)
            return []

        def rotate_locked(self, view: Any, fetch: Any, *, lock: Any, **kwargs: Any) -> Outcome:
            name = view.name
            with rec.lock:
                rec.calls.append((name, lock.target))
                rec.running += 1
                rec.most = max(rec.most, rec.running)
            time.sleep(rec.delay)
            with rec.lock:
                rec.running -= 1
            if rec.stop_after_first is not None:
                rec.stop_after_first.set()  # as SIGTERM to the agent during this rotation
            status = "rolled_back" if name in rec.failing else "completed"
            return Outcome(target=name, status=status)

    views = {s: [replica(s, n) for n in (1, 2, 3)] for s in ("web", "api", "db", "mq", "log")}
    monkeypatch.setattr("kernel.rotation.batch.RotationEngine", FakeEngine)
    monkeypatch.setattr(
        "kernel.rotation.batch.service_containers", lambda client, project, service: views[service]
    )
    return rec


def batch(tmp_path: Path, concurrency: int = 4) -> Batch:
    settings = BatchSettings(
        journal=Journal(tmp_path / "state"),
        locks=TargetLocks(tmp_path / "locks"),
        config=RotationConfig(),
        observer=NullObserver(),
        wait=0.0,
        concurrency=concurrency,
    )
    return Batch(settings, connect=Client, resolver=Resolver())  # type: ignore[arg-type]


def service(name: str) -> Target:
    return Target(name, f"service-shop.{name}", "shop", name)


def test_replicas_in_order_under_one_lock_stopping_at_the_first_failure(
    tmp_path: Path, recorder: Recorder
) -> None:
    recorder.failing = {"shop-web-2"}

    (result,) = batch(tmp_path).run([service("web")])

    assert recorder.calls == [
        ("shop-web-1", "service-shop.web"),
        ("shop-web-2", "service-shop.web"),
    ]
    assert [(o.target, o.status) for o in result.outcomes] == [
        ("shop-web-1", "completed"),
        ("shop-web-2", "rolled_back"),
        ("shop-web-3", "skipped"),
    ]
    assert result.status == "failed" and not result.ok
    assert result.outcomes[2].service == "web"
    # Retention and recovery of a crashed rotation: once per target, under its lock.
    assert recorder.settled == ["service-shop.web"]


def test_a_stop_request_starts_no_further_replica(tmp_path: Path, recorder: Recorder) -> None:
    stop = recorder.stop_after_first = threading.Event()
    settings = dataclasses.replace(batch(tmp_path).settings, stop=stop)

    runner = Batch(settings, connect=Client, resolver=Resolver())  # type: ignore[arg-type]
    (result,) = runner.run([service("web")])

    assert [(o.target, o.status) for o in result.outcomes] == [
        ("shop-web-1", "completed"),
        ("shop-web-2", "skipped"),
        ("shop-web-3", "skipped"),
    ]
    assert result.outcomes[1].error == "not rotated: stopping"


def test_targets_run_side_by_side_bounded_and_independent(
    tmp_path: Path, recorder: Recorder
) -> None:
    recorder.failing = {"shop-api-1"}
    recorder.delay = 0.05
    finished: list[str] = []

    results = batch(tmp_path, concurrency=2).run(
        [service(s) for s in ("web", "api", "db", "mq", "log")],
        on_result=lambda r: finished.append(r.target.name),
    )

    assert [r.target.name for r in results] == ["web", "api", "db", "mq", "log"]
    assert [r.status for r in results] == [
        "completed",
        "failed",
        "completed",
        "completed",
        "completed",
    ]
    assert sorted(finished) == sorted(r.target.name for r in results)
    assert recorder.most == 2


def test_a_busy_target_is_refused_and_the_others_go_on(tmp_path: Path, recorder: Recorder) -> None:
    runner = batch(tmp_path)
    with runner.settings.locks.hold("service-shop.api", wait=0.0, note="another process"):
        web, api = runner.run([service("web"), service("api")])

    assert web.status == "completed"
    assert api.status == "error" and isinstance(api.error, RotationBusyError)
    assert "another rotation of service api (project shop) is in progress" in str(api.error)
    assert all(name.startswith("shop-web") for name, _ in recorder.calls)


def labelled(parallel: str | None) -> ContainerView:
    view = replica("web", 1)
    if parallel is not None:
        view.raw["Config"]["Labels"]["dso.parallel"] = parallel
    return view


def test_replicas_at_once_come_from_the_flag_then_the_label_then_the_configuration() -> None:
    assert parallel_of([labelled("3")], 2, 4) == 2
    assert parallel_of([labelled(None), labelled("3")], None, 4) == 3
    assert parallel_of([labelled(None)], None, 6) == 6
    assert RotationConfig().parallel == 4


def test_a_bad_parallel_label_names_the_container_and_the_fix() -> None:
    with pytest.raises(UsageError) as caught:
        parallel_of([labelled("many")], None, 4)
    assert "shop-web-1: label dso.parallel='many'" in str(caught.value)
    assert "--parallel" in (caught.value.hint or "")
