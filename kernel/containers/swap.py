"""The container operations of a swap, one method per journaled step, and their undo.

The order (and the journal write before each step) belongs to the strategies in
:mod:`kernel.rotation.strategies`; this module only knows how to do each step on the daemon and
how to undo it:

- before the renames, undo = remove the new container; the old one was never touched;
- after a partial rename, undo = :meth:`Swap.restore_names` (whatever was renamed goes back);
- the old container is stopped with *its* stop signal and grace period, and removed without
  ``-v``: its implicit volumes now belong to the new container;
- a ``rolling`` copy runs without the old container's network aliases until it is healthy
  (:meth:`Swap.attach_aliases` then re-joins each such network with them) and with restart
  policy ``no`` until it holds the name (:meth:`Swap.restore_restart_policy`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel.containers.client import docker_errors
from kernel.containers.clone import CloneSpec, connect, create
from kernel.containers.health import HealthReport, Probe, wait_healthy
from kernel.containers.view import ContainerView, backup_name, new_name
from kernel.errors import DockerError, DockerNotFoundError

if TYPE_CHECKING:
    import docker

#: Seconds added to a container's grace period for the stop call's HTTP timeout.
_STOP_SLACK = 5


def find(client: docker.DockerClient, name_or_id: str) -> ContainerView | None:
    """The container called (or with id) ``name_or_id``, or None."""
    try:
        with docker_errors(f"inspecting {name_or_id}"):
            return ContainerView(client.api.inspect_container(name_or_id))
    except DockerNotFoundError:
        return None


def find_exact(client: docker.DockerClient, name: str) -> ContainerView | None:
    """The container whose name is exactly ``name`` (an id prefix does not count)."""
    view = find(client, name)
    return view if view is not None and view.name == name else None


def volume_labels(client: docker.DockerClient, name: str) -> dict[str, str]:
    """A volume's labels ({} when it is gone)."""
    try:
        with docker_errors(f"inspecting volume {name}"):
            return dict(client.api.inspect_volume(name).get("Labels") or {})
    except DockerNotFoundError:
        return {}


class Swap:
    """The containers of one rotation: the old one, and the new one once created."""

    def __init__(self, client: docker.DockerClient, old: ContainerView, rotation_id: str) -> None:
        self.client = client
        self.old = old
        self.target = old.name
        self.new_name = new_name(self.target, rotation_id)
        self.backup_name = backup_name(self.target, rotation_id)
        self.new_id: str | None = None

    # -- forward ----------------------------------------------------------------------------

    def create_new(self, spec: CloneSpec) -> str:
        self.new_id = create(self.client, spec)
        return self.new_id

    def start_new(self) -> None:
        self._start(self._new(), self.new_name)

    def gate(
        self, probe: Probe, *, timeout: float, retries: int | None = None, container: str = ""
    ) -> HealthReport:
        """Health-gate the new container (or ``container``, for reload)."""
        return wait_healthy(
            self.client, container or self._new(), probe, timeout=timeout, retries=retries
        )

    def attach_aliases(self) -> bool:
        """Give the new container the old one's network aliases; True if an address moved.

        Docker can only set an endpoint's aliases when it joins a network, so each network
        where the old container has aliases is left and joined again. The new container has no
        clients yet (nothing resolved it), so nothing is cut; the address it gets back is
        normally the same (the first free one). Networks already carrying the aliases are left
        alone, so this is idempotent (recovery calls it again).
        """
        container = self._new()
        current = find(self.client, container)
        if current is None:
            raise DockerNotFoundError(f"{self.new_name} is gone")
        joined = {n.network_id: n for n in current.networks}
        moved = False
        for wanted in self.old.networks:
            have = joined.get(wanted.network_id)
            if not wanted.aliases or (have and set(wanted.aliases) <= set(have.aliases)):
                continue
            if have is not None:
                with docker_errors(f"re-attaching {self.new_name} to {wanted.name}"):
                    self.client.api.disconnect_container_from_network(container, wanted.network_id)
            connect(self.client, container, wanted)
            after = find(self.client, container)
            addresses = {n.network_id: n.ip_address for n in after.networks} if after else {}
            moved |= have is None or addresses.get(wanted.network_id) != have.ip_address
        return moved

    def restore_restart_policy(self, policy: Mapping[str, Any]) -> None:
        """Give the new container the old one's restart policy (it was created with ``no``)."""
        name = str(policy.get("Name") or "no")
        if name == "no":
            return
        with docker_errors(f"setting restart policy {name} on {self.target}"):
            self.client.api.update_container(
                self._new(),
                restart_policy={
                    "Name": name,
                    "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0),
                },
            )

    def rename_old(self) -> None:
        self._rename(self.old.id, self.backup_name)

    def rename_new(self) -> None:
        self._rename(self._new(), self.target)

    def disconnect_old(self) -> None:
        """Leave every network, so Docker's DNS stops answering the aliases with the old IP."""
        for network in self.old.networks:
            try:
                with docker_errors(f"disconnecting {self.backup_name} from {network.name}"):
                    self.client.api.disconnect_container_from_network(
                        self.old.id, network.network_id
                    )
            except DockerNotFoundError:
                continue

    def stop_old(self) -> None:
        self.stop(self.old.id, self.old.stop_timeout)

    def start_old(self) -> None:
        self._start(self.old.id, self.target)

    def remove_old(self) -> None:
        self.remove(self.old.id, force=False)

    def signal(self, signal: str) -> None:
        """Send ``signal`` (``SIGHUP``) to the old container: the ``reload`` strategy."""
        with docker_errors(f"sending {signal} to {self.target}"):
            self.client.api.kill(self.old.id, signal=signal)

    # -- undo -------------------------------------------------------------------------------

    def remove_new(self) -> None:
        """Remove the new container, wherever it got to (idempotent)."""
        if self.new_id is None:
            found = find_exact(self.client, self.new_name)
            if found is None:
                return
            self.new_id = found.id
        self.remove(self.new_id, force=True)

    def stop_new(self) -> None:
        if self.new_id is not None:
            self.stop(self.new_id, self.old.stop_timeout)

    def restore_names(self) -> None:
        """Undo a partial rename: the new container gives the name back, the old one takes it."""
        if self.new_id is not None:
            current = find(self.client, self.new_id)
            if current is not None and current.name == self.target:
                self._rename(self.new_id, self.new_name)
        current = find(self.client, self.old.id)
        if current is not None and current.name != self.target:
            self._rename(self.old.id, self.target)

    # -- primitives -------------------------------------------------------------------------

    def stop(self, container: str, grace: int) -> None:
        """``docker stop`` with the container's own signal (the daemon reads it) and grace."""
        try:
            with docker_errors(f"stopping {container[:12]}"):
                self.client.api.stop(container, timeout=grace)
        except DockerNotFoundError:
            return

    def remove(self, container: str, *, force: bool) -> None:
        try:
            with docker_errors(f"removing {container[:12]}"):
                self.client.api.remove_container(container, force=force, v=False)
        except DockerNotFoundError:
            return
        except DockerError as exc:
            # AutoRemove containers vanish on stop; the daemon may report the removal in flight.
            if "already in progress" in exc.message:
                return
            raise

    def _start(self, container: str, label: str) -> None:
        with docker_errors(f"starting {label}"):
            self.client.api.start(container)

    def _rename(self, container: str, name: str) -> None:
        with docker_errors(f"renaming {container[:12]} to {name}"):
            self.client.api.rename(container, name)

    def _new(self) -> str:
        if self.new_id is None:
            raise RuntimeError("the new container has not been created")
        return self.new_id


def rename(client: docker.DockerClient, view: ContainerView, name: str) -> None:
    """Give ``view`` the name ``name`` (nothing when it has it already)."""
    if view.name != name:
        with docker_errors(f"renaming {view.name} to {name}"):
            client.api.rename(view.id, name)


def ensure_running(client: docker.DockerClient, view: ContainerView) -> None:
    """Start ``view`` if it is not running (recovery, rollback of ``restart``)."""
    if not view.running:
        with contextlib.suppress(DockerNotFoundError), docker_errors(f"starting {view.name}"):
            client.api.start(view.id)
