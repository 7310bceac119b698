"""The rotation engine: plan → fetch → strategy → journal, one locked container at a time.

    engine = RotationEngine(client, layout, config=config.agent.rotation, observer=extensions)
    outcome = engine.rotate("web", fetch)          # fetch(view) -> Changes

    with engine.locks.hold(target.lock_key, wait=60) as lock:   # a whole compose service
        engine.settle(target.lock_key)        # retention; converge a crashed rotation first
        for view in replicas:                 # inspected under the lock
            engine.rotate_locked(view, fetch, lock=lock, trace_id=..., stop=stop_event)

The engine never talks to providers: the caller's ``fetch`` is handed the container freshly
inspected *under its lock* and returns the new values (:class:`~kernel.rotation.model.Changes`).
So a second rotation that waited for the lock decides on the state the first one left, never
on what it saw before waiting. Before rotating, :meth:`RotationEngine.settle` prunes the journal
and converges an unfinished entry of the same lock (a crash; :mod:`kernel.rotation.recovery`).
The lock of a compose container is its service's (:func:`~kernel.rotation.targets.lock_key_of`):
:mod:`kernel.rotation.batch` holds it once and rotates the replicas one after another with
:meth:`RotationEngine.rotate_locked`, each on the view it inspected under the lock.

Every log line of a rotation carries its trace id (``extra={"trace_id": …}``); the journal
entry, the extension events and the outcome carry it too.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kernel.config.model import RotationConfig
from kernel.containers.drain import drainer_for
from kernel.containers.health import probe_for
from kernel.containers.swap import Swap, find, volume_labels
from kernel.containers.view import TEMP_NAME, ContainerView
from kernel.errors import DockerNotFoundError, RotationError
from kernel.extensions.events import RotationEvent, new_trace_id
from kernel.labels import COMPOSE_PROJECT_LABEL, SHARED_VOLUME_LABEL
from kernel.log import get_logger
from kernel.rotation import fault
from kernel.rotation.choose import choose_strategy, exclusive_resources
from kernel.rotation.files import SecretFiles
from kernel.rotation.journal import Journal, RotationEntry
from kernel.rotation.locks import Acquired, TargetLocks
from kernel.rotation.model import Changes, Fetch, NullObserver, Outcome, Plan, RotationObserver
from kernel.rotation.recovery import Recovered, converge, guarding_lock
from kernel.rotation.states import Strategy
from kernel.rotation.strategies import RotationRun, Settings, TraceLog
from kernel.rotation.targets import (
    compose_identity,
    container_lock_key,
    lock_key_of,
    log_context,
)

if TYPE_CHECKING:
    import docker

    from kernel.paths import Layout

log = get_logger("rotation")


def lock_key(container_name: str) -> str:
    """The lock of a container outside compose (journal entries without a recorded key)."""
    return container_lock_key(container_name)


class RotationEngine:
    """Rotates containers of one Docker daemon, journaling into one state directory."""

    def __init__(
        self,
        client: docker.DockerClient,
        layout: Layout | None = None,
        *,
        journal: Journal | None = None,
        locks: TargetLocks | None = None,
        config: RotationConfig | None = None,
        observer: RotationObserver | None = None,
        trigger: str = "manual",
        health_interval: float = 0.1,
        health_retries: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if journal is None or locks is None:
            if layout is None:
                raise TypeError("pass a layout, or both a journal and locks")
            journal = journal or Journal(layout.state)
            locks = locks or TargetLocks(layout.locks)
        self.client = client
        self.journal = journal
        self.locks = locks
        self.config = config or RotationConfig()
        self.observer: RotationObserver = observer or NullObserver()
        self.trigger = trigger
        self.settings = Settings(
            timeout=self.config.timeout,
            rollback_on_failure=self.config.rollback_on_failure,
            health_interval=health_interval,
            health_retries=health_retries,
            drainer=drainer_for(self.config.drain_timeout),
        )
        self.clock = clock

    # -- planning ---------------------------------------------------------------------------

    def container(self, target: str) -> ContainerView:
        """The container ``target`` names; refuses a rotation's temporary containers."""
        view = find(self.client, target)
        if view is None:
            raise DockerNotFoundError(
                f"no container named {target!r}", hint="`docker ps -a` lists the containers"
            )
        match = TEMP_NAME.match(view.name)
        if match:
            raise RotationError(
                f"{view.name} is a temporary container of rotation {match['rotation']}",
                hint="`docker dso recover` puts it back in order",
            )
        return view

    def plan(
        self,
        view: ContainerView,
        changes: Changes,
        *,
        strategy: str | None = None,
        force: bool = False,
    ) -> Plan:
        """Decide the strategy for ``view`` and check that it can work; touches nothing."""
        shared = self._shared_volumes(view)
        files = SecretFiles.of(view)
        choice = choose_strategy(
            view,
            flag=strategy,
            configured=self.config.strategy,
            env_changed=bool(changes.env),
            files_changed=bool(changes.files),
            has_secret_files=files is not None,
            shared_volumes=shared,
        )
        if changes.files and choice.strategy is not Strategy.NONE:
            if files is None:
                raise RotationError(
                    f"{view.name}: dsofile:// secrets changed, but no secrets directory is "
                    "bind-mounted at its secrets path",
                    hint="recreate the container with `docker dso up`",
                )
            files.check()
        return Plan(
            target=view.name,
            container_id=view.id,
            strategy=choice.strategy,
            reason=choice.reason,
            source=choice.source,
            changes=changes,
            exclusive=tuple(exclusive_resources(view, shared)),
            probe=probe_for(view).describe(),
            forced=force and all(r.old == r.new for r in changes.references),
        )

    def dry_run(
        self, target: str, fetch: Fetch, *, strategy: str | None = None, force: bool = False
    ) -> Outcome:
        """The plan for ``target``, announced to extensions as a dry run; touches nothing."""
        view = self.container(target)
        changes = fetch(view)
        if not changes and not force:
            return _about(view, Outcome(target=view.name, status="up_to_date", old_id=view.id))
        plan = self.plan(view, changes, strategy=strategy, force=force)
        event = self._event(plan, new_trace_id(), "dry-run", view).evolve(dry_run=True)
        self.observer.planned(event)
        return _about(view, Outcome(target=view.name, status="planned", plan=plan, old_id=view.id))

    # -- rotating ---------------------------------------------------------------------------

    def rotate(
        self,
        target: str,
        fetch: Fetch,
        *,
        strategy: str | None = None,
        force: bool = False,
        wait: float = 0.0,
        trace_id: str | None = None,
        stop: threading.Event | None = None,
    ) -> Outcome:
        """Rotate ``target`` if ``fetch`` reports changes (or ``force``); see the module doc.

        Holds the container's lock (its compose service's, if it has one) for the rotation.
        Raises :class:`~kernel.errors.RotationBusyError` when another rotation holds it past
        ``wait``, and errors found while planning (nothing touched then). A failure while
        rotating is not raised: the :class:`Outcome` says what state the containers were left in.
        """
        view = self.container(target)
        key = lock_key_of(view)
        subject = view.name
        if (identity := compose_identity(view)) is not None:
            subject = f"service {identity[1]} (project {identity[0]})"
        with self.locks.hold(key, wait=wait, note=f"rotate {view.name}", subject=subject) as lock:
            if self.settle(key):
                view = self.container(view.name)  # recovery may have replaced it
            return self.rotate_locked(
                view,
                fetch,
                lock=lock,
                strategy=strategy,
                force=force,
                trace_id=trace_id,
                stop=stop,
            )

    def settle(self, key: str) -> list[Recovered]:
        """Before rotating under the lock ``key`` (held by the caller): drop finished journal
        entries past the 7-day retention and converge the unfinished rotations this lock
        guards (a crash). The one place both happen, once per target, not once per container."""
        self.journal.prune()
        done = []
        for pending in self.journal.needing_recovery():
            if guarding_lock(pending) == key:
                log.warning(
                    "recovery: converging unfinished rotation %s of %s first",
                    pending.id,
                    pending.target,
                    extra={
                        "trace_id": pending.trace_id,
                        "rotation": pending.id,
                        **log_context(pending.target, pending.lock_key),
                    },
                )
                done.append(converge(self.client, self.journal, pending, clock=self.clock))
        return done

    def rotate_locked(
        self,
        view: ContainerView,
        fetch: Fetch,
        *,
        lock: Acquired,
        strategy: str | None = None,
        force: bool = False,
        trace_id: str | None = None,
        trigger: str | None = None,
        stop: threading.Event | None = None,
    ) -> Outcome:
        """:meth:`rotate` of ``view`` (inspected by the caller under ``lock``, which it holds).

        ``trace_id`` and ``trigger`` come from whoever decided to rotate (the agent's change
        event; a new trace id and this engine's trigger otherwise). ``stop`` is checked between
        steps: once set, a rotation that has not swapped yet is rolled back (cause ``stopped``),
        one that has is finished.
        """
        name = view.name
        if TEMP_NAME.match(name):
            raise RotationError(f"{name} is a temporary container of a rotation")
        if lock_key_of(view) != lock.target:
            raise RotationError(f"{name} is not guarded by the lock {lock.target}")
        trace_id = trace_id or new_trace_id()
        rotation_id = secrets.token_hex(4)
        trace = TraceLog(
            log,
            {
                "trace_id": trace_id,
                "rotation": rotation_id,
                "target": name,
                **log_context(name, lock.target),
            },
        )
        changes = fetch(view)
        if not changes and not force:
            trace.info("%s is up to date", name)
            outcome = Outcome(
                target=name, status="up_to_date", old_id=view.id, lock_waited=lock.waited
            )
            return _about(view, outcome)
        plan = self.plan(view, changes, strategy=strategy, force=force)
        entry = self._entry(plan, view, rotation_id, trace_id)
        entry.lock = lock.to_dict()
        entry.lock_key = lock.target
        self.journal.save(entry)
        fault.after_journaled(entry.step)
        event = self._event(plan, trace_id, rotation_id, view, trigger=trigger)
        self.observer.planned(event)
        self.observer.started(event)
        trace.info(
            "rotating %s: %s (%s)",
            name,
            plan.strategy.value,
            plan.reason,
            extra={"changed": ",".join(r.variable for r in changes.references)},
        )
        run = RotationRun(
            swap=Swap(self.client, view, rotation_id),
            plan=plan,
            entry=entry,
            journal=self.journal,
            observer=self.observer,
            event=event,
            probe=probe_for(view),
            settings=self.settings,
            log=trace,
            clock=self.clock,
            stop=stop,
        )
        return _about(view, run.run())

    # -- helpers ----------------------------------------------------------------------------

    def _shared_volumes(self, view: ContainerView) -> set[str]:
        return {
            volume.name
            for volume in view.volumes
            if not volume.implicit
            and volume_labels(self.client, volume.name).get(SHARED_VOLUME_LABEL) == "true"
        }

    def _entry(
        self, plan: Plan, view: ContainerView, rotation_id: str, trace_id: str
    ) -> RotationEntry:
        now = self.clock()
        swap_names = Swap(self.client, view, rotation_id)
        changes = plan.changes
        files = SecretFiles.of(view)
        own_dir = (
            files is not None
            and bool(changes.files)
            and plan.strategy in (Strategy.ROLLING, Strategy.RESTART)
        )
        return RotationEntry(
            id=rotation_id,
            trace_id=trace_id,
            target=view.name,
            strategy=plan.strategy.value,
            strategy_reason=plan.reason,
            steps=[{"step": "plan", "at": round(now, 6)}],
            old_id=view.id,
            old_name=view.name,
            old_running=view.running,
            new_name=swap_names.new_name,
            backup_name=swap_names.backup_name,
            old_files_dir=str(files.directory) if files is not None else None,
            files_dir=str(files.rotation_dir(rotation_id)) if files and own_dir else None,
            references={r.variable: r.reference for r in changes.references},
            versions={r.variable: {"from": r.old, "to": r.new} for r in changes.references},
            started_at=now,
            updated_at=now,
            pid=os.getpid(),
            host=socket.gethostname(),
        )

    def _event(
        self,
        plan: Plan,
        trace_id: str,
        rotation_id: str,
        view: ContainerView,
        *,
        trigger: str | None = None,
    ) -> RotationEvent:
        refs = plan.changes.references
        identity = compose_identity(view)
        return RotationEvent(
            trace_id=trace_id,
            rotation_id=rotation_id,
            target=plan.target,
            strategy=plan.strategy.value,
            step="plan",
            project=view.labels.get(COMPOSE_PROJECT_LABEL),
            service=identity[1] if identity else None,
            trigger="forced" if plan.forced else (trigger or self.trigger),
            old_container=view.id,
            references=tuple(r.reference for r in refs),
            versions={r.reference: r.new.partition(":")[2] or r.new for r in refs if r.new},
            fingerprints={r.reference: r.new for r in refs if r.new},
        )


def _about(view: ContainerView, outcome: Outcome) -> Outcome:
    """``outcome`` with the compose project and service of ``view`` filled in."""
    identity = compose_identity(view)
    if identity is not None:
        outcome.project, outcome.service = identity
    return outcome
