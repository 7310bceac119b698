"""File primitives of the vault: the ``vault.enc.lock`` flock and no-clobber creation.

Writers hold an exclusive ``flock`` on a sibling lock file for their whole read-modify-write, so
concurrent ``docker dso secret set`` processes lose nothing; readers hold a shared one. The lock
file is never deleted (deleting a lock file lets two processes lock two different inodes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from kernel.atomic_write import fsync_directory
from kernel.errors import StorageError, VaultBusyError
from kernel.log import get_logger

#: How long a vault operation waits for another process's lock before giving up.
LOCK_TIMEOUT = 10.0
#: Waits longer than this are logged as contention.
SLOW_LOCK = 1.0

log = get_logger("vault")


def lock_path(vault: Path) -> Path:
    """The lock file guarding ``vault``: ``vault.enc`` → ``vault.enc.lock``."""
    return vault.with_name(vault.name + ".lock")


@contextlib.contextmanager
def locked(vault: Path, *, exclusive: bool, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the vault's lock (exclusive for writers, shared for readers) for the block.

    A reader that cannot create the lock file (read-only directory) reads without it: the
    vault is only ever replaced by an atomic rename, so it still sees a whole file.
    """
    path = lock_path(vault)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if not exclusive and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            log.debug("reading without the vault lock", extra={"reason": exc.strerror})
            yield
            return
        raise StorageError(f"cannot open the vault lock {path}: {exc.strerror}") from None
    try:
        _acquire(fd, path, exclusive=exclusive, timeout=timeout)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(fd: int, path: Path, *, exclusive: bool, timeout: float) -> None:
    operation = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    start = time.monotonic()
    delay = 0.002
    while True:
        try:
            fcntl.flock(fd, operation)
            break
        except BlockingIOError:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise VaultBusyError(
                    f"another process has held the vault lock {path} for more than {timeout:g} s",
                    hint="wait for the other dso command to finish, then retry",
                ) from None
            time.sleep(min(delay, timeout - waited))
            delay = min(delay * 2, 0.05)
    waited = time.monotonic() - start
    if waited > SLOW_LOCK:
        log.info("waited for the vault lock", extra={"seconds": round(waited, 3)})


def write_new_file(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``, durably and atomically, failing if it already exists.

    Written to a temporary sibling, fsynced, then hard-linked into place: ``link`` refuses to
    replace an existing file, so a concurrent ``init`` can never clobber a key or a vault.
    Raises :class:`FileExistsError` if ``path`` exists, :class:`StorageError` on I/O failure.
    """
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.chmod(mode)
        os.link(tmp, path)
        fsync_directory(path.parent)
    except FileExistsError:
        raise
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise StorageError(f"could not create {path}: {reason}; nothing was written") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
