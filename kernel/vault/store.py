"""The local encrypted vault: :class:`Vault` reads and writes ``vault.enc`` safely.

Every read takes a shared lock and decrypts the current file; every write is a read-modify-write
under the exclusive lock, replaced with :func:`~kernel.atomic_write.atomic_write`, so concurrent
processes lose nothing and a failure (disk full) leaves the previous file intact. Nothing is ever
written after a failed decryption or a failed header check.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.atomic_write import atomic_write
from kernel.errors import SecretNotFoundError, VaultError, VaultExistsError, VaultNotFoundError
from kernel.log import get_logger
from kernel.secret_value import SecretValue
from kernel.vault.files import LOCK_TIMEOUT, locked, write_new_file
from kernel.vault.format import Record, parse_header, seal, unseal
from kernel.vault.keys import KdfParams, KeySource, derive_key, read_key_file
from kernel.vault.names import validate_name, validate_value

if TYPE_CHECKING:
    from kernel.paths import Layout

log = get_logger("vault")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_datetime(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def _now_us() -> int:
    return time.time_ns() // 1000


def format_timestamp(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``: the form timestamps take in output and ``--json``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """Metadata of one secret: everything but the value (``list``, ``get --json``)."""

    name: str
    version: int
    created: datetime
    updated: datetime
    #: Length of the value in bytes.
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "created": format_timestamp(self.created),
            "updated": format_timestamp(self.updated),
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """One secret with its value (masked in repr) and metadata."""

    name: str
    value: SecretValue
    version: int
    created: datetime
    updated: datetime

    @property
    def info(self) -> SecretInfo:
        return SecretInfo(self.name, self.version, self.created, self.updated, len(self.value))


class ChangeKind(StrEnum):
    """What a set did (or, in a dry run, would do) to one name."""

    #: The name had no value (never set, or deleted): it now has version 1 or continues after
    #: the tombstone's version.
    CREATED = "created"
    #: The name had a different value: the version went up by one.
    UPDATED = "updated"
    #: Same value as stored: nothing written, the version stays (no spurious rotation).
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of setting one name."""

    name: str
    kind: ChangeKind
    version: int


def _entry(record: Record) -> SecretEntry:
    assert record.value is not None
    return SecretEntry(
        record.name,
        record.value,
        record.version,
        _to_datetime(record.created_us),
        _to_datetime(record.updated_us),
    )


def _not_found(name: str) -> SecretNotFoundError:
    return SecretNotFoundError(
        f"no secret named {name!r} in the local vault",
        hint="`docker dso secret list` shows what exists",
    )


class Vault:
    """An opened ``vault.enc``. Get one with :meth:`open` or :meth:`create`.

    The object caches only the derived key; every call reads the file afresh, so two
    :class:`Vault` objects (or processes) on one file always agree.
    """

    def __init__(
        self, path: Path, keys: KeySource, kdf: KdfParams, key: SecretValue, lock_timeout: float
    ) -> None:
        self.path = path
        self.keys = keys
        self.lock_timeout = lock_timeout
        self._kdf = kdf
        self._key = key

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, {self._kdf.describe()})"

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        keys: KeySource,
        *,
        kdf: KdfParams | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> Vault:
        """Create an empty vault at ``path``; never replaces an existing file.

        Without ``kdf``: passphrase mode (Argon2id, else scrypt) when ``keys`` has a passphrase,
        else the key file, which must already exist (:func:`~kernel.vault.keys.create_key_file`).
        Raises :class:`VaultExistsError` if ``path`` exists.
        """
        if kdf is None:
            kdf = KdfParams.for_passphrase() if keys.has_passphrase else KdfParams.key_file()
        if kdf.uses_passphrase:
            key = derive_key(kdf, keys.require_passphrase(path))
        else:
            key = read_key_file(keys.key_file)
        exists = VaultExistsError(
            f"a vault already exists at {path}; nothing was changed",
            hint=f"to start over, move it away first (mv {path} {path}.old)",
        )
        if path.exists():
            raise exists
        with locked(path, exclusive=True, timeout=lock_timeout):
            try:
                write_new_file(path, seal([], kdf, key))
            except FileExistsError:
                raise exists from None
        log.debug("created vault", extra={"path": str(path), "kdf": kdf.describe()})
        return cls(path, keys, kdf, key, lock_timeout)

    @classmethod
    def open(cls, path: Path, keys: KeySource, *, lock_timeout: float = LOCK_TIMEOUT) -> Vault:
        """Open and verify an existing vault: the key is checked by decrypting it once.

        Raises :class:`VaultNotFoundError`, :class:`VaultKeyError`, :class:`VaultCorruptError`.
        """
        if not path.exists():
            raise _vault_not_found(path)
        with locked(path, exclusive=False, timeout=lock_timeout):
            data = _read(path)
            header = parse_header(data, path)
            key = keys.key_for(header.kdf, path)
            records = unseal(data, header, key, path)
        log.debug(
            "opened vault",
            extra={"path": str(path), "kdf": header.kdf.describe(), "records": len(records)},
        )
        return cls(path, keys, header.kdf, key, lock_timeout)

    @property
    def kdf(self) -> KdfParams:
        """How this vault's key is obtained (key file, Argon2id, scrypt) and its parameters."""
        return self._kdf

    # -- reads ------------------------------------------------------------------------------

    def get(self, name: str) -> SecretEntry:
        """The current value and metadata of ``name``; :class:`SecretNotFoundError` if absent."""
        validate_name(name)
        record = self._read_records().get(name)
        if record is None or record.value is None:
            raise _not_found(name)
        return _entry(record)

    def list(self) -> builtins.list[SecretInfo]:
        """Metadata of every secret, sorted by name. Never values."""
        return [
            _entry(record).info
            for name, record in sorted(self._read_records().items())
            if record.value is not None
        ]

    def versions(self, names: Iterable[str]) -> dict[str, int | None]:
        """Current version of each name (``None`` if absent or deleted): the cheap change check."""
        wanted = [validate_name(name) for name in names]
        records = self._read_records()
        result: dict[str, int | None] = {}
        for name in wanted:
            record = records.get(name)
            result[name] = record.version if record is not None and not record.deleted else None
        return result

    def get_many(self, names: Iterable[str]) -> dict[str, SecretEntry | None]:
        """Entries of several names from one read of the file, so the batch is one consistent
        snapshot (the local provider's batch ``get``); ``None`` if absent or deleted."""
        wanted = [validate_name(name) for name in names]
        records = self._read_records()
        result: dict[str, SecretEntry | None] = {}
        for name in wanted:
            record = records.get(name)
            result[name] = _entry(record) if record is not None and not record.deleted else None
        return result

    def read_all(self) -> dict[str, SecretEntry]:
        """Every live secret with its value from one read of the file: the whole snapshot the
        local provider keeps while the file is unchanged (names absent here have no value)."""
        return {
            name: _entry(record)
            for name, record in self._read_records().items()
            if not record.deleted
        }

    # -- writes -----------------------------------------------------------------------------

    def set(self, name: str, value: SecretValue) -> int:
        """Store ``value`` under ``name`` and return its version (unchanged if same value)."""
        (change,) = self.set_many({name: value})
        return change.version

    def set_many(
        self, items: Mapping[str, SecretValue], *, dry_run: bool = False
    ) -> builtins.list[Change]:
        """Store every item in one transaction: all of them are written, or none.

        Every name and value is validated before the vault is touched. A value equal to the
        stored one changes nothing (its version stays). With ``dry_run`` nothing is written and
        the result says what would happen.
        """
        for name, value in items.items():
            validate_name(name)
            validate_value(value, name=name)
        with locked(self.path, exclusive=not dry_run, timeout=self.lock_timeout):
            records = self._load()
            changes: builtins.list[Change] = []
            now = _now_us()
            for name, value in items.items():
                old = records.get(name)
                if old is not None and old.value is not None and old.value == value:
                    changes.append(Change(name, ChangeKind.UNCHANGED, old.version))
                    continue
                version = old.version + 1 if old is not None else 1
                if old is None or old.value is None:
                    kind, created = ChangeKind.CREATED, now
                else:
                    kind, created = ChangeKind.UPDATED, old.created_us
                records[name] = Record(name, version, created, now, value)
                changes.append(Change(name, kind, version))
            if not dry_run and any(c.kind is not ChangeKind.UNCHANGED for c in changes):
                self._store(records)
        return changes

    def delete(self, name: str) -> int:
        """Remove ``name`` and return the version it had. Its version number is never reused."""
        validate_name(name)
        with locked(self.path, exclusive=True, timeout=self.lock_timeout):
            records = self._load()
            old = records.get(name)
            if old is None or old.value is None:
                raise _not_found(name)
            records[name] = Record(name, old.version, old.created_us, _now_us(), None)
            self._store(records)
        return old.version

    # -- file access ------------------------------------------------------------------------

    def _read_records(self) -> dict[str, Record]:
        with locked(self.path, exclusive=False, timeout=self.lock_timeout):
            return self._load()

    def _load(self) -> dict[str, Record]:
        """Read and decrypt the current file; the caller holds the lock."""
        data = _read(self.path)
        header = parse_header(data, self.path)
        if header.kdf != self._kdf:
            # Re-created since we opened it (new salt or KDF): derive its key.
            self._key = self.keys.key_for(header.kdf, self.path)
            self._kdf = header.kdf
        return unseal(data, header, self._key, self.path)

    def _store(self, records: Mapping[str, Record]) -> None:
        """Encrypt with a fresh nonce and replace the file atomically; the caller holds the lock."""
        data = seal(records.values(), self._kdf, self._key)
        atomic_write(self.path, data, mode=0o600)
        log.debug("wrote vault", extra={"path": str(self.path), "bytes": len(data)})


def _vault_not_found(path: Path) -> VaultNotFoundError:
    return VaultNotFoundError(f"no vault at {path}", hint="create one with `docker dso init`")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _vault_not_found(path) from None
    except OSError as exc:
        raise VaultError(f"cannot read {path}: {exc.strerror}") from None


def open_local(layout: Layout, *, lock_timeout: float = LOCK_TIMEOUT) -> Vault:
    """Open the vault of ``layout`` with its key file or ``DSO_VAULT_PASSPHRASE``."""
    return Vault.open(layout.vault, KeySource.from_env(layout.vault_key), lock_timeout=lock_timeout)
