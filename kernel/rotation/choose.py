"""Which strategy rotates a container, and why (shown by ``rotate --dry-run``).

The requested strategy comes from, in order: the ``--strategy`` flag, the container's
``dso.strategy`` label, the configured ``agent.rotation.strategy``. ``auto`` picks per container
and never runs two copies of a stateful one:

1. only ``dsofile://`` secrets changed and the container names a reload signal
   (label ``dso.reload.signal``) → ``reload``;
2. something only one container may hold at a time → ``restart``: a fixed published host port,
   a static IP or MAC address, host or shared-container networking, or a volume not marked
   shared (volume label ``dso.shared=true``, or listed in the container label
   ``dso.shared-volumes``);
3. otherwise → ``rolling`` (zero downtime).

An explicit choice that cannot work is refused before anything is touched: ``rolling`` with a
resource two copies cannot hold, ``reload`` when environment variables changed or the container
has no secret files.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from kernel.containers.view import ContainerView
from kernel.errors import UsageError
from kernel.labels import RELOAD_SIGNAL_LABEL, SHARED_VOLUMES_LABEL, STRATEGY_LABEL
from kernel.rotation.states import CONTAINER_STRATEGIES, Strategy

AUTO = "auto"
#: Every value a user may ask for.
CHOICES = (AUTO, *(s.value for s in CONTAINER_STRATEGIES))


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    """The strategy, a one-line human reason, and where the request came from."""

    strategy: Strategy
    reason: str
    #: ``flag``, ``label``, ``config``.
    source: str


def exclusive_resources(view: ContainerView, shared_volumes: Collection[str] = ()) -> list[str]:
    """What only one copy of ``view`` can hold at a time; empty when two may overlap.

    ``shared_volumes``: names of volumes marked shared (their ``dso.shared`` label).
    """
    found = [f"published host port {port}" for port in view.fixed_host_ports]
    found += [f"static address {address}" for address in view.static_addresses]
    mode = view.network_mode
    if mode == "host":
        found.append("host networking")
    elif mode.startswith("container:"):
        found.append(f"the network namespace of {mode.partition(':')[2][:12]}")
    shared = set(shared_volumes) | _label_list(view.labels.get(SHARED_VOLUMES_LABEL, ""))
    for volume in view.volumes:
        if volume.read_write and volume.name not in shared and "*" not in shared:
            label = "anonymous volume" if volume.implicit else "volume"
            found.append(f"{label} {volume.name[:24]} at {volume.destination}")
    return found


def choose_strategy(
    view: ContainerView,
    *,
    flag: str | None,
    configured: str,
    env_changed: bool,
    files_changed: bool,
    has_secret_files: bool,
    shared_volumes: Collection[str] = (),
) -> StrategyChoice:
    """The strategy for ``view``; :class:`UsageError` for an explicit one that cannot work."""
    label = view.labels.get(STRATEGY_LABEL)
    if flag:
        requested, source = flag, "flag"
    elif label:
        requested, source = label, "label"
    else:
        requested, source = configured, "config"
    if requested not in CHOICES:
        where = {"flag": "--strategy", "label": f"label {STRATEGY_LABEL}", "config": "config"}
        raise UsageError(
            f"{view.name}: unknown strategy {requested!r} ({where[source]})",
            hint=f"use one of: {', '.join(CHOICES)}",
        )
    exclusive = exclusive_resources(view, shared_volumes)
    if requested == AUTO:
        return _auto(view, exclusive, env_changed, files_changed, has_secret_files, source)
    strategy = Strategy(requested)
    origin = {"flag": "--strategy", "label": f"label {STRATEGY_LABEL}", "config": "configured"}
    reason = f"{origin[source]} {strategy.value}"
    if strategy is Strategy.ROLLING:
        hard = [item for item in exclusive if "volume" not in item]
        if hard:
            raise UsageError(
                f"{view.name}: cannot run two copies for a rolling rotation: {', '.join(hard)}",
                hint="use --strategy restart (brief downtime) for this container",
            )
        if exclusive:
            reason += f" (two copies will share {', '.join(exclusive)})"
    elif strategy is Strategy.RELOAD:
        _check_reload(view, env_changed, has_secret_files)
    return StrategyChoice(strategy, reason, source)


def _auto(
    view: ContainerView,
    exclusive: list[str],
    env_changed: bool,
    files_changed: bool,
    has_secret_files: bool,
    source: str,
) -> StrategyChoice:
    signal = view.labels.get(RELOAD_SIGNAL_LABEL)
    if files_changed and not env_changed and has_secret_files and signal:
        return StrategyChoice(
            Strategy.RELOAD,
            f"auto: only secret files changed and the container reloads on {signal} "
            f"(label {RELOAD_SIGNAL_LABEL})",
            source,
        )
    if exclusive:
        return StrategyChoice(
            Strategy.RESTART,
            f"auto: only one copy can run at a time ({', '.join(exclusive)})",
            source,
        )
    return StrategyChoice(
        Strategy.ROLLING,
        "auto: no fixed host ports, static addresses or exclusive volumes, so two copies can "
        "overlap (zero downtime)",
        source,
    )


def _check_reload(view: ContainerView, env_changed: bool, has_secret_files: bool) -> None:
    if env_changed:
        raise UsageError(
            f"{view.name}: reload cannot change environment variables; a new container is needed",
            hint="use --strategy rolling or restart",
        )
    if not has_secret_files:
        raise UsageError(
            f"{view.name}: reload needs dsofile:// secrets on a host tmpfs, and it has none",
            hint="use --strategy rolling or restart",
        )


def _label_list(raw: str) -> set[str]:
    return {part.strip() for part in raw.split(",") if part.strip()}
