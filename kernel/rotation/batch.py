"""Rotating several targets: each under its own lock, its replicas a canary then several at a
time, the targets side by side with bounded parallelism.

    batch = Batch(settings, connect=connect, resolver=resolver, hasher=hasher)
    results = batch.run(resolve_targets(client, ["web", "worker"], project="shop"))

For each target (:class:`~kernel.rotation.targets.Target`), in a worker thread with its own
Docker client:

1. hold the target's lock (a compose service's lock covers all its replicas) for the whole
   rotation, across processes; converge an unfinished rotation of it first;
2. list its containers *under the lock* (a rotation that waited sees what the previous one left)
   and remove secrets directories of earlier rotations that nothing mounts any more;
3. resolve every reference of those containers in **one** batch (:class:`MemoResolver`): each
   container then rotates **once** with all its changed values, and every replica gets the same
   versions;
4. rotate the replicas in container-number order: the first alone (the canary), then, if it
   rotated with ``rolling``, up to ``parallel`` at a time (flag, label ``dso.parallel``, else
   ``agent.rotation.parallel``), each copy serving before its old container leaves, so the service
   never has fewer serving replicas; the first that fails stops the service's rollout (the rest
   are reported ``skipped``, still serving the old values).

Targets are independent: two services sharing a secret rotate in parallel, and a failure of one
does not stop the other. ``dry_run`` plans every container and touches nothing (no lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.containers.swap import find
from kernel.containers.view import ContainerView
from kernel.errors import DockerNotFoundError, DSOError, UsageError
from kernel.labels import PARALLEL_LABEL
from kernel.log import get_logger
from kernel.rotation.engine import RotationEngine
from kernel.rotation.files import SecretFiles, sweep
from kernel.rotation.journal import Journal
from kernel.rotation.labels import MemoResolver, label_fetch
from kernel.rotation.locks import Acquired, TargetLocks
from kernel.rotation.model import Fetch, Outcome, RotationObserver
from kernel.rotation.states import Strategy
from kernel.rotation.targets import (
    Target,
    compose_identity,
    log_context,
    service_containers,
    version_spread,
)

if TYPE_CHECKING:
    import docker

    from kernel.compose.confighash import ComposeHasher
    from kernel.config.model import RotationConfig
    from kernel.extensions.events import RotationEvent, Veto
    from kernel.injection.resolver import Resolver

#: Targets rotated at the same time by default.
DEFAULT_CONCURRENCY = 4
#: The most replicas of one service rotated at the same time. The default is the configuration's
#: ``agent.rotation.parallel`` (4): measured on 10 replicas under a looping client
#: (bench/rotation_parallel.py, 2 CPUs), 4 takes 0.6-0.7 of the time of 1 with no failed request;
#: 6 or 8 is not clearly faster (the daemon serialises the copies' starts) and runs more copies
#: at once.
MAX_PARALLEL = 32

log = get_logger("rotation.batch")


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """What every target of one ``rotate`` command shares."""

    journal: Journal
    locks: TargetLocks
    config: RotationConfig
    observer: RotationObserver
    strategy: str | None = None
    force: bool = False
    dry_run: bool = False
    #: Seconds to wait for a target's lock.
    wait: float = 60.0
    concurrency: int = DEFAULT_CONCURRENCY
    #: Replicas of one service rotated at the same time after the canary (``--parallel``);
    #: None: the service's ``dso.parallel`` label, else ``agent.rotation.parallel``.
    parallel: int | None = None
    trigger: str = "manual"
    #: The trace id of what decided this batch (the agent's change event); else one per rotation.
    trace_id: str | None = None
    #: Set to stop: no further container starts, one in flight rolls back before its swap.
    stop: threading.Event | None = None


@dataclass(slots=True)
class TargetResult:
    """What happened to one target: an outcome per container, or the error that stopped it."""

    target: Target
    outcomes: list[Outcome] = field(default_factory=list)
    error: DSOError | None = None
    lock_waited: float = 0.0
    #: Container → variable → version, when the replicas hold different versions (dry run).
    mixed: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Replicas rotated at the same time after the canary (1: one after another).
    parallel: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None and all(o.ok for o in self.outcomes)

    @property
    def untouched(self) -> bool:
        """Nothing was rotated (an error stopped the target before any container changed)."""
        return all(o.status in ("error", "skipped") for o in self.outcomes)

    @property
    def status(self) -> str:
        """``error``, ``failed``, ``planned``, ``completed`` or ``up_to_date``."""
        statuses = {o.status for o in self.outcomes}
        if self.error is not None and self.untouched:
            return "error"
        if not self.ok:
            return "failed"
        for status in ("planned", "completed"):
            if status in statuses:
                return status
        return "up_to_date"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.target.to_dict(),
            "status": self.status,
            "containers": [o.target for o in self.outcomes],
            "error": str(self.error) if self.error is not None else None,
            "lock_waited": round(self.lock_waited, 4),
            "mixed_versions": self.mixed,
            "parallel": self.parallel,
        }


class Batch:
    """Runs targets (see the module docstring)."""

    def __init__(
        self,
        settings: BatchSettings,
        *,
        connect: Callable[[], docker.DockerClient],
        resolver: Resolver,
        hasher: ComposeHasher | None = None,
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.resolver = resolver
        self.hasher = hasher

    def run(
        self,
        targets: Iterable[Target],
        on_result: Callable[[TargetResult], None] | None = None,
    ) -> list[TargetResult]:
        """Rotate (or plan) every target; results in the order of ``targets``.

        ``on_result`` is called (from the calling thread) as each target finishes. One target
        runs in the calling thread, so Ctrl-C rolls its rotation back as usual; with several,
        Ctrl-C starts no further target and lets the rotations in flight finish.
        """
        todo = list(targets)
        results: dict[int, TargetResult] = {}
        if len(todo) == 1:
            results[0] = self.one(todo[0])
            if on_result is not None:
                on_result(results[0])
            return [results[0]]
        workers = max(1, min(self.settings.concurrency, len(todo)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dso-rotate") as pool:
            futures = {pool.submit(self.one, target): index for index, target in enumerate(todo)}
            try:
                for future in as_completed(futures):
                    index = futures[future]
                    results[index] = future.result()
                    if on_result is not None:
                        on_result(results[index])
            except BaseException:
                for future in futures:  # Ctrl-C: start nothing more; those running finish
                    future.cancel()
                raise
        return [results[i] for i in range(len(todo))]

    def one(self, target: Target) -> TargetResult:
        """Rotate (or plan) one target with its own Docker client."""
        result = TargetResult(target)
        try:
            client = self.connect()
        except DSOError as exc:  # no daemon: this target's result, not a crash of the caller
            result.error = exc
            return result
        try:
            engine = self._engine(client)
            if self.settings.dry_run:
                self._plan(engine, target, result)
            else:
                self._rotate(engine, target, result)
        except DSOError as exc:
            result.error = exc
        finally:
            client.close()
        return result

    # -- steps ------------------------------------------------------------------------------

    def _plan(self, engine: RotationEngine, target: Target, result: TargetResult) -> None:
        views = self._containers(engine.client, target)
        if target.is_service:
            result.mixed = version_spread(views)
        memo = MemoResolver(self.resolver)
        memo.prefetch(views)
        fetch = label_fetch(memo, force=self.settings.force, hasher=self.hasher)
        for view in views:
            result.outcomes.append(
                engine.dry_run(
                    view.name, fetch, strategy=self.settings.strategy, force=self.settings.force
                )
            )

    def _rotate(self, engine: RotationEngine, target: Target, result: TargetResult) -> None:
        s = self.settings
        with s.locks.hold(
            target.lock_key, wait=s.wait, note=f"rotate {target.name}", subject=target.describe()
        ) as lock:
            result.lock_waited = lock.waited
            engine.settle(target.lock_key)
            views = self._containers(engine.client, target)
            self._sweep(engine.client, views)
            memo = MemoResolver(self.resolver)
            count = memo.prefetch(views)
            context = log_context(None, target.lock_key)
            if s.trace_id:
                context["trace_id"] = s.trace_id
            log.debug(
                "%s: %d containers, %d references resolved in one batch",
                target.name,
                len(views),
                count,
                extra=context,
            )
            fetch = label_fetch(memo, force=s.force, hasher=self.hasher)
            # What will happen: 1 when at most one replica follows the canary.
            result.parallel = min(
                parallel_of(views, s.parallel, s.config.parallel), max(1, len(views) - 1)
            )
            self._rollout(engine, views, fetch, lock, result)

    def _rollout(
        self,
        engine: RotationEngine,
        views: list[ContainerView],
        fetch: Fetch,
        lock: Acquired,
        result: TargetResult,
    ) -> None:
        """Rotate ``views`` in order: one at a time until one has rotated with ``rolling`` (the
        canary), then up to ``result.parallel`` at a time. The first that does not complete
        stops the rollout: nothing further starts, the rest are reported ``skipped``."""
        s = self.settings
        for index, view in enumerate(views):
            if s.stop is not None and s.stop.is_set():
                why = "not rotated: stopping"
                result.outcomes += [_outcome(v, "skipped", why) for v in views[index:]]
                return
            outcome = self._replica(engine, view, fetch, lock, result, s.stop)
            result.outcomes.append(outcome)
            if not outcome.ok:
                why = f"not rotated: the rotation of {view.name} did not complete"
                result.outcomes += [_outcome(v, "skipped", why) for v in views[index + 1 :]]
                return
            rest = views[index + 1 :]
            if outcome.status == "completed" and not _canary(outcome):
                result.parallel = 1  # restart or reload: the copies must not overlap
            if result.parallel > 1 and len(rest) > 1 and _canary(outcome):
                result.outcomes += self._side_by_side(rest, fetch, lock, result)
                return

    def _replica(
        self,
        engine: RotationEngine,
        view: ContainerView,
        fetch: Fetch,
        lock: Acquired,
        result: TargetResult,
        stop: threading.Event | None,
    ) -> Outcome:
        s = self.settings
        try:
            return engine.rotate_locked(
                view,
                fetch,
                lock=lock,
                strategy=s.strategy,
                force=s.force,
                trace_id=s.trace_id,
                stop=stop,
            )
        except DSOError as exc:  # found while planning: this container is untouched
            result.error = result.error or exc
            return _outcome(view, "error", str(exc))

    def _side_by_side(
        self, views: list[ContainerView], fetch: Fetch, lock: Acquired, result: TargetResult
    ) -> list[Outcome]:
        """Rotate ``views`` (after the canary) with up to ``result.parallel`` *before their
        swap* at a time, each worker on its own Docker client. The canary rotated with
        ``rolling``: each copy serves before its old container leaves, so the serving count never
        drops. A slot is freed at the swap (the copy holds the name and the aliases): the old
        container's exit (disconnect, stop, remove) overlaps the next copy's start, so up to
        twice as many workers run. The first that does not complete stops new starts; those in
        flight finish (Ctrl-C or a stop request rolls back those that have not swapped yet)."""
        s = self.settings
        stop = _EitherEvent(s.stop)
        outcomes: list[Outcome | None] = [None] * len(views)
        pending = iter(range(len(views)))
        take = threading.Lock()
        slots = threading.Semaphore(result.parallel)
        failed: list[str] = []
        crashed: list[BaseException] = []

        def halted() -> bool:
            return bool(failed) or stop.is_set()

        def work() -> None:
            try:
                client = self.connect()
            except DSOError as exc:
                with take:
                    result.error = result.error or exc
                    failed.append("")
                return
            try:
                while True:
                    while not slots.acquire(timeout=0.05):
                        if halted():
                            return
                    slot = _Slot(slots)
                    try:
                        with take:
                            index = None if halted() else next(pending, None)
                        if index is None:
                            return
                        engine = self._engine(client, _SlotObserver(s.observer, slot))
                        outcome = self._replica(engine, views[index], fetch, lock, result, stop)
                    finally:
                        slot.release()
                    outcomes[index] = outcome
                    if not outcome.ok:
                        with take:
                            failed.append(views[index].name)
            except BaseException as exc:  # a bug: reported to the caller after the others end
                crashed.append(exc)
                with take:
                    failed.append("")
            finally:
                client.close()

        count = min(2 * result.parallel, len(views))
        workers = [
            threading.Thread(target=work, name=f"dso-replica-{n}", daemon=True)
            for n in range(count)
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException:  # Ctrl-C: roll back what has not swapped, then stop
            stop.set()
            for worker in workers:
                worker.join()
            raise
        if crashed:
            raise crashed[0]
        names = [n for n in failed if n]
        why = (
            f"not rotated: the rotation of {names[0]} did not complete"
            if names
            else "not rotated: stopping"
        )
        return [o or _outcome(v, "skipped", why) for o, v in zip(outcomes, views, strict=True)]

    def _engine(
        self, client: docker.DockerClient, observer: RotationObserver | None = None
    ) -> RotationEngine:
        s = self.settings
        return RotationEngine(
            client,
            journal=s.journal,
            locks=s.locks,
            config=s.config,
            observer=observer or s.observer,
            trigger=s.trigger,
        )

    def _containers(self, client: docker.DockerClient, target: Target) -> list[ContainerView]:
        if target.is_service:
            assert target.project is not None and target.service is not None
            views = service_containers(client, target.project, target.service)
            if not views:
                raise DockerNotFoundError(
                    f"service {target.service} of project {target.project} has no containers",
                    hint="`docker dso up` creates them",
                )
            return views
        found = []
        for name in target.containers:
            view = find(client, name)
            if view is None or view.name != name:
                raise DockerNotFoundError(f"no container named {name!r}")
            found.append(view)
        return found

    def _sweep(self, client: docker.DockerClient, views: Iterable[ContainerView]) -> None:
        """Remove this service's rotation directories that nothing mounts (under its lock)."""
        done = set()
        for view in views:
            files = SecretFiles.of(view)
            if files is None or compose_identity(view) is None:
                continue
            key = (files.directory.parent, files.base_name)
            if key not in done:
                done.add(key)
                try:
                    sweep(client, *key)
                except (DSOError, OSError) as exc:
                    log.warning("could not remove unused secrets directories: %s", exc)


def _outcome(view: ContainerView, status: str, error: str) -> Outcome:
    identity = compose_identity(view) or (None, None)
    return Outcome(
        target=view.name,
        status=status,
        old_id=view.id,
        error=error,
        project=identity[0],
        service=identity[1],
    )


def parallel_of(views: Iterable[ContainerView], flag: int | None, configured: int) -> int:
    """Replicas rotated at the same time: ``flag``, else the ``dso.parallel`` label of the
    service's containers (the first that has one), else ``configured``
    (``agent.rotation.parallel``)."""
    if flag is not None:
        return flag
    for view in views:
        text = view.labels.get(PARALLEL_LABEL)
        if text is None:
            continue
        value = text.strip()
        if not value.isdigit() or not 1 <= int(value) <= MAX_PARALLEL:
            raise UsageError(
                f"{view.name}: label {PARALLEL_LABEL}={text!r} is not a whole number from 1 to "
                f"{MAX_PARALLEL}",
                hint="fix the label in the compose file, or pass --parallel N",
            )
        return int(value)
    return configured


def _canary(outcome: Outcome) -> bool:
    """Did ``outcome`` rotate with ``rolling`` (the strategy that lets copies overlap)? Replicas
    of one service share their labels, ports and volumes, so the rest would choose it too."""
    return (
        outcome.status == "completed"
        and outcome.plan is not None
        and outcome.plan.strategy is Strategy.ROLLING
    )


class _EitherEvent(threading.Event):
    """Set when it is set, or when ``other`` (the batch's stop request) is."""

    def __init__(self, other: threading.Event | None) -> None:
        super().__init__()
        self._other = other

    def is_set(self) -> bool:
        return super().is_set() or (self._other is not None and self._other.is_set())


class _Slot:
    """One of the parallel slots, released once: at the swap, or when the rotation ends."""

    def __init__(self, slots: threading.Semaphore) -> None:
        self._slots = slots
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._slots.release()


class _SlotObserver:
    """``inner``, plus: the swap frees the rotation's slot."""

    def __init__(self, inner: RotationObserver, slot: _Slot) -> None:
        self._inner = inner
        self._slot = slot

    def planned(self, event: RotationEvent) -> None:
        self._inner.planned(event)

    def started(self, event: RotationEvent) -> None:
        self._inner.started(event)

    def before_swap(self, event: RotationEvent) -> Veto | None:
        return self._inner.before_swap(event)

    def after_swap(self, event: RotationEvent) -> None:
        self._slot.release()
        self._inner.after_swap(event)

    def failed(self, event: RotationEvent) -> None:
        self._inner.failed(event)

    def rolled_back(self, event: RotationEvent) -> None:
        self._inner.rolled_back(event)

    def completed(self, event: RotationEvent) -> None:
        self._inner.completed(event)
