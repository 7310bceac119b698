"""Converging interrupted rotations: exactly one container under the canonical name, serving.

:func:`recover` walks every journal entry that is not finished (``in_progress``, ``failed``,
``critical_error``) whose target lock is free (a held lock means a live rotation: the kernel
drops flocks of dead processes, so no age guess is needed), and converges it from what Docker
shows now, using the journal only as a hint:

- the **new** container holds the name → finish forwards: give it the service's network aliases
  and the old container's restart policy if the crash came before those steps, then disconnect,
  stop and remove the old;
- the **old** container holds the name → undo: remove the new one, start the old one if it ran;
- **nobody** holds the name (a crash between the renames):
  - the new container runs and the journal shows it passed its health gate → rename it to the
    name and remove the old one;
  - else the old container exists → rename it back (start it if it ran), remove the new one;
  - else only the new container is left → it becomes the service (never delete the only copy),
    marked ``critical_error`` so an operator checks it;
- **another** container took the name → remove our new copy; keep the old one for an operator.

Then the orphan scan: ``<name>_dso_new_<id>`` / ``<name>_dso_backup_<id>`` containers with no
unfinished entry that this installation created (label ``dso.rotation.owner``: several dso
installations may share a daemon, and another one's rotation in flight is not an orphan). Such
a leftover is removed when the canonical container exists, and renamed to the canonical name
when it does not (never deleting the only copy).

An entry found unfinished with no process working on it gets the cause ``crash``. Entries undone
because of a crash or a lost Docker daemon (not because their health gate failed or an extension
vetoed them) still carry a change that was never rolled out: :func:`resume_targets` names what
``recover`` rotates again (:attr:`RotationEntry.needs_resuming`).

The lock tested is the one the rotation journaled (``lock_key``: a compose container's is its
service's), else the container's own. After converging, the rotation's own secrets directory
(``<dir>@<rotation id>``) and the old container's, when no container mounts them any more, are
removed (:func:`kernel.rotation.files.discard_unmounted`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.containers.drain import sweep as sweep_drain_rules
from kernel.containers.listing import list_containers
from kernel.containers.swap import Swap, ensure_running, find, find_exact, rename
from kernel.containers.view import TEMP_NAME, ContainerView
from kernel.errors import DSOError, RotationBusyError
from kernel.labels import OWNER_LABEL
from kernel.log import get_logger
from kernel.rotation.files import discard_unmounted
from kernel.rotation.journal import Journal, RotationEntry
from kernel.rotation.states import RotationStatus, Strategy
from kernel.rotation.targets import (
    Target,
    compose_identity,
    container_lock_key,
    log_context,
    service_lock_key,
    service_of_lock_key,
)

if TYPE_CHECKING:
    import docker

    from kernel.rotation.locks import TargetLocks

log = get_logger("rotation.recovery")


@dataclass(frozen=True, slots=True)
class Recovered:
    """What recovery did for one rotation entry or orphan."""

    target: str
    rotation_id: str | None
    #: ``forward``, ``rolled_back``, ``adopted``, ``removed_orphan``, ``kept``, ``skipped``.
    action: str
    #: The status written to the journal (None for orphans without an entry).
    status: str | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.status != RotationStatus.CRITICAL_ERROR.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "rotation_id": self.rotation_id,
            "action": self.action,
            "status": self.status,
            "reason": self.reason,
        }


def recover(
    client: docker.DockerClient,
    journal: Journal,
    locks: TargetLocks,
    *,
    lock_key: Callable[[str], str],
    clock: Callable[[], float] = time.time,
) -> list[Recovered]:
    """Converge every unfinished entry whose lock is free, then clean up orphans and the
    connection-forwarding rules of interrupted drains (:mod:`kernel.containers.drain`).

    ``lock_key`` names the lock of an entry that did not journal its own (older entries).
    """
    results: list[Recovered] = []
    live: set[str] = set()
    for entry in journal.needing_recovery():
        if entry.strategy == Strategy.SWARM.value:
            continue  # a Swarm service, not a container: kernel.swarm.recovery
        key = entry.lock_key or lock_key(entry.target)
        try:
            with locks.hold(key, wait=0.0, note="recover"):
                results.append(converge(client, journal, entry, clock=clock))
        except RotationBusyError as exc:
            live.add(entry.target)
            results.append(Recovered(entry.target, entry.id, "skipped", entry.status, exc.message))
    results += _orphans(client, journal, locks, lock_key, live)
    swept = sweep_drain_rules(client)
    if swept:
        log.info("recovery: removed %d connection-forwarding rule(s) of interrupted drains", swept)
    return results


def converge(
    client: docker.DockerClient,
    journal: Journal,
    entry: RotationEntry,
    *,
    clock: Callable[[], float] = time.time,
) -> Recovered:
    """Converge one entry (the caller holds its target's lock) and journal the result."""
    if entry.cause is None and entry.status == RotationStatus.IN_PROGRESS.value:
        entry.cause = "crash"
    try:
        action, status, reason = _converge(client, entry)
    except DSOError as exc:
        action, status, reason = "failed", RotationStatus.CRITICAL_ERROR, exc.message
    entry.finish(status, clock(), error=None if status is RotationStatus.RECOVERED else reason)
    entry.recovery = {"action": action, "reason": reason, "at": round(clock(), 6)}
    journal.save(entry)
    try:
        discard_unmounted(client, [entry.files_dir, entry.old_files_dir])
    except DSOError as exc:
        log.warning("could not remove unused secrets directories: %s", exc.message)
    log.log(
        30 if status is RotationStatus.RECOVERED else 40,
        "recovery of rotation %s (%s): %s: %s",
        entry.id,
        entry.target,
        action,
        reason,
        extra={
            "trace_id": entry.trace_id,
            "rotation": entry.id,
            "target": entry.target,
            **log_context(entry.target, entry.lock_key),
        },
    )
    return Recovered(entry.target, entry.id, action, status.value, reason)


def _converge(client: docker.DockerClient, entry: RotationEntry) -> tuple[str, RotationStatus, str]:
    target = entry.target
    strategy = Strategy(entry.strategy)
    holder = find_exact(client, target)
    old = find(client, entry.old_id) if entry.old_id else None
    new = (find(client, entry.new_id) if entry.new_id else None) or (
        find_exact(client, entry.new_name) if entry.new_name else None
    )
    if strategy in (Strategy.RELOAD, Strategy.NONE):
        if holder is not None and entry.old_running:
            ensure_running(client, holder)
        return "kept", RotationStatus.RECOVERED, f"{strategy.value}: the container was kept"
    if old is None and entry.old_id is None:
        return "kept", RotationStatus.RECOVERED, "nothing had been touched"
    swap = _swap(client, entry, old, new)
    if holder is not None and new is not None and holder.id == new.id:
        _finish_new(swap, entry, old)
        if old is not None:
            _retire(swap, old)
        ensure_running(client, _refresh(client, holder))
        return "forward", RotationStatus.RECOVERED, "the new container held the name: old removed"
    if holder is not None and old is not None and holder.id == old.id:
        swap.remove_new()
        if entry.old_running:
            ensure_running(client, holder)
        return "rolled_back", RotationStatus.RECOVERED, "the old container held the name: kept it"
    if holder is None:
        if new is not None and new.running and entry.health_confirmed:
            _finish_new(swap, entry, old)
            swap.rename_new()
            if old is not None:
                _retire(swap, old)
            reason = "the new container had passed its health gate: finished the swap"
            return "forward", RotationStatus.RECOVERED, reason
        if old is not None:
            rename(client, old, target)
            swap.remove_new()
            if entry.old_running:
                ensure_running(client, _refresh(client, old))
            return "rolled_back", RotationStatus.RECOVERED, "renamed the old container back"
        if new is not None:
            rename(client, new, target)
            ensure_running(client, _refresh(client, new))
            reason = (
                "the old container is gone; the unconfirmed new container now serves under "
                f"{target}: check it"
            )
            return "adopted", RotationStatus.CRITICAL_ERROR, reason
        return "failed", RotationStatus.CRITICAL_ERROR, f"no container is left for {target}"
    # Someone else (compose up, an operator) created a container under the name meanwhile.
    if new is not None:
        swap.remove_new()
    if old is not None and old.id != holder.id:
        reason = f"another container now holds {target}; the old one is kept as {old.name}"
        return "kept", RotationStatus.CRITICAL_ERROR, reason
    return "kept", RotationStatus.RECOVERED, f"another container now holds {target}"


def _swap(
    client: docker.DockerClient,
    entry: RotationEntry,
    old: ContainerView | None,
    new: ContainerView | None,
) -> Swap:
    base = old or new
    assert base is not None
    # Swap needs the old container's view for its names; give it the canonical name.
    raw = dict(base.raw)
    raw["Name"] = "/" + entry.target
    swap = Swap(client, ContainerView(raw), entry.id)
    swap.new_id = new.id if new is not None else None
    return swap


def _finish_new(swap: Swap, entry: RotationEntry, old: ContainerView | None) -> None:
    """The steps a crash may have skipped on a new container that passed its gate: the
    service's aliases (only the old container knows them) and the restart policy."""
    if old is not None and Strategy(entry.strategy) is Strategy.ROLLING:
        swap.old = old
        swap.attach_aliases()
    swap.restore_restart_policy(entry.restart_policy or {})


def guarding_lock(entry: RotationEntry) -> str:
    """The lock an entry's rotation held: the journaled one, else (older entries) the
    container's own."""
    return entry.lock_key or container_lock_key(entry.target)


def resume_targets(entries: Iterable[RotationEntry]) -> list[Target]:
    """What to rotate again for ``entries`` (:attr:`RotationEntry.needs_resuming`): a compose
    container's whole service (so its replicas end on one version), else the container.
    Swarm entries are left out (kernel.swarm.recovery)."""
    found: dict[str, Target] = {}
    for entry in entries:
        if entry.strategy == Strategy.SWARM.value:
            continue  # kernel.swarm.recovery.resume_swarm_targets
        key = guarding_lock(entry)
        if key in found:
            continue
        identity = service_of_lock_key(key)
        if identity is not None:
            found[key] = Target(identity[1], key, *identity)
        else:
            found[key] = Target(entry.target, key, containers=(entry.target,))
    return list(found.values())


def _retire(swap: Swap, old: ContainerView) -> None:
    """Disconnect, stop (its own signal and grace) and remove the old container."""
    swap.old = old
    swap.disconnect_old()
    swap.stop(old.id, old.stop_timeout)
    swap.remove(old.id, force=False)


def _refresh(client: docker.DockerClient, view: ContainerView) -> ContainerView:
    return find(client, view.id) or view


def _orphans(
    client: docker.DockerClient,
    journal: Journal,
    locks: TargetLocks,
    lock_key: Callable[[str], str],
    live: set[str],
) -> list[Recovered]:
    results: list[Recovered] = []
    listed = list_containers(client, name="_dso_")
    unfinished = {e.id for e in journal.needing_recovery()}
    found = []
    for item in listed:
        for name in item.names:
            match = TEMP_NAME.match(name)
            if match and match["target"] not in live and match["rotation"] not in unfinished:
                found.append((match, item.id))
    # Backups first: with no canonical container, the old (known-good) one takes the name.
    found.sort(key=lambda pair: pair[0]["kind"] != "backup")
    for match, container_id in found:
        target, rotation_id = match["target"], match["rotation"]
        seen = find(client, container_id)
        if seen is None or seen.labels.get(OWNER_LABEL) != journal.owner:
            continue
        identity = compose_identity(seen)  # a compose clone locks its service
        key = service_lock_key(*identity) if identity else lock_key(target)
        try:
            with locks.hold(key, wait=0.0, note="recover"):
                orphan = find(client, container_id)
                if orphan is not None and orphan.labels.get(OWNER_LABEL) == journal.owner:
                    results.append(_orphan(client, orphan, target, rotation_id))
        except RotationBusyError:
            continue  # a rotation of the target started meanwhile: its containers, not orphans
    return results


def _orphan(
    client: docker.DockerClient, orphan: ContainerView, target: str, rotation_id: str
) -> Recovered:
    holder = find_exact(client, target)
    if holder is None:
        rename(client, orphan, target)
        ensure_running(client, _refresh(client, orphan))
        reason = f"{orphan.name} was the only copy left: renamed to {target} and started"
        return Recovered(target, rotation_id, "adopted", None, reason)
    swap = Swap(client, holder, rotation_id)
    _retire(swap, orphan)
    return Recovered(target, rotation_id, "removed_orphan", None, f"removed {orphan.name}")
