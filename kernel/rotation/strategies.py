"""The strategies, step by step: each step is journaled before it is taken.

``rolling``  create new (without the service's network aliases) → deliver files → start new →
             health gate → attach aliases → rename old → rename new → restart policy →
             disconnect old → stop old → remove old
``restart``  create new → deliver files → stop old → start new → health gate → rename old →
             rename new → restart policy → remove old
``reload``   deliver files → signal → health gate (the same container)
``none``     nothing

A failure up to the renames rolls back: names restored, the new container removed (or, with
``rollback_on_failure: false``, stopped and kept for inspection) with its own secrets directory,
the files of ``reload`` put back, and for ``restart`` the old container started again. Secret
files are handled by :class:`~kernel.rotation.files.FileDelivery`: ``rolling`` and ``restart``
give the new container its own directory, so the old one keeps its files until it stops.

After the new container holds the name, nothing is rolled back: a failure to stop or remove the
old container leaves the rotation ``failed`` for ``docker dso recover`` to finish.

A ``rolling`` copy gets no client before it is ready: it joins the networks without the
service's aliases (it can reach its database while starting, but Docker's DNS does not hand it
to clients), and only once healthy is it re-attached with them — before the old container gives
them up. Every copy is created with restart policy ``no`` and receives the old one's policy once
it holds the name, so a daemon restart mid-rotation never brings back an unchecked copy.

Why a rotation ended without completing is journaled as its ``cause`` (:data:`CAUSES`):
``recover`` rotates again after an interruption (``docker``, ``crash``), never after a failed
health gate or a veto.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel import telemetry
from kernel.containers.clone import clone_spec, resolve_image
from kernel.containers.drain import Drainer
from kernel.containers.health import HealthReport, Probe
from kernel.containers.swap import Swap, find
from kernel.errors import DockerError, DSOError, RotationError
from kernel.labels import OWNER_LABEL, RELOAD_SIGNAL_LABEL, ROTATION_LABEL
from kernel.rotation import fault
from kernel.rotation.files import FileDelivery, SecretFiles
from kernel.rotation.journal import Journal, RotationEntry
from kernel.rotation.model import Changes, Outcome, Plan, RotationObserver
from kernel.rotation.states import SEQUENCES, RotationStatus, Step, Strategy, can_step

if TYPE_CHECKING:
    from kernel.extensions.events import RotationEvent


#: Why a rotation ended without completing (journal field ``cause``).
CAUSES = {
    "health_gate": "the new container failed its health gate",
    "vetoed": "an extension vetoed the swap",
    "docker": "the Docker daemon failed or went away",
    "interrupted": "interrupted (Ctrl-C)",
    "stopped": "dso was stopping (SIGTERM to the agent) before the swap",
    "error": "a step failed",
    "crash": "the process running it died",
}


class GateFailed(RotationError):
    """The new container did not pass its health gate (internal: always rolled back)."""

    def __init__(self, report: HealthReport) -> None:
        # The reason carries the last finished probe's exit code and output already.
        super().__init__(f"health check failed: {report.reason} ({report.probe})")
        self.report = report


class Stopped(RotationError):
    """A stop was requested before the swap (internal: always rolled back, resumed later)."""

    def __init__(self) -> None:
        super().__init__("stopped before the swap: rolled back, to be rotated again")


class Vetoed(RotationError):
    """An extension refused the swap (internal: always rolled back)."""

    def __init__(self, extension: str, reason: str) -> None:
        super().__init__(f"vetoed by extension {extension!r}: {reason}")
        self.extension = extension


@dataclass(frozen=True, slots=True)
class Settings:
    """How a run behaves (from ``agent.rotation`` and the health gate's defaults)."""

    timeout: float
    rollback_on_failure: bool
    health_interval: float = 0.1
    health_retries: int | None = None
    #: ``rolling``: drains the old container before it leaves its networks (None: leaves at once).
    drainer: Drainer | None = None


class RotationRun:
    """One rotation in progress: its containers, journal entry, event and settings."""

    def __init__(
        self,
        *,
        swap: Swap,
        plan: Plan,
        entry: RotationEntry,
        journal: Journal,
        observer: RotationObserver,
        event: RotationEvent,
        probe: Probe,
        settings: Settings,
        log: TraceLog,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.swap = swap
        self.stop = stop
        self.plan = plan
        self.entry = entry
        self.journal = journal
        self.observer = observer
        self.event = event
        self.probe = probe
        self.settings = settings
        self.log = log
        self.clock = clock
        self.files = FileDelivery(
            SecretFiles.of(swap.old),
            plan.changes.files if plan.strategy is not Strategy.NONE else {},
            entry.id,
            in_place=plan.strategy is Strategy.RELOAD,
        )
        self._old_stopped = False

    # -- entry point ------------------------------------------------------------------------

    def run(self) -> Outcome:
        strategy = self.plan.strategy
        if strategy is Strategy.NONE:
            return self._complete("strategy none: nothing was touched")
        forward = {
            Strategy.ROLLING: self._rolling,
            Strategy.RESTART: self._restart,
            Strategy.RELOAD: self._reload,
        }[strategy]
        try:
            self._check_files()
            forward()
        except BaseException as exc:
            outcome = self._roll_back(exc)
            if not isinstance(exc, Exception):
                raise  # Ctrl-C: rolled back, now stop
            return outcome
        self.observer.after_swap(self._event(step=self.entry.step))
        if strategy is Strategy.RELOAD:
            self.files.retire_replaced()
            return self._complete()
        try:
            self._step(Step.RESTART_POLICY)
            self.swap.restore_restart_policy(self.entry.restart_policy or {})
            if strategy is Strategy.ROLLING:
                self._step(Step.DISCONNECT_OLD)
                with self._drained():
                    self.swap.disconnect_old()
                    self._step(Step.STOP_OLD)
                    self.swap.stop_old()
            self._step(Step.REMOVE_OLD)
            self.swap.remove_old()
        except DSOError as exc:
            return self._cleanup_failed(exc)
        self.files.retire_old(self.swap.client)
        return self._complete()

    @contextlib.contextmanager
    def _drained(self) -> Iterator[None]:
        """New connections to the old container go to the new one and established ones finish
        before the body disconnects it (:mod:`kernel.containers.drain`)."""
        drainer = self.settings.drainer
        old = find(self.swap.client, self.swap.old.id) if drainer else None
        new = find(self.swap.client, self.swap.target) if drainer else None
        if drainer is None or old is None or new is None:
            yield
            return
        with drainer.draining(old, new, self.stop) as drained:
            if drained.forwarded:
                self.log.info(
                    "%s: %s", self.swap.backup_name, drained.describe(), extra=self._ctx()
                )
            yield

    # -- forward paths (up to and including the swap) ---------------------------------------

    def _check_files(self) -> None:
        self.files.check(self.plan.target)

    def _rolling(self) -> None:
        self._create_new()
        self._deliver()
        self._step(Step.START_NEW)
        self.swap.start_new()
        self._gate()
        self._attach_aliases()
        self._swap_names()

    def _restart(self) -> None:
        self._create_new()
        self._deliver()
        self._step(Step.STOP_OLD)
        self._old_stopped = True
        self.swap.stop_old()
        self._step(Step.START_NEW)
        self.swap.start_new()
        self._gate()
        self._swap_names()

    def _reload(self) -> None:
        self._veto()  # before the files are replaced (docs/extension-hooks.md)
        self._deliver()
        self._step(Step.SIGNAL)
        self._signal()
        self._gate(container=self.swap.old.id)

    def _create_new(self) -> None:
        self._step(Step.CREATE_NEW)
        old = self.swap.old
        labels = {
            **self.plan.changes.labels,
            ROTATION_LABEL: self.entry.id,
            OWNER_LABEL: self.journal.owner,
        }
        spec = clone_spec(
            old,
            name=self.swap.new_name,
            env=self.plan.changes.env,
            labels=labels,
            image=resolve_image(self.swap.client, old),
            bind_sources=self.files.prepare(),
            defer_aliases=self.plan.strategy is Strategy.ROLLING,
        )
        self.entry.restart_policy = dict(spec.restart_policy)
        self.entry.new_id = self.swap.create_new(spec)
        self.event = self._event(new_container=self.entry.new_id)
        self.log.info("created %s", self.swap.new_name, extra=self._ctx(new=self.entry.new_id))

    def _deliver(self) -> None:
        self._step(Step.DELIVER_FILES)
        self.files.deliver()

    def _attach_aliases(self) -> None:
        self._step(Step.ATTACH_ALIASES)
        if self.swap.attach_aliases():
            # It left and re-joined a network and came back with another address: whatever it
            # opened while starting is gone with the old one, so it must prove itself again.
            self.log.info("the new container's address changed; health gate again")
            self._check_health()

    def _gate(self, container: str = "") -> None:
        self._step(Step.HEALTH_GATE)
        self._check_health(container)

    def _check_health(self, container: str = "") -> None:
        report = self.swap.gate(
            self.probe,
            timeout=self.settings.timeout,
            retries=self.settings.health_retries,
            container=container,
        )
        report = _redacted(report, self.plan.changes)
        self.entry.health = report.to_dict()
        telemetry.emit(
            "health_gate",
            target=self.entry.target,
            trace_id=self.entry.trace_id,
            healthy=report.healthy,
            seconds=report.elapsed,
            attempts=report.attempts,
            exit_code=report.last_exit_code,
            output=report.last_output,
            reason=report.reason,
            probe=report.probe,
        )
        self.log.info(
            "health gate: %s after %.3fs (%d attempts)",
            report.reason,
            report.elapsed,
            report.attempts,
            extra=self._ctx(),
        )
        if not report.healthy:
            raise GateFailed(report)

    def _swap_names(self) -> None:
        self._veto()
        self._step(Step.RENAME_OLD)
        self.swap.rename_old()
        self._step(Step.RENAME_NEW)
        self.swap.rename_new()

    def _veto(self) -> None:
        veto = self.observer.before_swap(self._event(step=self.entry.step))
        if veto is not None:
            raise Vetoed(veto.extension, veto.reason)

    def _signal(self) -> None:
        self.swap.signal(self.swap.old.labels.get(RELOAD_SIGNAL_LABEL) or "SIGHUP")

    # -- endings ----------------------------------------------------------------------------

    def _roll_back(self, exc: BaseException) -> Outcome:
        error = _describe(exc)
        failed_step = self.entry.step
        self.entry.cause = _cause(exc)
        if isinstance(exc, GateFailed):
            self.entry.health = exc.report.to_dict()
        if isinstance(exc, Vetoed):
            self.log.warning("%s", error, extra=self._ctx())
        else:
            log = self.log.error if isinstance(exc, DSOError) else self.log.exception
            log("step %s failed: %s", failed_step, error, extra=self._ctx())
            self.observer.failed(self._event(step=failed_step, error=error))
        keep = not self.settings.rollback_on_failure and not isinstance(exc, Vetoed)
        if can_step(Strategy(self.entry.strategy), Step(self.entry.step), Step.ROLLBACK):
            self._step(Step.ROLLBACK)
        try:
            self._undo(keep_new=keep)
        except DSOError as undo_exc:
            message = f"{error}; the rollback failed too: {undo_exc.message}"
            self.log.error("rollback failed: %s", undo_exc.message, extra=self._ctx())
            self._finish(RotationStatus.CRITICAL_ERROR, message)
            return self._outcome(RotationStatus.CRITICAL_ERROR, message)
        status = RotationStatus.FAILED if keep else RotationStatus.ROLLED_BACK
        if keep:
            error += f"; the new container is kept, stopped, as {self.swap.new_name}"
        self._finish(status, error)
        if not keep:
            vetoed_by = exc.extension if isinstance(exc, Vetoed) else None
            self.observer.rolled_back(
                self._event(step=failed_step, error=error, vetoed_by=vetoed_by)
            )
        return self._outcome(status, error)

    def _undo(self, *, keep_new: bool) -> None:
        if self.plan.strategy is not Strategy.RELOAD:
            self.swap.restore_names()
            if keep_new:
                self.swap.stop_new()
            else:
                self.swap.remove_new()
        if self.files.undo(keep_new=keep_new) and self.plan.strategy is Strategy.RELOAD:
            self._signal()
            self.files.retire_replaced()
        if self._old_stopped and self.entry.old_running:
            self.swap.start_old()
            current = find(self.swap.client, self.swap.old.id)
            if current is None or not current.running:
                raise RotationError(f"{self.swap.target}: the old container did not start again")

    def _cleanup_failed(self, exc: DSOError) -> Outcome:
        message = (
            f"rotated (the new container serves as {self.swap.target}), but step "
            f"{self.entry.step} failed: {exc.message}; `docker dso recover` finishes it"
        )
        self.log.error("%s", message, extra=self._ctx())
        self._finish(RotationStatus.FAILED, message)
        self.observer.failed(self._event(step=self.entry.step, error=message))
        return self._outcome(RotationStatus.FAILED, message)

    def _complete(self, note: str | None = None) -> Outcome:
        self._finish(RotationStatus.COMPLETED, note)
        self.observer.completed(self._event(step=self.entry.step))
        self.log.info(
            "rotation of %s completed (%s)", self.plan.target, self.plan.strategy, extra=self._ctx()
        )
        return self._outcome(RotationStatus.COMPLETED, note)

    # -- journal ----------------------------------------------------------------------------

    def _step(self, step: Step) -> None:
        """Journal ``step`` durably, then (test mode only) maybe die, then return to take it.

        A stop request is honoured here, before a step up to the swap (rolled back); from the
        renames on, the rotation is finished instead.
        """
        if self.stop is not None and self.stop.is_set() and _stoppable(self.plan.strategy, step):
            raise Stopped()
        self.entry.advance(step, self.clock())
        self.journal.save(self.entry)
        self.log.debug("step %s", step.value, extra=self._ctx())
        fault.after_journaled(step.value)

    def _finish(self, status: RotationStatus, error: str | None) -> None:
        self.entry.finish(status, self.clock(), error=error)
        self.journal.save(self.entry)

    def _outcome(self, status: RotationStatus, error: str | None) -> Outcome:
        return Outcome(
            target=self.plan.target,
            status=status.value,
            plan=self.plan,
            rotation_id=self.entry.id,
            trace_id=self.entry.trace_id,
            old_id=self.entry.old_id,
            new_id=self.entry.new_id,
            error=error,
            health=self.entry.health,
            phases=self.entry.step_times(),
            elapsed=(self.entry.finished_at or self.clock()) - self.entry.started_at,
            lock_waited=float((self.entry.lock or {}).get("waited", 0.0)),
        )

    def _event(self, **changes: object) -> RotationEvent:
        self.event = self.event.evolve(**changes)
        return self.event

    def _ctx(self, **extra: str | None) -> Mapping[str, object]:
        return {"step": self.entry.step, **extra}


class TraceLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that adds the rotation's trace id (and id, target) to every line,
    merged with the call's own ``extra=`` (the stdlib adapter would replace it)."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = kwargs.get("extra")
        merged = dict(self.extra or {})
        if isinstance(extra, Mapping):
            merged.update({k: v for k, v in extra.items() if v is not None})
        kwargs["extra"] = merged
        return msg, kwargs


def _stoppable(strategy: Strategy, step: Step) -> bool:
    """May a stop request still undo the rotation before ``step``? Up to the first rename
    (the signal, for ``reload``): undoing is cheaper than finishing."""
    sequence = SEQUENCES[strategy]
    last = Step.RENAME_OLD if Step.RENAME_OLD in sequence else Step.SIGNAL
    return step in sequence and last in sequence and sequence.index(step) <= sequence.index(last)


def _cause(exc: BaseException) -> str:
    """The :data:`CAUSES` key for ``exc``."""
    if isinstance(exc, Stopped):
        return "stopped"
    if isinstance(exc, GateFailed):
        return "health_gate"
    if isinstance(exc, Vetoed):
        return "vetoed"
    if isinstance(exc, DockerError):
        return "docker"
    if not isinstance(exc, Exception):
        return "interrupted"
    return "error"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DSOError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"internal error: {type(exc).__name__}"


#: Values shorter than this are not searched for in a health check's output (a "1" or "on"
#: would blank out unrelated text and reveal nothing).
_REDACT_MIN = 4


def _redacted(report: HealthReport, changes: Changes) -> HealthReport:
    """The report with the values this rotation delivers masked in the probe's output and in
    the reason quoting it: an app that prints its configuration when a health check fails (or
    its logs, when it stops) must not carry a secret into the journal, the logs, ``status`` or
    the event stream."""
    output, reason = report.last_output, report.reason
    for value in (*changes.env.values(), *changes.files.values()):
        text = value.reveal().decode("utf-8", "replace")
        if len(text) >= _REDACT_MIN:
            output = output.replace(text, "***")
            reason = reason.replace(text, "***")
    if (output, reason) == (report.last_output, report.reason):
        return report
    return dataclasses.replace(report, last_output=output, reason=reason)
