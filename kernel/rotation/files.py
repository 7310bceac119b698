"""Secret files of a container during a rotation: snapshot, publish, restore.

The files live in a directory on a host tmpfs, bind-mounted read-only into the container at its
secrets path (label ``dso.secrets.path``, default ``/run/secrets/dso``), and are switched with
the atomic ``..data`` symlink swap of :mod:`kernel.injection.atomic_dir` (the module compose
injection uses), so a reader inside the container sees all old files or all new ones. The new
container of a rolling or restart rotation binds the same directory; ``reload`` keeps the
container. A rotation that fails republishes the snapshot it took, so the old container is left
with the files it had.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kernel.compose.scan import DEFAULT_MOUNT, MOUNT_LABEL
from kernel.containers.view import ContainerView
from kernel.errors import RotationError
from kernel.injection.atomic_dir import Owner, current_files, publish
from kernel.injection.filenames import file_name
from kernel.injection.tmpfs import require_tmpfs
from kernel.secret_value import SecretValue


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
        files = self.snapshot()
        files.update({file_name(variable): value for variable, value in variables.items()})
        publish(self.directory, files, self._owner())

    def restore(self, snapshot: Mapping[str, SecretValue]) -> None:
        """Switch back to ``snapshot`` (from :meth:`snapshot`)."""
        publish(self.directory, snapshot, self._owner())

    def _owner(self) -> Owner:
        st = os.stat(self.directory)
        return Owner(st.st_uid, st.st_gid)
