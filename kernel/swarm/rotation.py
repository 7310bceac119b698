"""Rotating Swarm services: a new versioned secret, one service update, the engine's rollout.

    rotator = SwarmRotator(client, journal=..., locks=..., resolver=..., config=...)
    result = rotator.rotate("shop_web")            # -> kernel.rotation.batch.TargetResult

A Swarm secret is immutable, so a new value is a new secret (``<stack>_<name>_<fingerprint>``,
:mod:`kernel.swarm.secret_versions`). For one service, under its lock (``swarm-<service>``):

1. **plan**: the service is inspected under the lock; the references of dso's secrets it mounts
   (labels ``dso.reference``) are resolved in one batch; a secret whose versioned name differs
   from the one mounted is to be swapped (nothing changed: ``up_to_date``);
2. **create_secret**: each new version is created through the API (idempotent: same reference
   and version, same name; a service sharing the secret may have created it already);
3. **update_service**: one ``update_service`` call with the service's current version index
   and its spec, the mounted secrets swapped (same target path, uid, gid and mode): the
   ``--secret-rm old --secret-add new`` of the CLI in one update. Its ``UpdateConfig`` is the
   service's own (``stack deploy`` proposes ``order: start-first``, ``failure_action:
   rollback``); an extension's veto (``before_swap``) stops the rotation before this step;
4. **converge**: the engine's ``UpdateStatus`` is polled until it ends: ``completed``,
   ``rollback_completed`` (the engine rolled the update back: a task failed its healthcheck) or
   ``paused`` (``failure_action: pause``; an operator decides);
5. **remove_secrets**: the versions nothing uses any more (no service spec, no update that may
   roll back, no task meant to run: :func:`remove_when_unused`) are removed: the old ones after
   ``completed``, the new ones after a rollback.

Each step is journaled before it is taken (strategy ``swarm``, :class:`RotationEntry.swarm` names
the service and the secret names, never a value), so :mod:`kernel.swarm.recovery` converges a
rotation killed at any point. Every log line carries the trace id; extensions see the same
events as for a container (``planned``, ``started``, ``before_swap``, ``after_swap``, then
``completed``, ``rolled_back`` or ``failed``).
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.containers.swarm import (
    inspect_service,
    list_services,
    list_tasks,
    remove_secret,
    swarm_node,
)
from kernel.containers.swarm_update import update_task_template
from kernel.errors import (
    DockerError,
    DockerNotFoundError,
    DockerUnavailableError,
    DSOError,
    RotationError,
    UsageError,
)
from kernel.extensions.events import RotationEvent, new_trace_id
from kernel.injection.resolver import Resolved
from kernel.log import get_logger
from kernel.reference import SecretReference, parse_reference
from kernel.rotation import fault
from kernel.rotation.batch import TargetResult
from kernel.rotation.journal import RotationEntry
from kernel.rotation.model import ChangedReference, Changes, NullObserver, Outcome, Plan
from kernel.rotation.states import RotationStatus, Step, Strategy
from kernel.rotation.targets import Target
from kernel.swarm.secret_versions import (
    SwarmSecret,
    create_secret,
    dso_secrets,
    fingerprint,
    secret_labels,
    secret_name,
    secret_uses,
)

if TYPE_CHECKING:
    import docker

    from kernel.config.model import RotationConfig
    from kernel.injection.resolver import Resolver
    from kernel.rotation.journal import Journal
    from kernel.rotation.locks import Acquired, TargetLocks
    from kernel.rotation.model import RotationObserver

log = get_logger("swarm.rotation")

#: The label ``docker stack deploy`` puts on a stack's services.
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"
#: :class:`Converged` state when dso stopped waiting (the agent stopping): the entry stays
#: unfinished at ``converge`` for recovery.
STOPPED = "stopped"
#: ``UpdateStatus.State`` values that end an update.
DONE_STATES = frozenset({"completed", "rollback_completed", "paused", "rollback_paused"})
#: Seconds between two looks at a service's ``UpdateStatus``.
POLL = 0.2
#: Seconds to wait for tasks meant to run that still mount an old version (an update still
#: rolling) before leaving its removal to the next clean-up.
TASK_DRAIN = 30.0
#: Seconds an update may take per replica, on top of the configured rotation timeout.
PER_TASK = 30.0
LOCK_PREFIX = "swarm-"


def swarm_lock_key(service: str) -> str:
    """The lock of a Swarm service (every rotation of it, across processes)."""
    return f"{LOCK_PREFIX}{service}"


def service_of_swarm_lock(key: str) -> str | None:
    return key.removeprefix(LOCK_PREFIX) if key.startswith(LOCK_PREFIX) else None


# -- what a service mounts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mounted:
    """One of dso's secrets mounted into a service (its ``ContainerSpec.Secrets`` entry)."""

    #: The path in the container (``File.Name``).
    target: str
    secret: SwarmSecret


@dataclass(frozen=True, slots=True)
class SwarmService:
    """A service as inspected: its spec, version index, update status, dso's secrets in it."""

    id: str
    name: str
    stack: str | None
    version: int
    spec: Mapping[str, Any] = field(repr=False)
    update_state: str | None
    update_message: str | None
    update_started: str | None
    mounted: tuple[Mounted, ...]

    @classmethod
    def from_api(cls, doc: Mapping[str, Any], known: Mapping[str, SwarmSecret]) -> SwarmService:
        spec = doc.get("Spec") or {}
        status = doc.get("UpdateStatus") or {}
        mounted = []
        for item in _secrets_of(spec):
            found = known.get(str(item.get("SecretName", "")))
            file = item.get("File") or {}
            if found is not None and file.get("Name"):
                mounted.append(Mounted(str(file["Name"]), found))
        return cls(
            id=str(doc.get("ID", "")),
            name=str(spec.get("Name", "")),
            stack=(spec.get("Labels") or {}).get(STACK_NAMESPACE_LABEL),
            version=int((doc.get("Version") or {}).get("Index", 0)),
            spec=spec,
            update_state=status.get("State"),
            update_message=status.get("Message"),
            update_started=status.get("StartedAt"),
            mounted=tuple(mounted),
        )

    @property
    def replicas(self) -> int:
        mode = self.spec.get("Mode") or {}
        return int((mode.get("Replicated") or {}).get("Replicas", 1) or 1)

    @property
    def update_config(self) -> dict[str, Any]:
        return dict(self.spec.get("UpdateConfig") or {})

    def secret_names(self) -> set[str]:
        return {str(s.get("SecretName", "")) for s in _secrets_of(self.spec)}


def _secrets_of(spec: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    container = ((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return [dict(s) for s in container.get("Secrets") or ()]


def load_service(client: docker.DockerClient, name: str) -> SwarmService | None:
    """The service ``name`` (or id) with dso's secrets it mounts; None if there is none."""
    doc = inspect_service(client, name)
    if doc is None:
        return None
    return SwarmService.from_api(doc, {s.name: s for s in dso_secrets(client)})


def swarm_targets(client: docker.DockerClient, names: Iterable[str]) -> list[Target]:
    """The Swarm services ``names`` designate: a service's name, or a stack's name (its
    services mounting one of dso's secrets). :class:`DockerNotFoundError` for a name that is
    neither; :class:`UsageError` on a node that is not a manager."""
    node = swarm_node(client)
    if not node.manager:
        raise UsageError(
            "this Docker node is not a swarm manager: only a manager updates services",
            hint="run it on a manager node (`docker node ls` lists them)",
        )
    services = list_services(client)
    by_name = {str((s.get("Spec") or {}).get("Name", "")): s for s in services}
    dso_names = {s.name for s in dso_secrets(client)}
    found: dict[str, Target] = {}
    for name in dict.fromkeys(names):
        if name in by_name:
            chosen = [by_name[name]]
        else:
            chosen = [
                s
                for s in services
                if ((s.get("Spec") or {}).get("Labels") or {}).get(STACK_NAMESPACE_LABEL) == name
                and {str(x.get("SecretName")) for x in _secrets_of(s.get("Spec"))} & dso_names
            ]
        if not chosen:
            raise DockerNotFoundError(
                f"no swarm service or stack named {name!r} with secrets of dso",
                hint="`docker service ls` lists the services; `docker dso stack deploy` "
                "deploys a stack with dso's secrets",
            )
        for service in chosen:
            spec = service.get("Spec") or {}
            sname = str(spec.get("Name", ""))
            stack = (spec.get("Labels") or {}).get(STACK_NAMESPACE_LABEL)
            found.setdefault(sname, Target(sname, swarm_lock_key(sname), stack, sname))
    return list(found.values())


def split_targets(
    client: docker.DockerClient,
    names: Iterable[str],
    *,
    project: str | None = None,
    services: Iterable[str] = (),
) -> tuple[list[Target], list[Target]]:
    """``rotate``'s names as (container/compose targets, Swarm service targets).

    Names are looked up as compose services and containers first (no extra call when all are
    found); the ones that are neither, on an active swarm, as Swarm services or stacks. The
    error for a name found nowhere is the container lookup's.
    """
    from kernel.containers.swarm import swarm_node
    from kernel.rotation.targets import resolve_targets

    wanted = list(dict.fromkeys(names))
    known = list(services)
    try:
        return resolve_targets(client, wanted, project=project, services=known), []
    except DockerNotFoundError as first:
        missing: list[str] = []
        local: list[str] = []
        for name in wanted:
            try:
                resolve_targets(client, [name], project=project, services=known)
                local.append(name)
            except DockerNotFoundError:
                missing.append(name)
        if not swarm_node(client).active:
            raise first from None
        try:
            swarm = swarm_targets(client, missing)
        except DockerNotFoundError:
            raise first from None
        chosen = resolve_targets(client, local, project=project, services=known) if local else []
        return chosen, swarm


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


# -- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretSwap:
    """One mounted secret to replace: the old and new versioned names (no value)."""

    target: str
    reference: SecretReference
    stack: str
    #: The stack file's secret name (label ``dso.secret``).
    name: str
    old: SwarmSecret
    new_name: str
    resolved: Resolved = field(repr=False)

    @property
    def labels(self) -> dict[str, str]:
        return secret_labels(self.stack, self.name, self.reference, self.resolved)


def plan_swaps(service: SwarmService, resolver: Resolver) -> tuple[list[SecretSwap], list[str]]:
    """The secrets of ``service`` whose reference resolves to another version, and the
    references found unchanged. (``--force`` with nothing changed is a forced task replacement
    with the same secrets: the rotator's business.)"""
    refs = {m.target: parse_reference(m.secret.reference) for m in service.mounted}
    outcomes = resolver.resolve(list(dict.fromkeys(refs.values())))
    swaps: list[SecretSwap] = []
    unchanged: list[str] = []
    for mounted in service.mounted:
        ref = refs[mounted.target]
        outcome = outcomes[ref]
        if isinstance(outcome, DSOError):
            raise outcome
        stack = mounted.secret.stack or service.stack or ""
        name = mounted.secret.secret or mounted.secret.name
        new_name = secret_name(stack, name, fingerprint(ref, outcome))
        if new_name == mounted.secret.name:
            unchanged.append(mounted.secret.reference)
            continue
        swaps.append(
            SecretSwap(mounted.target, ref, stack, name, mounted.secret, new_name, outcome)
        )
    return swaps, unchanged


def swapped_template(service: SwarmService, names: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """The service's ``TaskTemplate`` with secret ``old`` → ``(new name, new id)`` for each
    ``names`` entry; target path, uid, gid and mode kept."""
    template = copy.deepcopy(dict(service.spec.get("TaskTemplate") or {}))
    container = template.setdefault("ContainerSpec", {})
    swapped = []
    for item in container.get("Secrets") or ():
        new = names.get(str(item.get("SecretName", "")))
        if new is not None:
            item = {**item, "SecretName": new[0], "SecretID": new[1]}
        swapped.append(item)
    container["Secrets"] = swapped
    return template


# -- the rotator --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Converged:
    """How the engine's update ended (``state`` None: it did not end within the time)."""

    state: str | None
    message: str | None
    seconds: float


class Failed(Exception):
    """A step failed: ``cause`` as in kernel.rotation.strategies.CAUSES."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message


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
        """Rotate one service (a :class:`Target` of :func:`swarm_targets`); never raises a
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
        from kernel.swarm.recovery import converge_entry

        for pending in self.journal.needing_recovery():
            if pending.strategy == Strategy.SWARM.value and pending.lock_key == key:
                converge_entry(self.client, self.journal, pending, clock=self.clock)

    def _dry_run(self, name: str, *, force: bool) -> Outcome:
        service = self._service(name)
        swaps, unchanged = plan_swaps(service, self.resolver)
        if not swaps and not force:
            return self._about(service, Outcome(target=name, status="up_to_date"))
        plan = self._plan(service, swaps, unchanged, force=force)
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
        plan = self._plan(service, swaps, unchanged, force=force)
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
        run = _Run(self, entry, event, service, swaps, extra)
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

    def _plan(
        self, service: SwarmService, swaps: list[SecretSwap], unchanged: list[str], *, force: bool
    ) -> Plan:
        config = service.update_config
        order = config.get("Order", "stop-first")
        action = config.get("FailureAction", "pause")
        references = tuple(
            ChangedReference(
                variable=s.target,
                reference=s.reference.uri(),
                delivery="swarm-secret",
                old=s.old.version or None,
                new=s.resolved.fingerprint,
            )
            for s in swaps
        )
        notes = []
        if order != "start-first":
            notes.append(
                f"update_config.order is {order}: each task stops before its replacement "
                "starts (start-first keeps it serving)"
            )
        if not (service.spec.get("TaskTemplate") or {}).get("ContainerSpec", {}).get("Healthcheck"):
            notes.append("no healthcheck in the service: the engine cannot gate on health")
        return Plan(
            target=service.name,
            container_id=service.id,
            strategy=Strategy.SWARM,
            reason=f"swarm service: the engine's rolling update (order {order}, "
            f"failure_action {action})",
            source="swarm",
            changes=Changes(
                files={s.target: s.resolved.value for s in swaps},
                references=references,
                unchanged=tuple(unchanged),
                notes=tuple(notes),
            ),
            exclusive=(),
            probe="the service's healthcheck, run by the engine",
            forced=force and not swaps,
        )

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


class _Run:
    """One journaled rotation of one service."""

    def __init__(
        self,
        rotator: SwarmRotator,
        entry: RotationEntry,
        event: RotationEvent,
        service: SwarmService,
        swaps: list[SecretSwap],
        extra: dict[str, str],
    ) -> None:
        self.r = rotator
        self.entry = entry
        self.event = event
        self.service = service
        self.swaps = swaps
        self.extra = extra
        self.updated = False

    def run(self) -> Outcome:
        try:
            self._step(Step.CREATE_SECRET)
            created = {
                s.old.name: self._create(s) for s in self.swaps
            }  # old name -> (new name, new id)
            if self.r.stop is not None and self.r.stop.is_set():
                raise Failed("stopped", "dso was stopping before the service update")
            veto = self.r.observer.before_swap(self._ev())
            if veto is not None:
                raise Failed("vetoed", f"vetoed by extension {veto.extension!r}: {veto.reason}")
            self._step(Step.UPDATE_SERVICE)
            self._update(created)
            self.updated = True
            self.r.observer.after_swap(self._ev())
            self._step(Step.CONVERGE)
            done = wait_converged(
                self.r.client,
                self.service.id,
                since_version=self.service.version,
                prior_started=self.service.update_started,
                timeout=self.r.timeout_for(self.service),
                poll=self.r.poll,
                stop=self.r.stop,
            )
        except Failed as exc:
            return self._undo(exc.cause, exc.message)
        except DSOError as exc:
            if self.updated:
                return self._fail("docker", exc.message)
            return self._undo("docker", exc.message)
        except BaseException:
            if not self.updated:
                self._undo("interrupted", "interrupted before the service update")
            raise
        return self._converged(done)

    # -- steps ------------------------------------------------------------------------------

    def _step(self, step: Step) -> None:
        self.entry.advance(step, self.r.clock())
        self.r.journal.save(self.entry)
        fault.after_journaled(step.value)

    def _create(self, swap: SecretSwap) -> tuple[str, str]:
        made = create_secret(self.r.client, swap.new_name, swap.resolved.value, swap.labels)
        return made.name, made.id

    def _update(self, created: Mapping[str, tuple[str, str]]) -> None:
        template = swapped_template(self.service, created)
        if not self.swaps:  # forced: the same secrets, new tasks
            template["ForceUpdate"] = int(template.get("ForceUpdate", 0) or 0) + 1
        update_task_template(
            self.r.client,
            self.service.id,
            name=self.service.name,
            version=self.service.version,
            task_template=template,
        )
        log.info(
            "service %s updated; the engine rolls its tasks", self.service.name, extra=self.extra
        )

    def _converged(self, done: Converged) -> Outcome:
        if done.state == STOPPED:  # the engine goes on: recovery finishes it (next start)
            message = "dso stopped while the engine rolled the update; recovery finishes it"
            log.warning("%s: %s", self.service.name, message, extra=self.extra)
            return self._outcome("interrupted", message)
        swarm = dict(self.entry.swarm or {})
        swarm["update_state"] = done.state
        swarm["update_message"] = done.message
        swarm["converged_in"] = round(done.seconds, 3)
        self.entry.swarm = swarm
        self.entry.health = {"engine": done.state, "message": done.message}
        if done.state == "completed":
            self._step(Step.REMOVE_SECRETS)
            removed = remove_when_unused(self.r.client, [s.old.name for s in self.swaps])
            self.entry.swarm = {**swarm, "removed": removed}
            self.entry.finish(RotationStatus.COMPLETED, self.r.clock())
            self.r.journal.save(self.entry)
            self.r.observer.completed(self._ev())
            log.info(
                "rotation of swarm service %s completed in %.1f s (old versions removed: %s)",
                self.service.name,
                done.seconds,
                ", ".join(removed) or "none",
                extra=self.extra,
            )
            return self._outcome("completed")
        why = last_task_error(self.r.client, self.service.id) if done.state != "completed" else None
        if why:
            self.entry.health = {**self.entry.health, "last_output": why}
        if done.state == "rollback_completed":
            message = f"the engine rolled the update back: {why or done.message or 'a task failed'}"
            return self._undo(rollback_cause(why), message, engine=True)
        if done.state is None:
            return self._fail("timeout", f"the update did not finish within {done.seconds:.0f} s")
        return self._fail(
            "health_gate",
            f"the engine's update is {done.state}: {done.message or 'no message'} "
            "(`docker service update --rollback` or fix and rotate again)",
        )

    def _undo(self, cause: str, message: str, *, engine: bool = False) -> Outcome:
        """Before the update (or after the engine's own rollback): remove the new versions
        nothing uses; the service keeps (or is back on) the old ones."""
        self.entry.cause = cause
        self.r.observer.failed(self._ev(error=message))
        if Step(self.entry.step) is not Step.ROLLBACK:
            self._step(Step.ROLLBACK)
        try:
            remove_when_unused(self.r.client, [s.new_name for s in self.swaps])
        except DSOError as exc:
            log.warning(
                "could not remove unused secret versions: %s", exc.message, extra=self.extra
            )
        self.entry.finish(RotationStatus.ROLLED_BACK, self.r.clock(), error=message)
        self.r.journal.save(self.entry)
        self.r.observer.rolled_back(self._ev(error=message))
        log.error(
            "rotation of swarm service %s rolled back%s: %s",
            self.service.name,
            " by the engine" if engine else "",
            message,
            extra=self.extra,
        )
        return self._outcome("rolled_back", message)

    def _fail(self, cause: str, message: str) -> Outcome:
        """After the update, without an end the engine reached by itself: left for an operator
        (or ``recover``, which looks again)."""
        self.entry.cause = cause
        self.entry.finish(RotationStatus.FAILED, self.r.clock(), error=message)
        self.r.journal.save(self.entry)
        self.r.observer.failed(self._ev(error=message))
        log.error(
            "rotation of swarm service %s failed: %s", self.service.name, message, extra=self.extra
        )
        return self._outcome("failed", message)

    def _ev(self, **changes: Any) -> RotationEvent:
        return self.event.evolve(step=self.entry.step, **changes)

    def _outcome(self, status: str, error: str | None = None) -> Outcome:
        return Outcome(
            target=self.service.name,
            status=status,
            rotation_id=self.entry.id,
            trace_id=self.entry.trace_id,
            old_id=self.service.id,
            new_id=self.service.id,
            error=error,
            health=self.entry.health,
        )


def wait_converged(
    client: docker.DockerClient,
    service_id: str,
    *,
    since_version: int,
    prior_started: str | None,
    timeout: float,
    poll: float = POLL,
    stop: threading.Event | None = None,
) -> Converged:
    """Poll the service until the update made after ``since_version`` ends (``DONE_STATES``),
    or ``timeout`` seconds pass (state None), or ``stop`` is set (state ``stopped``).
    ``prior_started`` is the ``StartedAt`` of the update status before ours: until the engine
    starts our update, that one is still shown."""
    began = time.monotonic()
    while True:
        if stop is not None and stop.is_set():
            return Converged(STOPPED, None, time.monotonic() - began)
        doc = inspect_service(client, service_id)
        if doc is None:
            raise RotationError(f"the swarm service {service_id[:12]} disappeared mid-update")
        version = int((doc.get("Version") or {}).get("Index", 0))
        status = doc.get("UpdateStatus") or {}
        state = status.get("State")
        # The status of the previous update stays until the engine starts ours.
        ours = version > since_version and status.get("StartedAt") != prior_started
        if ours and state in DONE_STATES:
            return Converged(str(state), status.get("Message"), time.monotonic() - began)
        if time.monotonic() - began > timeout:
            return Converged(None, status.get("Message"), time.monotonic() - began)
        time.sleep(poll)


def remove_when_unused(
    client: docker.DockerClient,
    names: Iterable[str],
    *,
    wait: float = TASK_DRAIN,
    poll: float = POLL,
) -> list[str]:
    """Remove those of ``names`` no service and no task meant to run uses; the names removed.

    A service's spec, or an update that may still roll back to its previous spec, holds a
    version: it is left to the rotation that moves that service (another service sharing the
    secret). A task the engine is shutting down (desired state ``shutdown``: the old tasks of a
    completed update, taken out of DNS, then stopped within their grace period) does not: it
    never starts again, and its file stays on its own tmpfs until it stops (measured: removing
    the secret leaves a stopping task's file readable). A task meant to run (an old task of an
    update still rolling) is waited for, up to ``wait`` seconds.
    """
    pending = set(names)
    removed: list[str] = []
    deadline = time.monotonic() + wait
    while pending:
        held = {u.secret for u in secret_uses(client) if u.via != "task" and u.secret in pending}
        running = _running_task_secrets(client) & pending
        for name in sorted(pending - held - running):
            try:
                remove_secret(client, name)
            except DockerUnavailableError:
                raise
            except DockerError as exc:  # a task started in between: the next clean-up
                log.debug("secret %s kept: %s", name, exc.message)
                continue
            removed.append(name)
        pending = running - held
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(poll)
    return removed


def _running_task_secrets(client: docker.DockerClient) -> set[str]:
    """Secrets mounted by tasks the engine means to keep running (not shutting down)."""
    names: set[str] = set()
    for task in list_tasks(client):
        if task.get("DesiredState") not in ("running", "ready", "accepted", "new", "pending"):
            continue
        if (task.get("Status") or {}).get("State") in _TERMINAL_TASK_STATES:
            continue
        container = (task.get("Spec") or {}).get("ContainerSpec") or {}
        names |= {str(x.get("SecretName")) for x in container.get("Secrets") or ()}
    return names


#: Task states after which a task holds nothing any more.
_TERMINAL_TASK_STATES = frozenset(
    {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
)


def rollback_cause(task_error: str | None) -> str:
    """Why the engine rolled back, as a journal cause: ``health_gate`` when a new task failed
    its healthcheck or exited (the new value is refused: not retried), ``docker`` when it could
    not start for the engine's own reasons (``network sandbox does not exist``, no suitable
    node: the change is rotated again, like after a lost daemon)."""
    if task_error is None or re.search(r"unhealthy|non-zero exit", task_error):
        return "health_gate"
    return "docker"


def last_task_error(client: docker.DockerClient, service_id: str) -> str | None:
    """The error of the service's most recent failed or rejected task (why the engine rolled
    back or paused: ``task: non-zero exit (1)``, ``unhealthy container``)."""
    failed = [
        t
        for t in list_tasks(client, {"service": service_id})
        if (t.get("Status") or {}).get("State") in ("failed", "rejected")
    ]
    if not failed:
        return None
    last = max(failed, key=lambda t: str((t.get("Status") or {}).get("Timestamp", "")))
    status = last.get("Status") or {}
    return str(status.get("Err") or status.get("Message") or "") or None


__all__ = [
    "DONE_STATES",
    "Converged",
    "Mounted",
    "SecretSwap",
    "SwarmRotator",
    "SwarmService",
    "load_service",
    "plan_swaps",
    "rotate_services",
    "service_of_swarm_lock",
    "split_targets",
    "swapped_template",
    "swarm_lock_key",
    "swarm_targets",
    "wait_converged",
]
