"""The decrypted vault kept between calls while ``vault.enc`` is unchanged.

:meth:`kernel.vault.Vault.read_all` takes the lock, reads and decrypts the whole file (GCM
authenticates the whole document, so there is no decrypting one value alone). Doing that for
every ``get``/``versions`` costs more than the round trip itself, so :class:`VaultSnapshot` keeps
the last result and re-checks, on every call, that the file is still the one it came from:

- ``stat(path)`` compared with the identity of the file read (device, inode, size, mtime_ns,
  ctime_ns): a write by dso replaces the file by renaming a new one over it, so the inode
  changes. The file read stays **open**, so its inode cannot be freed and handed to a later
  file while the snapshot lives: an equal inode means the very same file, never a reused number;
- ``pread`` of the 60-byte header through that open descriptor: every seal draws a fresh random
  96-bit nonce, so a file rewritten in place (not dso's way, but ``cp`` of a backup over it)
  differs here even when its size and coarse timestamps (one kernel tick) do not.

The identity and header are taken *before* the file is decrypted, so a write racing with the
read can only make the next call read again, never keep a newer file's identity with older
values. What is kept is exactly what the vault produces during a call (the live entries, their
values as :class:`~kernel.secret_value.SecretValue`), nothing more; it is dropped on
``close`` (docs/local-vault.md, "The local provider's snapshot").
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from kernel.vault import HEADER_SIZE, SecretEntry, Vault


class FileIdentity(NamedTuple):
    """What changes whenever ``vault.enc`` is replaced or rewritten (with the header's nonce)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VaultSnapshot:
    """The live entries of one vault file, re-read only when the file changed. Thread-safe."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: FileIdentity | None = None
        self._header = b""
        self._entries: Mapping[str, SecretEntry] = {}
        #: How many times the file was decrypted (tests and the benchmark read it).
        self.reads = 0

    def entries(self) -> Mapping[str, SecretEntry]:
        """The live entries of the current file: from memory if it did not change, else read
        (raising the vault's errors, e.g. :class:`~kernel.errors.VaultNotFoundError`)."""
        with self._lock:
            if self._fd is not None and self._unchanged(self._fd):
                return self._entries
            self._drop()
            return self._reload()

    def versions(self, names: Iterable[str]) -> dict[str, int | None]:
        """Current version of each name, ``None`` if absent or deleted."""
        entries = self.entries()
        return {name: (entry.version if (entry := entries.get(name)) else None) for name in names}

    def close(self) -> None:
        """Forget the entries and close the file."""
        with self._lock:
            self._drop()

    def _unchanged(self, fd: int) -> bool:
        try:
            identity = FileIdentity.of(os.stat(self.vault.path))
            return identity == self._identity and os.pread(fd, HEADER_SIZE, 0) == self._header
        except OSError:
            return False

    def _reload(self) -> Mapping[str, SecretEntry]:
        try:
            fd = os.open(self.vault.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            # Missing or unreadable: the vault's own read raises its error with the right hint.
            return self.vault.read_all()
        try:
            identity = FileIdentity.of(os.fstat(fd))
            header = os.pread(fd, HEADER_SIZE, 0)
            entries = self.vault.read_all()
        except BaseException:
            os.close(fd)
            raise
        self.reads += 1
        self._fd, self._identity, self._header, self._entries = fd, identity, header, entries
        return entries

    def _drop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._identity, self._header, self._entries = None, None, b"", {}
