"""The journaled steps of one Swarm rotation, after its plan, and how each can end.

    outcome = RotationRun(rotator, entry, event, service, swaps, extra).run()

1. **create_secret**: each new version is created through the API (idempotent: same reference
   and version, same name; a service sharing the secret may have created it already);
2. **update_service**: one ``update_service`` call with the service's current version index
   and its spec, the mounted secrets swapped (:func:`kernel.swarm.plan.swapped_template`). Its
   ``UpdateConfig`` is the service's own (``stack deploy`` proposes ``order: start-first``,
   ``failure_action: rollback``); an extension's veto (``before_swap``) stops the rotation
   before this step;
3. **converge**: the engine's ``UpdateStatus`` is polled until it ends
   (:mod:`kernel.swarm.convergence`): ``completed``, ``rollback_completed`` (the engine rolled
   the update back: a task failed its healthcheck) or ``paused`` (``failure_action: pause``; an
   operator decides);
4. **remove_secrets**: the versions nothing uses any more are removed
   (:mod:`kernel.swarm.unused_versions`): the old ones after ``completed``, the new ones after a
   rollback.

Each step is journaled before it is taken (:class:`RotationEntry.swarm` names the service and
the secret names, never a value), so :mod:`kernel.swarm.recovery` converges a run killed at any
point. Before the update, a failure, a veto or a stop undoes the run (``rolled_back``: the new
versions removed); after it, only the engine's own rollback does. A paused update, or one out of
time, is left ``failed`` for an operator; a stop while the engine rolls leaves the entry at
``converge`` for the next start's recovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel.containers.swarm_update import update_task_template
from kernel.errors import DSOError
from kernel.log import get_logger
from kernel.rotation import fault
from kernel.rotation.model import Outcome
from kernel.rotation.states import RotationStatus, Step
from kernel.swarm.convergence import (
    STOPPED,
    Converged,
    last_task_error,
    rollback_cause,
    wait_converged,
)
from kernel.swarm.plan import SecretSwap, swapped_template
from kernel.swarm.secret_versions import create_secret
from kernel.swarm.unused_versions import remove_when_unused

if TYPE_CHECKING:
    from kernel.extensions.events import RotationEvent
    from kernel.rotation.journal import RotationEntry
    from kernel.swarm.rotation import SwarmRotator
    from kernel.swarm.services import SwarmService

log = get_logger("swarm.rotation")


class Failed(Exception):
    """A step failed: ``cause`` as in kernel.rotation.strategies.CAUSES."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message


class RotationRun:
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


__all__ = ["Failed", "RotationRun"]
