"""Publishing a set of secret files atomically, the way Kubernetes' AtomicWriter does.

A target directory looks like this (``ls -la``)::

    ..2026_11_28_04_13_08.k3j2h1     the current files, 0400, owned by the consumer
    ..data -> ..2026_11_28_04_13_08.k3j2h1
    DB_PASSWORD -> ..data/DB_PASSWORD

An update writes a new timestamped directory, then renames a fresh ``..data`` symlink over the
old one: ``rename(2)`` is atomic, so a reader that resolves ``..data`` once and opens every file
through that directory sees either every old file or every new one, never a mix (one that opens
``A`` then ``B`` through the per-key links may straddle a swap). The per-key links are relative,
so they resolve the same on the host and inside a container that bind-mounts the target
directory. The version a swap replaced stays :data:`RETIRED_GRACE` seconds for readers still in
it (:func:`remove_retired`); older ones are removed at the swap.

Every directory is opened without following a symlink at its last component, and written only
when it is on a tmpfs: the parent of a target must be dso's own and writable by no one else (so
nobody can plant a symlink or a directory of theirs where a secret is about to be written), and
the bytes of a file go through a descriptor of the directory they land in.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hmac
import os
import shutil
import stat
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
#: Seconds a version directory is kept after the swap that replaced it: how long a reader may
#: take between resolving ``..data`` and opening its last file through it. Such a reader needs
#: microseconds; 2 s also covers a process descheduled or CPU-throttled many times over (the
#: CFS quota period is 0.1 s), and a ``reload`` rotation waits it out (docs/rotation.md).
RETIRED_GRACE = 2.0
#: ``f_type`` of a tmpfs in ``statfs(2)`` (linux/magic.h).
TMPFS_MAGIC = 0x01021994
#: Opens a directory, never what a symlink points to.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
    _make_target(target, owner)
    previous = _current_version(target)
    if previous is not None and _holds(target, previous, files, owner):
        # Nothing to switch (``up`` with unchanged secrets): no swap, so nothing is retired and
        # no reader has to be waited for.
        return target / previous
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
    _remove_older(target, version.name, previous, files)
    return version


def _holds(target: Path, version: str, files: Mapping[str, SecretValue], owner: Owner) -> bool:
    """``target`` already shows exactly ``files`` through ``version``: same names and bytes,
    0400 and ``owner``'s, every per-key link in place and none left over."""
    try:
        fd = open_dir(target / version)
    except (OSError, StorageError):
        return False
    try:
        if sorted(os.listdir(fd)) != sorted(files):
            return False
        for name, value in files.items():
            if os.readlink(target / name) != f"{DATA}/{name}":
                return False
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                st = os.fstat(file_fd)
                wanted = value.reveal()
                if (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (owner.uid, owner.gid, 0o400):
                    return False
                if st.st_size != len(wanted) or not hmac.compare_digest(
                    _read_all(file_fd, st.st_size), wanted
                ):
                    return False
            finally:
                os.close(file_fd)
        links = {e.name for e in os.scandir(target) if not e.name.startswith("..")}
        return links == set(files)
    except OSError:
        return False
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0 and (chunk := os.read(fd, size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _current_version(target: Path) -> str | None:
    """The version directory ``..data`` names now, or None."""
    try:
        name = os.readlink(target / DATA)
    except OSError:
        return None
    return name if name.startswith("..") and "/" not in name else None


def _remove_older(
    target: Path, current: str, previous: str | None, files: Mapping[str, SecretValue]
) -> None:
    """After a swap: remove every version but ``current`` and ``previous``, the leftovers of an
    interrupted run, and the links of files no longer published.

    ``previous`` stays for readers that resolved ``..data`` just before the swap
    (:func:`remove_retired` removes it after :data:`RETIRED_GRACE`); anything older was retired
    by an earlier swap and goes at once, so at most two versions ever exist.
    """
    for entry in os.scandir(target):
        name = entry.name
        if name in (DATA, current, previous):
            continue
        if name.startswith(".."):
            if entry.is_dir(follow_symlinks=False):
                remove_tree(Path(entry.path))
            elif entry.is_symlink():
                os.unlink(entry.path)
        elif name not in files and entry.is_symlink():
            os.unlink(entry.path)


def remove_retired(
    target: Path, *, grace: float | None = None, wait: bool = False, now: float | None = None
) -> list[Path]:
    """Remove the versions of ``target`` that ``..data`` no longer names once no reader can be
    in them any more; returns the directories removed.

    A version was retired by the swap that created the current ``..data`` link (its lstat
    mtime). It is removed ``grace`` seconds later (default :data:`RETIRED_GRACE`; ``0`` when no
    reader can remain, e.g. nothing has the directory mounted yet). Before that, nothing is
    removed, unless ``wait`` is set: then what remains of the grace is slept out first.
    """
    grace = RETIRED_GRACE if grace is None else grace
    data = target / DATA
    try:
        before = os.lstat(data)
        current = os.readlink(data)
        if os.lstat(data).st_ino != before.st_ino:
            return []  # swapped meanwhile: that writer removes what it retired
    except FileNotFoundError:
        return []
    retired = [
        Path(entry.path)
        for entry in os.scandir(target)
        if entry.name not in (DATA, current)
        and entry.name.startswith("..")
        and entry.is_dir(follow_symlinks=False)
        # One written after the swap is another writer's version in progress.
        and entry.stat(follow_symlinks=False).st_mtime <= before.st_mtime
    ]
    if not retired:
        return []  # nothing to wait for
    left = before.st_mtime + grace - (time.time() if now is None else now)
    if left > 0:
        if not wait:
            return []
        time.sleep(min(left, grace))  # capped: a wall clock set back must not stall us
    for path in retired:
        remove_tree(path)
    return retired


def current_files(target: Path) -> dict[str, bytes]:
    """What a reader of ``target`` sees now, name → bytes (tests and diagnostics)."""
    data = target / DATA
    if not data.is_symlink():
        return {}
    return {entry.name: entry.read_bytes() for entry in data.iterdir()}


def _write(path: Path, value: SecretValue, owner: Owner) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = open_dir(path.parent)
    try:
        # A fresh version directory is still dso's own: anything else was swapped in.
        st = os.fstat(dir_fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise _refused(path.parent, "it was replaced while dso wrote to it")
        require_tmpfs_fd(dir_fd, path.parent)
        fd = os.open(path.name, flags, 0o400, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        view = memoryview(value.reveal())
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o400)
        if (os.geteuid(), os.getegid()) != (owner.uid, owner.gid):
            os.fchown(fd, owner.uid, owner.gid)
    finally:
        os.close(fd)


def _make_target(target: Path, owner: Owner) -> None:
    """Create ``target`` (0700, ``owner``'s) in a parent that is dso's own and private.

    The target itself may belong to a service's user (dso gave it away): only the parent
    decides who could have put it there.
    """
    parent_fd = open_dir(target.parent)
    try:
        st = os.fstat(parent_fd)
        if st.st_uid != os.geteuid():
            raise _refused(
                target, f"its parent belongs to uid {st.st_uid}, not to dso's uid {os.geteuid()}"
            )
        if st.st_mode & 0o022:
            raise _refused(target, "its parent is writable by others")
        with contextlib.suppress(FileExistsError):
            os.mkdir(target.name, 0o700, dir_fd=parent_fd)
        fd = open_dir(target.name, dir_fd=parent_fd, shown=target)
        try:
            require_tmpfs_fd(fd, target)
            _own_fd(fd, owner, 0o700)
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)


def _own(path: Path, owner: Owner, mode: int) -> None:
    fd = open_dir(path)
    try:
        _own_fd(fd, owner, mode)
    finally:
        os.close(fd)


def _own_fd(fd: int, owner: Owner, mode: int) -> None:
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
        os.fchown(fd, owner.uid, owner.gid)
    if st.st_mode & 0o7777 != mode:
        os.fchmod(fd, mode)


def open_dir(path: Path | str, *, dir_fd: int | None = None, shown: Path | None = None) -> int:
    """A descriptor of the directory ``path`` (relative to ``dir_fd``), never of what a symlink
    points to: a symlink or a non-directory raises :class:`StorageError` (naming ``shown``)."""
    try:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        try:
            st = os.lstat(path, dir_fd=dir_fd)
        except OSError:
            raise exc from None
        what = "it is a symlink" if stat.S_ISLNK(st.st_mode) else "it is not a directory"
        raise _refused(shown or Path(path), what) from None


def filesystem_magic(target: Path | str | int) -> int:
    """``f_type`` of ``statfs(2)`` of a path, or of ``fstatfs(2)`` of a descriptor.

    Raises :class:`OSError`.
    """
    libc = _libc()
    buf = ctypes.create_string_buffer(512)  # struct statfs is 120 bytes on 64-bit Linux
    if isinstance(target, int):
        failed = libc.fstatfs(target, buf) != 0
    else:
        failed = libc.statfs(os.fsencode(target), buf) != 0
    if failed:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), None if isinstance(target, int) else str(target))
    # f_type is the first member, a C long, on every Linux ABI.
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def require_tmpfs_fd(fd: int, path: Path) -> None:
    """Raise :class:`StorageError` unless the open directory ``fd`` (``path``) is on a tmpfs."""
    if filesystem_magic(fd) != TMPFS_MAGIC:
        raise StorageError(
            f"{path} is not on a tmpfs: secret files must never reach a disk, so dso refuses "
            "to write them there",
            hint="keep DSO_SECRETS_DIR unset, or point it at a directory on a tmpfs",
        )


def _refused(path: Path, why: str) -> StorageError:
    return StorageError(
        f"refusing to write secret files in {path}: {why}",
        hint="dso did not make it so: check who changed it, remove it by hand, and run "
        "docker dso up again",
    )


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
