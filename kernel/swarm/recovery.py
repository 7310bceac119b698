"""Converging interrupted Swarm rotations: no secret version leaked, no service without its secret.

A Swarm rotation (:mod:`kernel.swarm.rotation`) journals each step before taking it, and the
engine keeps the rest: the service's spec says whether the update was submitted, its
``UpdateStatus`` how the rollout ended. For an unfinished entry (strategy ``swarm``) whose lock
no process holds, :func:`converge_entry` looks at the service now:

- its spec mounts the **new** versions (the update was submitted): wait for the engine's update
  to end, then as after a normal rotation: ``completed`` → the old versions are removed (action
  ``forward``); ``rollback_completed`` → the new versions are removed (``rolled_back``, cause
  ``health_gate``: not rotated again; ``docker`` when the failed task never got to its
  healthcheck: rotated again); ``paused`` or still running past the time → left
  ``failed`` for an operator (action ``kept``; the next ``recover`` looks again);
- its spec still mounts the **old** versions (killed between "secret created" and "service
  updated", or the update was refused): the new versions nothing uses are removed (action
  ``rolled_back``, cause ``crash``), and the rotation is resumed like a container's
  (:func:`resume_swarm_targets`);
- the service is **gone**: both versions are removed once unused.

A secret is only removed when no service spec, no update that may roll back and no live task
references it (:func:`kernel.swarm.unused_versions.remove_when_unused`), and the engine itself
refuses to remove a secret a service references: a service never points at a removed secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kernel.containers.swarm import inspect_service
from kernel.errors import DSOError, RotationBusyError
from kernel.log import get_logger
from kernel.rotation.recovery import Recovered
from kernel.rotation.states import RotationStatus, Strategy
from kernel.rotation.targets import Target
from kernel.swarm.convergence import (
    DONE_STATES,
    last_task_error,
    rollback_cause,
    wait_converged,
)
from kernel.swarm.targets import service_of_swarm_lock
from kernel.swarm.unused_versions import remove_when_unused

if TYPE_CHECKING:
    import docker

    from kernel.rotation.journal import Journal, RotationEntry
    from kernel.rotation.locks import TargetLocks

log = get_logger("swarm.recovery")

#: Seconds recovery waits for an update still rolling out before leaving it for later.
WAIT = 120.0


def is_swarm(entry: RotationEntry) -> bool:
    return entry.strategy == Strategy.SWARM.value


def recover_swarm(
    client: docker.DockerClient,
    journal: Journal,
    locks: TargetLocks,
    *,
    clock: Callable[[], float] = time.time,
    wait: float = WAIT,
) -> list[Recovered]:
    """Converge every unfinished Swarm rotation whose lock is free (held: a live rotation).

    ``wait`` is the time all of them may wait for updates still rolling out, together: one
    not finished by then is left unfinished (``kept``, the agent hands it to its scheduler:
    :func:`unfinished_swarm_targets`; a rotation of the service converges it first)."""
    results: list[Recovered] = []
    deadline = time.monotonic() + wait
    for entry in journal.needing_recovery():
        if not is_swarm(entry):
            continue
        key = entry.lock_key or f"swarm-{entry.target}"
        left = max(0.0, deadline - time.monotonic())
        try:
            with locks.hold(key, wait=0.0, note="recover"):
                results.append(converge_entry(client, journal, entry, clock=clock, wait=left))
        except RotationBusyError as exc:
            results.append(Recovered(entry.target, entry.id, "skipped", entry.status, exc.message))
    return results


def converge_entry(
    client: docker.DockerClient,
    journal: Journal,
    entry: RotationEntry,
    *,
    clock: Callable[[], float] = time.time,
    wait: float = WAIT,
) -> Recovered:
    """Converge one Swarm entry (the caller holds its lock) and journal the result."""
    if entry.cause is None and entry.status == RotationStatus.IN_PROGRESS.value:
        entry.cause = "crash"
    try:
        action, status, reason = _converge(client, entry, wait)
    except DSOError as exc:
        action, status, reason = "failed", RotationStatus.FAILED, exc.message
    if status is RotationStatus.FAILED and entry.status == RotationStatus.FAILED.value:
        entry.updated_at = clock()
    else:
        entry.finish(status, clock(), error=None if status is RotationStatus.RECOVERED else reason)
    entry.recovery = {"action": action, "reason": reason, "at": round(clock(), 6)}
    journal.save(entry)
    log.log(
        30 if status is RotationStatus.RECOVERED else 40,
        "recovery of swarm rotation %s (%s): %s: %s",
        entry.id,
        entry.target,
        action,
        reason,
        extra={"trace_id": entry.trace_id, "rotation": entry.id, "target": entry.target},
    )
    return Recovered(entry.target, entry.id, action, entry.status, reason)


def _converge(
    client: docker.DockerClient, entry: RotationEntry, wait: float
) -> tuple[str, RotationStatus, str]:
    swarm: dict[str, Any] = dict(entry.swarm or {})
    pairs = dict(swarm.get("secrets") or {})
    old = [str(p["from"]) for p in pairs.values() if p.get("from")]
    new = [str(p["to"]) for p in pairs.values() if p.get("to")]
    service_id = str(swarm.get("service_id") or entry.old_id or entry.target)
    doc = inspect_service(client, service_id)
    if doc is None:
        removed = remove_when_unused(client, [*old, *new])
        return "removed", RotationStatus.RECOVERED, _said("the service is gone", removed)
    spec = doc.get("Spec") or {}
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    mounted = {str(s.get("SecretName", "")) for s in container.get("Secrets") or ()}
    updated = bool(new) and set(new) <= mounted
    forced = not pairs and entry.step not in ("plan", "create_secret", "update_service")
    if not (updated or forced):
        removed = remove_when_unused(client, new)
        if entry.cause is None:
            entry.cause = "crash"
        return (
            "rolled_back",
            RotationStatus.RECOVERED,
            _said("the service was not updated: it still mounts the old versions", removed),
        )
    state = (doc.get("UpdateStatus") or {}).get("State")
    message = (doc.get("UpdateStatus") or {}).get("Message")
    if state not in DONE_STATES:
        done = wait_converged(
            client,
            service_id,
            since_version=int(swarm.get("version") or 0),
            prior_started=swarm.get("update_started"),
            timeout=wait,
        )
        state, message = done.state, done.message
    swarm["update_state"] = state
    swarm["update_message"] = message
    entry.swarm = swarm
    entry.health = {"engine": state, "message": message}
    if state == "completed":
        removed = remove_when_unused(client, old)
        return "forward", RotationStatus.RECOVERED, _said("the engine's update completed", removed)
    if state == "rollback_completed":
        entry.cause = rollback_cause(last_task_error(client, service_id))
        removed = remove_when_unused(client, new)
        return (
            "rolled_back",
            RotationStatus.RECOVERED,
            _said(f"the engine rolled the update back ({message or 'a task failed'})", removed),
        )
    return (
        "kept",
        RotationStatus.FAILED,
        f"the engine's update is {state or 'still running'} ({message or 'no message'}): "
        "left for an operator (`docker service ps`, `docker service update --rollback`)",
    )


def _said(what: str, removed: list[str]) -> str:
    return f"{what}; removed {', '.join(removed)}" if removed else what


def unfinished_swarm_targets(journal: Journal) -> list[Target]:
    """The Swarm services whose rotation is still unfinished (an update still rolling when
    recovery's time ran out, a paused update): rotating one converges its entry first."""
    return resume_swarm_targets([e for e in journal.needing_recovery() if is_swarm(e)])


def resume_swarm_targets(entries: Iterable[RotationEntry]) -> list[Target]:
    """The Swarm services to rotate again for ``entries`` (needing resuming, any strategy:
    only the Swarm ones are taken)."""
    found: dict[str, Target] = {}
    for entry in entries:
        if not is_swarm(entry):
            continue
        key = entry.lock_key or f"swarm-{entry.target}"
        service = service_of_swarm_lock(key) or entry.target
        stack = (entry.swarm or {}).get("stack")
        found.setdefault(key, Target(service, key, stack, service))
    return list(found.values())
