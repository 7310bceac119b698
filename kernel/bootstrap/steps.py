"""The steps of a bootstrap plan: each one change, said in a line, applied, and undone.

A step records what was there just before it applied (a file's bytes, mode and owner; whether a
directory existed), so :meth:`Step.undo` puts exactly that back. Steps never hold a secret:
the vault key is written by :func:`kernel.vault.create_key_file` and not kept.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.atomic_write import atomic_write
from kernel.bootstrap.host import Host
from kernel.errors import StorageError

__all__ = [
    "AddGroup",
    "Backup",
    "CreateKey",
    "CreateVault",
    "DaemonReload",
    "MakeDirectory",
    "Owner",
    "SetAttributes",
    "Step",
    "WriteFile",
]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a path belongs to: root, and ``group`` (``root`` or ``dso``)."""

    group: str = "root"

    def ids(self, host: Host) -> tuple[int, int]:
        gid = host.group_id(self.group)
        if gid is None:
            raise StorageError(f"group {self.group} does not exist", hint="groupadd --system dso")
        return host.root_uid, gid

    def matches(self, st: os.stat_result, host: Host) -> bool:
        return st.st_uid == host.root_uid and st.st_gid == host.group_id(self.group)

    def __str__(self) -> str:
        return f"root:{self.group}"


@dataclass(slots=True)
class _Before:
    """A file as it was: bytes, mode and owner (None: it did not exist)."""

    data: bytes
    mode: int
    uid: int
    gid: int

    @classmethod
    def read(cls, path: Path) -> _Before | None:
        try:
            st = os.stat(path)
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return cls(data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    def restore(self, path: Path) -> None:
        atomic_write(path, self.data, mode=self.mode)
        os.chown(path, self.uid, self.gid)


class Step:
    """One change of a plan."""

    #: ``group``, ``mkdir``, ``attributes``, ``write``, ``backup``, ``key``, ``vault``, ``reload``.
    kind = "step"
    #: The path it changes (None: the group, systemd).
    path: Path | None

    def describe(self) -> str:
        raise NotImplementedError

    def apply(self, host: Host) -> None:
        raise NotImplementedError

    def undo(self, host: Host) -> None:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "path": str(self.path) if self.path is not None else None,
            "description": self.describe(),
        }


def _set(host: Host, path: Path, mode: int, owner: Owner | None) -> None:
    if owner is not None:
        uid, gid = owner.ids(host)
        host.chown(path, uid, gid)
    os.chmod(path, mode)


@dataclass(eq=False)
class AddGroup(Step):
    """``groupadd --system dso``; undone by ``groupdel``."""

    name: str
    path: Path | None = field(default=None, init=False)
    kind = "group"

    def describe(self) -> str:
        return f"add group {self.name} (groupadd --system {self.name})"

    def apply(self, host: Host) -> None:
        host.add_group(self.name)

    def undo(self, host: Host) -> None:
        host.remove_group(self.name)


@dataclass(eq=False)
class MakeDirectory(Step):
    """A new directory with its mode and owner; undone by removing it (empty by then)."""

    path: Path
    mode: int
    owner: Owner | None
    kind = "mkdir"

    def describe(self) -> str:
        return f"create directory {self.path} ({_mode_owner(self.mode, self.owner)})"

    def apply(self, host: Host) -> None:
        os.mkdir(self.path, 0o700)
        _set(host, self.path, self.mode, self.owner)

    def undo(self, host: Host) -> None:
        os.rmdir(self.path)


@dataclass(eq=False)
class SetAttributes(Step):
    """chmod/chown of an existing path; undone by putting the old mode and owner back."""

    path: Path
    mode: int
    owner: Owner | None
    #: How it is now, as planned (for the description).
    was: str
    _before: tuple[int, int, int] | None = field(default=None, init=False, repr=False)
    kind = "attributes"

    def describe(self) -> str:
        return f"fix {self.path}: {self.was} → {_mode_owner(self.mode, self.owner)}"

    def apply(self, host: Host) -> None:
        st = os.stat(self.path)
        self._before = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        _set(host, self.path, self.mode, self.owner)

    def undo(self, host: Host) -> None:
        if self._before is None:
            return
        mode, uid, gid = self._before
        os.chown(self.path, uid, gid)
        os.chmod(self.path, mode)


@dataclass(eq=False)
class WriteFile(Step):
    """A file written whole (atomically), new or replacing one; undone by restoring the old
    bytes, mode and owner, or removing the new file."""

    path: Path
    data: bytes = field(repr=False)
    mode: int
    owner: Owner | None
    #: What the file is, for the description ("configuration", "systemd unit").
    what: str
    replaces: bool = False
    _before: _Before | None = field(default=None, init=False, repr=False)
    kind = "write"

    def describe(self) -> str:
        verb = "replace" if self.replaces else "write"
        return f"{verb} {self.what} {self.path} ({_mode_owner(self.mode, self.owner)})"

    def apply(self, host: Host) -> None:
        self._before = _Before.read(self.path)
        atomic_write(self.path, self.data, mode=self.mode)
        _set(host, self.path, self.mode, self.owner)

    def undo(self, host: Host) -> None:
        if self._before is not None:
            self._before.restore(self.path)
        else:
            self.path.unlink(missing_ok=True)


@dataclass(eq=False)
class Backup(Step):
    """A copy of a file (its mode and owner too) before it is replaced; undone by removing it."""

    source: Path
    path: Path
    kind = "backup"

    def describe(self) -> str:
        return f"back up {self.source} as {self.path}"

    def apply(self, host: Host) -> None:
        from kernel.vault.files import write_new_file

        st = os.stat(self.source)
        try:
            write_new_file(self.path, self.source.read_bytes(), mode=stat.S_IMODE(st.st_mode))
        except FileExistsError:
            raise StorageError(f"{self.path} exists already; nothing was overwritten") from None
        os.chown(self.path, st.st_uid, st.st_gid)

    def undo(self, host: Host) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(eq=False)
class CreateKey(Step):
    """32 random bytes in the vault's key file (0600); undone by removing it (it protects
    nothing yet: the vault is created after it and removed before it)."""

    path: Path
    owner: Owner | None
    kind = "key"

    def describe(self) -> str:
        return f"create the vault key {self.path} ({_mode_owner(0o600, self.owner)})"

    def apply(self, host: Host) -> None:
        from kernel.vault import create_key_file

        try:
            create_key_file(self.path)
        except FileExistsError:
            raise StorageError(f"{self.path} appeared meanwhile; it was left alone") from None
        _set(host, self.path, 0o600, self.owner)

    def undo(self, host: Host) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(eq=False)
class CreateVault(Step):
    """An empty local vault (AES-256-GCM) under ``key_file``, or under ``DSO_VAULT_PASSPHRASE``
    when ``passphrase`` (local mode, as ``docker dso init``); undone by removing it and the
    lock file it brought."""

    path: Path
    key_file: Path
    owner: Owner | None
    passphrase: bool = False
    _new_lock: bool = field(default=False, init=False, repr=False)
    kind = "vault"

    def describe(self) -> str:
        how = "DSO_VAULT_PASSPHRASE" if self.passphrase else f"key {self.key_file}"
        return f"create an empty vault {self.path} ({_mode_owner(0o600, self.owner)}, {how})"

    def apply(self, host: Host) -> None:
        from kernel.vault import KeySource, Vault
        from kernel.vault.files import lock_path

        lock = lock_path(self.path)
        self._new_lock = not lock.exists()
        keys = KeySource.from_env(self.key_file) if self.passphrase else KeySource(self.key_file)
        Vault.create(self.path, keys)
        _set(host, self.path, 0o600, self.owner)
        if self._new_lock and self.owner is not None:
            host.chown(lock, *self.owner.ids(host))

    def undo(self, host: Host) -> None:
        from kernel.vault.files import lock_path

        self.path.unlink(missing_ok=True)
        if self._new_lock:
            lock_path(self.path).unlink(missing_ok=True)


@dataclass(eq=False)
class DaemonReload(Step):
    """``systemctl daemon-reload``, so systemd reads the unit; the rollback reloads again after
    the unit is restored (:mod:`kernel.bootstrap.transaction`)."""

    path: Path | None = field(default=None, init=False)
    kind = "reload"

    def describe(self) -> str:
        return "systemctl daemon-reload (systemd reads the new unit)"

    def apply(self, host: Host) -> None:
        host.daemon_reload()

    def undo(self, host: Host) -> None:
        pass


def _mode_owner(mode: int, owner: Owner | None) -> str:
    return f"{mode:04o} {owner}" if owner is not None else f"{mode:04o}"


def describe_stat(st: os.stat_result) -> str:
    """``0755 root:root``, as ``ls -l`` names the owner and group."""
    from kernel.doctor.files import group_name, user_name

    return f"{stat.S_IMODE(st.st_mode):04o} {user_name(st.st_uid)}:{group_name(st.st_gid)}"
