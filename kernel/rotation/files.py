"""Secret files of a container during a rotation: where the new container reads them, and undo.

The files live in a directory on a host tmpfs, bind-mounted read-only into the container at its
secrets path (label ``dso.secrets.path``, default ``/run/secrets/dso``), published with the
atomic ``..data`` symlink swap of :mod:`kernel.injection.atomic_dir`, so a reader inside the
container that resolves ``..data`` once sees all old files or all new ones (docs/rotation.md,
"Reading a set of files consistently").

- ``rolling`` and ``restart`` give the new container **its own directory**, a sibling of the old
  one named ``<dir>@<rotation id>`` (``shop/web@1a2b3c4d`` next to ``shop/web``), holding the
  old files with the changed ones replaced. The old container keeps reading the old files,
  untouched, until it is stopped; a rollback just removes the new directory. Once the old
  container is gone, its directory is removed too if it was a rotation's own (the shared
  directory ``docker dso up`` writes is never removed here).
- ``reload`` keeps the container, so its directory is switched in place; a rollback publishes
  the snapshot taken before. The version a swap replaced is kept for readers still in it, and
  removed once :data:`~kernel.injection.atomic_dir.RETIRED_GRACE` has passed: the rotation waits
  that long (holding its lock) before it ends, so no old value outlives it on the tmpfs.

Rotation directories no container mounts any more (a crash, a rollback kept for inspection
that ``recover`` later removed) are removed by :func:`discard_unmounted` and :func:`sweep`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.compose.scan import DEFAULT_MOUNT
from kernel.containers.listing import list_containers
from kernel.containers.view import ContainerView
from kernel.errors import DSOError, RotationBusyError, RotationError
from kernel.injection.atomic_dir import (
    Owner,
    current_files,
    publish,
    remove_retired,
    remove_tree,
)
from kernel.injection.filenames import file_name
from kernel.injection.tmpfs import require_tmpfs
from kernel.labels import MOUNT_LABEL
from kernel.log import get_logger
from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    import docker

    from kernel.rotation.locks import TargetLocks

#: ``<name>@<rotation id>``: a directory made by one rotation for its new container.
ROTATION_DIR = re.compile(r"^(?P<base>[^@]+)@(?P<rotation>[0-9a-f]{8})$")

log = get_logger("rotation.files")


class SecretFiles:
    """The host directory behind a container's secrets path."""

    def __init__(self, directory: Path, mount_path: str) -> None:
        self.directory = directory
        self.mount_path = mount_path

    def __repr__(self) -> str:
        return f"SecretFiles({str(self.directory)!r} -> {self.mount_path})"

    @classmethod
    def of(cls, view: ContainerView) -> SecretFiles | None:
        """The secrets directory of ``view``, or None when it has no such bind mount."""
        mount_path = view.labels.get(MOUNT_LABEL) or DEFAULT_MOUNT
        source = view.bind_source(mount_path)
        if source is None:
            return None
        return cls(Path(source), mount_path)

    @property
    def base_name(self) -> str:
        """The directory's name without a rotation suffix (``web`` for ``web@1a2b3c4d``)."""
        match = ROTATION_DIR.match(self.directory.name)
        return match["base"] if match else self.directory.name

    def rotation_dir(self, rotation_id: str) -> Path:
        """Where rotation ``rotation_id`` puts the new container's files (a sibling)."""
        return self.directory.parent / f"{self.base_name}@{rotation_id}"

    def check(self) -> None:
        """Refuse to write anywhere but a tmpfs (a secret must never reach a disk)."""
        if not self.directory.is_dir():
            raise RotationError(
                f"the secrets directory {self.directory} (mounted at {self.mount_path}) is gone",
                hint="recreate the container with `docker dso up`",
            )
        require_tmpfs(self.directory)

    def snapshot(self) -> dict[str, SecretValue]:
        """What the container reads now: file name → value."""
        return {name: SecretValue(data) for name, data in current_files(self.directory).items()}

    def publish(self, variables: Mapping[str, SecretValue]) -> None:
        """Switch to the current files with ``variables`` (variable → value) replaced."""
        publish(self.directory, self.updated(variables), self.owner())

    def updated(self, variables: Mapping[str, SecretValue]) -> dict[str, SecretValue]:
        """The current files with ``variables`` (variable → value) replaced."""
        files = self.snapshot()
        files.update({file_name(variable): value for variable, value in variables.items()})
        return files

    def restore(self, snapshot: Mapping[str, SecretValue]) -> None:
        """Switch back to ``snapshot`` (from :meth:`snapshot`)."""
        publish(self.directory, snapshot, self.owner())

    def owner(self) -> Owner:
        st = os.stat(self.directory)
        return Owner(st.st_uid, st.st_gid)


class FileDelivery:
    """The secret files of one rotation: prepared, delivered, undone, and the old ones retired.

    ``in_place`` (``reload``) switches the container's own directory; otherwise the new
    container gets :meth:`SecretFiles.rotation_dir` (see the module docstring).
    """

    def __init__(
        self,
        files: SecretFiles | None,
        changed: Mapping[str, SecretValue],
        rotation_id: str,
        *,
        in_place: bool,
    ) -> None:
        self.files = files
        self.changed = changed
        self.in_place = in_place
        self.new_dir: Path | None = None
        if files is not None and changed and not in_place:
            self.new_dir = files.rotation_dir(rotation_id)
        self._snapshot: dict[str, SecretValue] | None = None
        self._made = False

    def __repr__(self) -> str:
        return f"FileDelivery({self.files!r}, changed={sorted(self.changed)}, new={self.new_dir})"

    def check(self, target: str) -> None:
        if not self.changed:
            return
        if self.files is None:
            raise RotationError(
                f"{target}: has dsofile:// secrets but no secrets directory "
                "bind-mounted at its secrets path"
            )
        self.files.check()

    def prepare(self) -> dict[str, str]:
        """Create the new container's (empty) directory; the bind sources its clone needs.

        Docker refuses to create a container whose bind source does not exist, so the
        directory is made before the container and filled by :meth:`deliver` before start.
        """
        if self.files is None or self.new_dir is None:
            return {}
        publish(self.new_dir, {}, self.files.owner())
        self._made = True
        return {self.files.mount_path: str(self.new_dir)}

    def deliver(self) -> None:
        """Publish the new files: into the new directory, or in place (``reload``)."""
        if self.files is None or not self.changed:
            return
        if self.new_dir is not None:
            publish(self.new_dir, self.files.updated(self.changed), self.files.owner())
            self._made = True
            # The empty version of prepare(): the new container has not started, nobody reads it.
            with contextlib.suppress(OSError):
                remove_retired(self.new_dir, grace=0)
        elif self.in_place:
            self._snapshot = self.files.snapshot()
            self.files.publish(self.changed)

    def undo(self, *, keep_new: bool) -> bool:
        """Undo :meth:`deliver`; True when files were switched back in place (signal again)."""
        if self._snapshot is not None and self.files is not None:
            self.files.restore(self._snapshot)
            return True
        if self.new_dir is not None and self._made and not keep_new:
            remove_tree(self.new_dir)
        return False

    def retire_replaced(self) -> None:
        """After ``reload``'s signal and gate (or its rollback): wait until no reader can still
        be in the version the swap replaced, then remove it, so the old values leave the tmpfs.

        Waits out what remains of ``RETIRED_GRACE`` since the swap. Best effort: on failure the
        next publication of the directory removes it.
        """
        if self.files is None or self._snapshot is None:
            return
        try:
            remove_retired(self.files.directory, wait=True)
        except OSError as exc:
            log.warning(
                "could not remove the replaced secret files in %s: %s", self.files.directory, exc
            )

    def retire_old(self, client: docker.DockerClient) -> None:
        """After the old container is removed: drop its directory if it was a rotation's own.

        Best effort (the rotation is done): a failure is logged, and the next rotation of the
        service or ``docker dso recover`` retries.
        """
        if self.files is None or self.new_dir is None:
            return
        try:
            discard_unmounted(client, [self.files.directory])
        except (DSOError, OSError) as exc:
            log.warning(
                "could not remove the old secrets directory %s: %s", self.files.directory, exc
            )


def mounted_sources(client: docker.DockerClient) -> set[str]:
    """Host paths bind-mounted by any container of the daemon, running or not."""
    found: set[str] = set()
    for item in list_containers(client):
        for source in item.bind_sources:
            found.update((source, os.path.realpath(source)))
    return found


def discard_unmounted(
    client: docker.DockerClient, paths: Iterable[Path | str | None]
) -> list[Path]:
    """Remove the rotation directories among ``paths`` that no container mounts; which ones.

    Only ``<name>@<rotation id>`` directories are ever removed: the shared directory of a
    compose service belongs to ``docker dso up``/``down``.
    """
    candidates = [Path(p) for p in paths if p and ROTATION_DIR.match(Path(p).name)]
    candidates = [p for p in candidates if p.is_dir()]
    if not candidates:
        return []
    mounted = mounted_sources(client)
    removed = []
    for path in candidates:
        if str(path) not in mounted and os.path.realpath(path) not in mounted:
            remove_tree(path)
            removed.append(path)
    return removed


def sweep(client: docker.DockerClient, parent: Path, base_name: str) -> list[Path]:
    """Remove ``<parent>/<base_name>@*`` directories no container mounts.

    The caller holds the lock of the service they belong to, so no rotation of it is between
    creating its directory and creating its container.
    """
    with contextlib.suppress(FileNotFoundError):
        entries = [
            Path(e.path)
            for e in os.scandir(parent)
            if e.is_dir(follow_symlinks=False)
            and (m := ROTATION_DIR.match(e.name)) is not None
            and m["base"] == base_name
        ]
        return discard_unmounted(client, entries)
    return []


def sweep_base(client: docker.DockerClient, base: Path, locks: TargetLocks) -> list[Path]:
    """:func:`sweep` every compose service's rotation directories under a secrets ``base``
    (``<base>/<project>/<service>@<id>``), each under its service's lock; a service being
    rotated right now is skipped."""
    from kernel.rotation.targets import service_lock_key

    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        projects = [Path(e.path) for e in os.scandir(base) if e.is_dir(follow_symlinks=False)]
        for project_dir in projects:
            bases = {
                m["base"]
                for e in os.scandir(project_dir)
                if (m := ROTATION_DIR.match(e.name)) is not None
            }
            for name in sorted(bases):
                key = service_lock_key(project_dir.name, name)
                with contextlib.suppress(RotationBusyError), locks.hold(key, wait=0.0):
                    removed += sweep(client, project_dir, name)
    return removed
