"""Publishing a set of secret files atomically, the way Kubernetes' AtomicWriter does.

A target directory looks like this (``ls -la``)::

    ..2026_11_28_04_13_08.k3j2h1     the current files, 0400, owned by the consumer
    ..data -> ..2026_11_28_04_13_08.k3j2h1
    DB_PASSWORD -> ..data/DB_PASSWORD

An update writes a new timestamped directory, then renames a fresh ``..data`` symlink over the
old one: ``rename(2)`` is atomic, so a reader that opens ``DB_PASSWORD`` sees either every old
file or every new one, never a mix. The per-key links are relative, so they resolve the same on
the host and inside a container that bind-mounts the target directory. The old timestamped
directory is removed after the swap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import StorageError
from kernel.injection.filenames import is_safe_file_name
from kernel.secret_value import SecretValue

#: The symlink naming the current timestamped directory.
DATA = "..data"
_DATA_TMP = "..data_tmp"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who may read the files: the container's numeric user and group."""

    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"


def publish(target: Path, files: Mapping[str, SecretValue], owner: Owner) -> Path:
    """Make ``target`` hold exactly ``files`` (name → value), switching atomically.

    ``target`` is created (0700) if needed. Files are 0400; they, their directory and
    ``target`` belong to ``owner``. Returns the new timestamped directory. Raises
    :class:`StorageError` (naming paths, never values) when anything cannot be written.
    """
    for name in files:
        if not is_safe_file_name(name):
            raise ValueError(f"unsafe secret file name {name!r}")
    try:
        return _publish(target, files, owner)
    except PermissionError as exc:
        raise StorageError(
            f"cannot write secret files for uid {owner.uid} in {target}: {exc.strerror}",
            hint=_owner_hint(owner),
        ) from None
    except OSError as exc:
        raise StorageError(
            f"cannot write secret files in {target}: {exc.strerror or exc}",
            hint="check free space on the tmpfs (df -h) and its permissions",
        ) from None


def _publish(target: Path, files: Mapping[str, SecretValue], owner: Owner) -> Path:
    with contextlib.suppress(FileExistsError):
        target.mkdir(mode=0o700)
    _own(target, owner, 0o700)
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
    version = Path(tempfile.mkdtemp(prefix=f"..{stamp}.", dir=target))
    try:
        for name, value in files.items():
            _write(version / name, value, owner)
        _own(version, owner, 0o700)
        _replace_link(target, DATA, version.name)
        for name in files:
            _replace_link(target, name, f"{DATA}/{name}")
    except BaseException:
        remove_tree(version)
        raise
    for entry in os.scandir(target):
        name = entry.name
        if name in (DATA, version.name):
            continue
        if name.startswith(".."):
            # Older versions (the previous one included) and leftovers of an interrupted run.
            if entry.is_dir(follow_symlinks=False):
                remove_tree(Path(entry.path))
            elif entry.is_symlink():
                os.unlink(entry.path)
        elif name not in files and entry.is_symlink():
            os.unlink(entry.path)
    return version


def current_files(target: Path) -> dict[str, bytes]:
    """What a reader of ``target`` sees now, name → bytes (tests and diagnostics)."""
    data = target / DATA
    if not data.is_symlink():
        return {}
    return {entry.name: entry.read_bytes() for entry in data.iterdir()}


def _write(path: Path, value: SecretValue, owner: Owner) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o400)
    try:
        view = memoryview(value.reveal())
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o400)
        if (os.geteuid(), os.getegid()) != (owner.uid, owner.gid):
            os.fchown(fd, owner.uid, owner.gid)
    finally:
        os.close(fd)


def _own(path: Path, owner: Owner, mode: int) -> None:
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)


def _replace_link(directory: Path, name: str, destination: str) -> None:
    link = directory / name
    with contextlib.suppress(OSError):
        if os.readlink(link) == destination:
            return
    tmp = directory / (_DATA_TMP if name == DATA else f"..{name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(destination, tmp)
    os.replace(tmp, link)


def remove_tree(path: Path) -> None:
    """Remove ``path``, also when dso is not root and a directory is not writable."""

    def retry(func: Callable[..., object], failed: str, exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
        with contextlib.suppress(FileNotFoundError):
            func(failed)

    with contextlib.suppress(FileNotFoundError):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:
            shutil.rmtree(path, onerror=retry)


def _owner_hint(owner: Owner) -> str:
    if os.geteuid() != 0 and owner.uid != os.geteuid():
        return (
            f"dso runs as uid {os.geteuid()} and cannot give files to uid {owner.uid}: run it as "
            "root (sudo docker dso up), or set the service's user: to your own uid"
        )
    return "check the permissions of the secrets directory (DSO_SECRETS_DIR)"
