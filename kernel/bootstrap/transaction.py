"""Applying a plan as one transaction: its steps in order, the result verified, and on any
failure (a step, the verification, Ctrl-C) every step already done undone in reverse order.

Nothing raises for a failed step: the :class:`Outcome` says which step failed and why, what was
undone, and anything that could not be (the caller reports it and exits non-zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kernel.bootstrap.steps import DaemonReload, Step
from kernel.bootstrap.verify import Verified, verify
from kernel.errors import DSOError

if TYPE_CHECKING:
    from kernel.bootstrap.host import Host
    from kernel.bootstrap.planner import Plan

__all__ = ["Outcome", "StepStatus", "apply_plan", "dry_run"]


class StepStatus(StrEnum):
    """Where one step of a plan ended."""

    #: Shown by ``--dry-run``; not applied.
    PLANNED = "planned"
    #: Applied and kept.
    DONE = "done"
    #: Applied, then undone because a later step (or the verification) failed.
    UNDONE = "undone"
    #: Applied, and undoing it failed too: the outcome's ``undo_errors`` says why.
    UNDO_FAILED = "undo_failed"
    #: The step that failed (it changed nothing that stayed).
    FAILED = "failed"
    #: Not reached.
    SKIPPED = "skipped"


@dataclass
class Outcome:
    """How applying a plan went."""

    plan: Plan
    dry_run: bool = False
    statuses: list[StepStatus] = field(default_factory=list)
    #: Index of the step that failed (None: none did; see ``error`` for the verification).
    failed_step: int | None = None
    #: Why the bootstrap failed, one line.
    error: str | None = None
    hint: str | None = None
    undo_errors: list[str] = field(default_factory=list)
    checks: list[Verified] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def changed(self) -> bool:
        return StepStatus.DONE in self.statuses

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan.to_dict()
        steps = [
            {**step, "status": status.value}
            for step, status in zip(plan.pop("steps"), self.statuses, strict=True)
        ]
        return {
            **plan,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "nothing_to_do": self.plan.nothing_to_do,
            "changed": self.changed,
            "steps": steps,
            "failed_step": None if self.failed_step is None else self.failed_step + 1,
            "error": self.error,
            "hint": self.hint,
            "undo_errors": list(self.undo_errors),
            "checks": [check.to_dict() for check in self.checks],
        }


def dry_run(plan: Plan) -> Outcome:
    """The outcome of not applying ``plan``: every step planned."""
    return Outcome(plan, dry_run=True, statuses=[StepStatus.PLANNED] * len(plan.steps))


def apply_plan(plan: Plan, host: Host) -> Outcome:
    """Apply ``plan``'s steps, verify, and undo everything on a failure."""
    outcome = Outcome(plan, statuses=[StepStatus.SKIPPED] * len(plan.steps))
    done: list[int] = []
    try:
        for index, step in enumerate(plan.steps):
            try:
                step.apply(host)
            except (DSOError, OSError) as exc:
                outcome.statuses[index] = StepStatus.FAILED
                outcome.failed_step = index
                outcome.error = f"step {index + 1} of {len(plan.steps)} ({step.describe()}) "
                outcome.error += f"failed: {_reason(exc)}"
                outcome.hint = exc.hint if isinstance(exc, DSOError) else None
                _rollback(plan.steps, done, outcome, host)
                return outcome
            outcome.statuses[index] = StepStatus.DONE
            done.append(index)
        outcome.checks = verify(plan, host)
    except BaseException:  # Ctrl-C, or a bug: leave the host as it was, then let it go on
        _rollback(plan.steps, done, outcome, host)
        raise
    failed = [check for check in outcome.checks if check.failed]
    if failed:
        outcome.error = "verification failed: " + "; ".join(
            f"{check.id}: {check.summary}" for check in failed
        )
        outcome.hint = next((check.fix for check in failed if check.fix), None)
        _rollback(plan.steps, done, outcome, host)
    return outcome


def _rollback(steps: list[Step], done: list[int], outcome: Outcome, host: Host) -> None:
    """Undo the steps in ``done``, last first; then reload systemd if it was reloaded, so it
    reads the restored unit."""
    reloaded = False
    for index in reversed(done):
        step = steps[index]
        reloaded = reloaded or isinstance(step, DaemonReload)
        try:
            step.undo(host)
        except (DSOError, OSError) as exc:
            outcome.statuses[index] = StepStatus.UNDO_FAILED
            outcome.undo_errors.append(
                f"undo of step {index + 1} ({step.describe()}): {_reason(exc)}"
            )
        else:
            outcome.statuses[index] = StepStatus.UNDONE
    done.clear()
    if reloaded:
        try:
            host.daemon_reload()
        except DSOError as exc:
            outcome.undo_errors.append(f"systemctl daemon-reload after the undo: {exc.message}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DSOError):
        return exc.message
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)
