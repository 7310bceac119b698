"""The values passed into and out of the rotation engine.

- :class:`Changes`: what the caller (CLI, agent) fetched for one container: new values by
  variable, masked as :class:`~kernel.secret_value.SecretValue`, plus the labels to update and a
  description of each changed reference (never a value);
- :class:`Plan`: what a rotation would do and why (``--dry-run`` prints it);
- :class:`Outcome`: what a rotation did;
- :class:`RotationObserver`: the lifecycle events the engine announces. The extensions facade
  (:class:`kernel.extensions.Extensions`) satisfies it; :class:`NullObserver` is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    from kernel.containers.view import ContainerView
    from kernel.extensions.events import RotationEvent, Veto
    from kernel.rotation.states import Strategy


@dataclass(frozen=True, slots=True)
class ChangedReference:
    """One reference whose value is rolled out: where it goes and which versions, no value."""

    variable: str
    #: The reference as written (``dso://app/db``).
    reference: str
    #: ``env`` or ``file``.
    delivery: str
    #: ``provider:version`` in the running container (None when unknown).
    old: str | None
    #: ``provider:version`` being rolled out.
    new: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "reference": self.reference,
            "delivery": self.delivery,
            "from": self.old,
            "to": self.new,
        }


@dataclass(frozen=True, slots=True)
class Changes:
    """New values for one container; empty ``references`` means nothing changed."""

    #: Environment variable → new value.
    env: Mapping[str, SecretValue] = field(default_factory=dict, repr=False)
    #: ``dsofile://`` variable → new value (written to its file).
    files: Mapping[str, SecretValue] = field(default_factory=dict, repr=False)
    #: Labels to set on the new container (``dso.versions``).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The references that changed (what the plan and the journal show).
    references: tuple[ChangedReference, ...] = ()
    #: References checked and found unchanged (for the plan).
    unchanged: tuple[str, ...] = ()
    #: Remarks for the plan, e.g. whether the next ``docker dso up`` will recreate the new
    #: container (never values).
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.references)

    def __repr__(self) -> str:
        return (
            f"Changes(env={sorted(self.env)}, files={sorted(self.files)}, "
            f"references={[r.variable for r in self.references]})"
        )


#: Given the freshly inspected container (under its lock), the values to roll out.
Fetch = Callable[["ContainerView"], Changes]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a rotation of one container will do, decided before anything is touched."""

    target: str
    container_id: str
    strategy: Strategy
    reason: str
    #: ``flag``, ``label`` or ``config``: where the requested strategy came from.
    source: str
    changes: Changes
    #: Resources only one copy can hold (why ``auto`` avoided ``rolling``).
    exclusive: tuple[str, ...]
    #: The health probe that will gate the new container.
    probe: str
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "container": self.container_id[:12],
            "strategy": self.strategy.value,
            "reason": self.reason,
            "strategy_source": self.source,
            "forced": self.forced,
            "changed": [r.to_dict() for r in self.changes.references],
            "unchanged": list(self.changes.unchanged),
            "exclusive": list(self.exclusive),
            "health_probe": self.probe,
            "notes": list(self.changes.notes),
        }


@dataclass(slots=True)
class Outcome:
    """What happened to one container: ``completed``, ``rolled_back``, ``failed``,
    ``critical_error``, ``up_to_date`` (nothing changed), ``planned`` (dry run), ``skipped``
    (a replica not attempted because an earlier one of its service failed) or ``error`` (it
    could not even be planned)."""

    target: str
    status: str
    #: The compose project and service of the container, if it belongs to one.
    project: str | None = None
    service: str | None = None
    plan: Plan | None = None
    rotation_id: str | None = None
    trace_id: str | None = None
    old_id: str | None = None
    new_id: str | None = None
    error: str | None = None
    health: dict[str, Any] | None = None
    #: Seconds per journaled step.
    phases: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    lock_waited: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "up_to_date", "planned")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "project": self.project,
            "service": self.service,
            "status": self.status,
            "rotation_id": self.rotation_id,
            "trace_id": self.trace_id,
            "old_container": self.old_id[:12] if self.old_id else None,
            "new_container": self.new_id[:12] if self.new_id else None,
            "error": self.error,
            "health": self.health,
            "phases": {k: round(v, 4) for k, v in self.phases.items()},
            "elapsed": round(self.elapsed, 4),
            "lock_waited": round(self.lock_waited, 4),
            "plan": self.plan.to_dict() if self.plan else None,
        }


class RotationObserver(Protocol):
    """Lifecycle events of a rotation (docs/extension-hooks.md); only ``before_swap`` decides."""

    def planned(self, event: RotationEvent) -> None: ...

    def started(self, event: RotationEvent) -> None: ...

    def before_swap(self, event: RotationEvent) -> Veto | None: ...

    def after_swap(self, event: RotationEvent) -> None: ...

    def failed(self, event: RotationEvent) -> None: ...

    def rolled_back(self, event: RotationEvent) -> None: ...

    def completed(self, event: RotationEvent) -> None: ...


class NullObserver:
    """Observes nothing and never vetoes (no extensions loaded)."""

    def planned(self, event: RotationEvent) -> None:
        return None

    def started(self, event: RotationEvent) -> None:
        return None

    def before_swap(self, event: RotationEvent) -> Veto | None:
        return None

    def after_swap(self, event: RotationEvent) -> None:
        return None

    def failed(self, event: RotationEvent) -> None:
        return None

    def rolled_back(self, event: RotationEvent) -> None:
        return None

    def completed(self, event: RotationEvent) -> None:
        return None
