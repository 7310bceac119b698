"""Rotating Swarm services: a new versioned secret, one service update, the engine's rollout.

    rotator = SwarmRotator(client, journal=..., locks=..., resolver=..., config=...)
    result = rotator.rotate(target)                # -> kernel.rotation.batch.TargetResult
    results = rotate_services(targets, make_rotator, concurrency=4)

A Swarm secret is immutable, so a new value is a new secret (``<stack>_<name>_<fingerprint>``,
:mod:`kernel.swarm.secret_versions`). For one service, under its lock (``swarm-<service>``,
:mod:`kernel.swarm.targets`), the rotator first converges an unfinished rotation of it (a
crash), then inspects the service under the lock (:mod:`kernel.swarm.services`) and resolves
the references of dso's secrets it mounts in one batch (:mod:`kernel.swarm.plan`): nothing
changed is ``up_to_date``; otherwise the rotation is journaled (strategy ``swarm``) and its
steps taken (:mod:`kernel.swarm.steps`: create_secret → update_service → converge →
remove_secrets). ``--dry-run`` stops after the plan.

Every log line carries the trace id; extensions see the same events as for a container
(``planned``, ``started``, ``before_swap``, ``after_swap``, then ``completed``, ``rolled_back``
or ``failed``).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kernel.errors import DockerNotFoundError, DSOError
from kernel.extensions.events import RotationEvent, new_trace_id
from kernel.log import get_logger
from kernel.rotation import fault
from kernel.rotation.batch import TargetResult
from kernel.rotation.journal import RotationEntry
from kernel.rotation.model import NullObserver, Outcome, Plan
from kernel.rotation.states import Step, Strategy
from kernel.rotation.targets import Target
from kernel.swarm.convergence import POLL
from kernel.swarm.plan import SecretSwap, plan_swaps, rotation_plan
from kernel.swarm.recovery import converge_entry
from kernel.swarm.services import STACK_NAMESPACE_LABEL, SwarmService, load_service
from kernel.swarm.steps import RotationRun
from kernel.swarm.targets import LOCK_PREFIX, swarm_lock_key

if TYPE_CHECKING:
    import docker

    from kernel.config.model import RotationConfig
    from kernel.injection.resolver import Resolver
    from kernel.rotation.journal import Journal
    from kernel.rotation.locks import Acquired, TargetLocks
    from kernel.rotation.model import RotationObserver

log = get_logger("swarm.rotation")

#: Seconds an update may take per replica, on top of the configured rotation timeout.
PER_TASK = 30.0


def rotate_services(
    targets: list[Target],
    rotator: Callable[[], SwarmRotator],
    *,
    force: bool = False,
    dry_run: bool = False,
    wait: float = 60.0,
    concurrency: int = 4,
    trace_id: str | None = None,
    on_result: Callable[[TargetResult], None] | None = None,
) -> list[TargetResult]:
    """Rotate ``targets`` side by side (at most ``concurrency``), each with its own
    :class:`SwarmRotator` (its own Docker client); results in the order of ``targets``."""
    from concurrent.futures import ThreadPoolExecutor

    def one(target: Target) -> TargetResult:
        worker = rotator()
        try:
            result = worker.rotate(
                target, force=force, dry_run=dry_run, wait=wait, trace_id=trace_id
            )
        finally:
            worker.client.close()
        if on_result is not None:
            on_result(result)
        return result

    if len(targets) <= 1:
        return [one(t) for t in targets]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, targets))


class SwarmRotator:
    """Rotates Swarm services on one manager, journaling like the container engine."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        journal: Journal,
        locks: TargetLocks,
        resolver: Resolver,
        config: RotationConfig | None = None,
        observer: RotationObserver | None = None,
        trigger: str = "manual",
        timeout: float | None = None,
        poll: float = POLL,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.locks = locks
        self.resolver = resolver
        self.observer: RotationObserver = observer or NullObserver()
        self.trigger = trigger
        self.base_timeout = timeout if timeout is not None else (config.timeout if config else 60)
        self.poll = poll
        self.clock = clock
        self.stop = stop

    # -- entry points -----------------------------------------------------------------------

    def rotate(
        self,
        target: Target,
        *,
        force: bool = False,
        dry_run: bool = False,
        wait: float = 60.0,
        trace_id: str | None = None,
    ) -> TargetResult:
        """Rotate one service (a :class:`Target` of :func:`~kernel.swarm.targets.swarm_targets`);
        never raises a
        :class:`DSOError`: the result carries it."""
        result = TargetResult(target)
        name = target.service or target.name
        try:
            if dry_run:
                result.outcomes.append(self._dry_run(name, force=force))
                return result
            subject = f"swarm service {name}"
            with self.locks.hold(
                target.lock_key, wait=wait, note=f"rotate {name}", subject=subject
            ) as lock:
                result.lock_waited = lock.waited
                self.settle(target.lock_key)
                result.outcomes.append(
                    self.rotate_locked(name, lock=lock, force=force, trace_id=trace_id)
                )
        except DSOError as exc:
            result.error = exc
        return result

    def settle(self, key: str) -> None:
        """Converge an unfinished rotation of this lock first (a crash)."""
        for pending in self.journal.needing_recovery():
            if pending.strategy == Strategy.SWARM.value and pending.lock_key == key:
                converge_entry(self.client, self.journal, pending, clock=self.clock)

    def _dry_run(self, name: str, *, force: bool) -> Outcome:
        service = self._service(name)
        swaps, unchanged = plan_swaps(service, self.resolver)
        if not swaps and not force:
            return self._about(service, Outcome(target=name, status="up_to_date"))
        plan = rotation_plan(service, swaps, unchanged, force=force)
        event = self._event(plan, service, new_trace_id(), "dry-run").evolve(dry_run=True)
        self.observer.planned(event)
        return self._about(service, Outcome(target=name, status="planned", plan=plan))

    def rotate_locked(
        self,
        name: str,
        *,
        lock: Acquired,
        force: bool = False,
        trace_id: str | None = None,
    ) -> Outcome:
        """Rotate service ``name`` (its lock held by the caller); see the module docstring."""
        began = time.monotonic()
        service = self._service(name)
        swaps, unchanged = plan_swaps(service, self.resolver)
        if not swaps and not force:
            log.info("%s is up to date", name, extra={"target": name})
            outcome = Outcome(target=name, status="up_to_date", lock_waited=lock.waited)
            return self._about(service, outcome)
        plan = rotation_plan(service, swaps, unchanged, force=force)
        trace_id = trace_id or new_trace_id()
        entry = self._entry(service, plan, swaps, trace_id, lock)
        self.journal.save(entry)
        fault.after_journaled(entry.step)
        extra = {"trace_id": trace_id, "rotation": entry.id, "target": name}
        event = self._event(plan, service, trace_id, entry.id)
        self.observer.planned(event)
        self.observer.started(event)
        log.info(
            "rotating swarm service %s: %s",
            name,
            ", ".join(f"{s.old.name} -> {s.new_name}" for s in swaps) or "forced update",
            extra=extra,
        )
        run = RotationRun(self, entry, event, service, swaps, extra)
        outcome = run.run()
        outcome.plan = plan
        outcome.lock_waited = lock.waited
        outcome.elapsed = time.monotonic() - began
        outcome.phases = entry.step_times()
        return self._about(service, outcome)

    # -- helpers ----------------------------------------------------------------------------

    def _service(self, name: str) -> SwarmService:
        service = load_service(self.client, name)
        if service is None:
            raise DockerNotFoundError(
                f"no swarm service named {name!r}", hint="`docker service ls` lists them"
            )
        return service

    def timeout_for(self, service: SwarmService) -> float:
        """Seconds the engine's update of ``service`` may take: the configured rotation
        timeout plus, per replica, its update delay and monitor period (at least 30 s)."""
        config = service.update_config
        per_task = (int(config.get("Delay", 0)) + int(config.get("Monitor", 0))) / 1e9
        parallel = max(1, int(config.get("Parallelism", 1) or 1))
        batches = -(-service.replicas // parallel)
        return self.base_timeout + batches * max(PER_TASK, per_task + 10.0)

    def _entry(
        self,
        service: SwarmService,
        plan: Plan,
        swaps: list[SecretSwap],
        trace_id: str,
        lock: Acquired,
    ) -> RotationEntry:
        now = self.clock()
        return RotationEntry(
            id=secrets.token_hex(4),
            trace_id=trace_id,
            target=service.name,
            strategy=Strategy.SWARM.value,
            strategy_reason=plan.reason,
            steps=[{"step": Step.PLAN.value, "at": round(now, 6)}],
            old_id=service.id,
            old_name=service.name,
            lock_key=lock.target,
            lock=lock.to_dict(),
            references={s.target: s.reference.uri() for s in swaps},
            versions={
                s.target: {"from": s.old.version or None, "to": s.resolved.fingerprint}
                for s in swaps
            },
            swarm={
                "service_id": service.id,
                "stack": service.stack,
                "version": service.version,
                "secrets": {s.target: {"from": s.old.name, "to": s.new_name} for s in swaps},
                "update_state": service.update_state,
                "update_started": service.update_started,
            },
            started_at=now,
            updated_at=now,
            pid=os.getpid(),
            host=socket.gethostname(),
        )

    def _event(
        self, plan: Plan, service: SwarmService, trace_id: str, rotation_id: str
    ) -> RotationEvent:
        refs = plan.changes.references
        return RotationEvent(
            trace_id=trace_id,
            rotation_id=rotation_id,
            target=service.name,
            strategy=Strategy.SWARM.value,
            step="plan",
            project=service.stack,
            service=service.name,
            trigger="forced" if plan.forced else self.trigger,
            old_container=service.id,
            references=tuple(r.reference for r in refs),
            versions={r.reference: r.new.partition(":")[2] or r.new for r in refs if r.new},
            fingerprints={r.reference: r.new for r in refs if r.new},
        )

    @staticmethod
    def _about(service: SwarmService, outcome: Outcome) -> Outcome:
        outcome.project = service.stack
        outcome.service = service.name
        outcome.old_id = outcome.old_id or service.id
        return outcome


# LOCK_PREFIX, STACK_NAMESPACE_LABEL, SwarmService and swarm_lock_key live in kernel.swarm.targets
# and kernel.swarm.services; kernel.agent (swarm_services, status_doc) imports them from here.
__all__ = [
    "LOCK_PREFIX",
    "STACK_NAMESPACE_LABEL",
    "SwarmRotator",
    "SwarmService",
    "rotate_services",
    "swarm_lock_key",
]
