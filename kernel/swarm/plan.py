"""Planning a Swarm rotation: which mounted secrets get a new version, and the updated spec.

    swaps, unchanged = plan_swaps(service, resolver)        # one resolve batch
    plan = rotation_plan(service, swaps, unchanged, force=False)
    template = swapped_template(service, {old: (new_name, new_id)})

A secret is swapped when its reference now resolves to a version whose name
(:func:`kernel.swarm.secret_versions.secret_name`) differs from the one mounted; the new secret
takes the old one's place in ``ContainerSpec.Secrets`` (same target path, uid, gid and mode):
the ``--secret-rm old --secret-add new`` of the CLI in one update.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.errors import DSOError
from kernel.injection.resolver import Resolved
from kernel.reference import SecretReference, parse_reference
from kernel.rotation.model import ChangedReference, Changes, Plan
from kernel.rotation.states import Strategy
from kernel.swarm.secret_versions import SwarmSecret, fingerprint, secret_labels, secret_name
from kernel.swarm.services import SwarmService

if TYPE_CHECKING:
    from kernel.injection.resolver import Resolver


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


def rotation_plan(
    service: SwarmService, swaps: list[SecretSwap], unchanged: list[str], *, force: bool
) -> Plan:
    """The :class:`Plan` of a rotation (what ``rotate --dry-run`` shows): the swaps, the
    engine's update order and failure action, and notes on what the service's spec lacks."""
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


__all__ = ["SecretSwap", "plan_swaps", "rotation_plan", "swapped_template"]
