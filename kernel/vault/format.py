"""The ``vault.enc`` file format, version 1 (byte-level spec: docs/local-vault.md).

A 60-byte header — magic, format version, KDF id and parameters, salt, nonce, body length — then
the AES-256-GCM ciphertext of the plaintext document with its 16-byte tag. The whole header is
the GCM associated data, so changing any header byte makes decryption fail. Integers are
big-endian. Parsing a header raises :class:`VaultCorruptError` (not a vault, truncated, unknown
version); a failed decryption raises :class:`VaultKeyError` (wrong key, or tampering).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kernel.errors import VaultCorruptError, VaultKeyError
from kernel.secret_value import SecretValue
from kernel.vault.keys import SALT_SIZE, KdfId, KdfParams

MAGIC = b"DSOVAULT"
FORMAT_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16

#: magic, version, kdf id, reserved, 3 KDF params, salt, nonce, body length.
HEADER = struct.Struct(f">8sHBBIII{SALT_SIZE}s{NONCE_SIZE}sQ")
HEADER_SIZE = HEADER.size  # 60

_COUNT = struct.Struct(">I")
_NAME_LEN = struct.Struct(">H")
#: flags, version, created µs, updated µs, value length.
_FIXED = struct.Struct(">BQqqI")
_TOMBSTONE = 0x01


@dataclass(frozen=True, slots=True)
class Header:
    """The authenticated, unencrypted start of ``vault.enc``."""

    kdf: KdfParams
    nonce: bytes
    body_length: int
    version: int = FORMAT_VERSION

    def pack(self) -> bytes:
        a, b, c = self.kdf.params
        kdf_id = int(self.kdf.kdf)
        salt, nonce = self.kdf.salt, self.nonce
        return HEADER.pack(MAGIC, self.version, kdf_id, 0, a, b, c, salt, nonce, self.body_length)


@dataclass(frozen=True, slots=True)
class Record:
    """One secret in the plaintext document; ``value is None`` marks a deleted name.

    A deleted name keeps its record (a tombstone) so that setting it again continues from its
    last version: version numbers of a name never repeat, and change detection relies on that.
    """

    name: str
    version: int
    #: Microseconds since the Unix epoch, UTC.
    created_us: int
    updated_us: int
    value: SecretValue | None

    @property
    def deleted(self) -> bool:
        return self.value is None


def parse_header(data: bytes, path: Path) -> Header:
    """Check magic, format version, KDF and lengths of a whole file; never decrypts."""
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise VaultCorruptError(f"{path} is truncated ({len(data)} bytes)")
        raise VaultCorruptError(f"{path} is not a dso vault (bad magic)")
    if not data.startswith(MAGIC):
        raise VaultCorruptError(f"{path} is not a dso vault (bad magic)")
    if len(data) < HEADER_SIZE:
        raise VaultCorruptError(
            f"{path} is truncated: {len(data)} bytes, the header alone is {HEADER_SIZE}"
        )
    _, version, kdf_id, reserved, a, b, c, salt, nonce, body_length = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise VaultCorruptError(
            f"{path} uses vault format version {version}; this dso reads version {FORMAT_VERSION}",
            hint="upgrade dso to a version that reads it",
        )
    try:
        kdf_kind = KdfId(kdf_id)
    except ValueError:
        raise VaultCorruptError(f"{path} names an unknown key derivation (id {kdf_id})") from None
    if reserved != 0:
        raise VaultCorruptError(f"{path} has a non-zero reserved header byte")
    kdf = KdfParams(kdf_kind, (a, b, c), salt)
    try:
        kdf.check()
    except VaultCorruptError as exc:
        raise VaultCorruptError(f"{path}: {exc.message}") from None
    actual = len(data) - HEADER_SIZE
    if body_length < TAG_SIZE:
        raise VaultCorruptError(f"{path} has an impossible body length ({body_length})")
    if actual < body_length:
        raise VaultCorruptError(
            f"{path} is truncated: the body is {actual} bytes, the header says {body_length}"
        )
    if actual > body_length:
        raise VaultCorruptError(f"{path} has {actual - body_length} unexpected trailing bytes")
    return Header(kdf, nonce, body_length, version)


def seal(records: Iterable[Record], kdf: KdfParams, key: SecretValue) -> bytes:
    """Encrypt ``records`` into a complete ``vault.enc`` image, with a fresh random nonce."""
    plaintext = encode_records(records)
    nonce = os.urandom(NONCE_SIZE)
    header = Header(kdf, nonce, len(plaintext) + TAG_SIZE).pack()
    return header + AESGCM(key.reveal()).encrypt(nonce, plaintext, header)


def unseal(data: bytes, header: Header, key: SecretValue, path: Path) -> dict[str, Record]:
    """Decrypt and decode a file whose header :func:`parse_header` accepted."""
    try:
        aead = AESGCM(key.reveal())
        plaintext = aead.decrypt(header.nonce, data[HEADER_SIZE:], data[:HEADER_SIZE])
    except InvalidTag:
        raise VaultKeyError(
            f"cannot decrypt {path}: wrong key or passphrase, or the file was modified"
        ) from None
    try:
        return decode_records(plaintext)
    except (ValueError, struct.error) as exc:
        # Authentic but unreadable: a writer bug, never an attacker (they cannot forge the tag).
        raise VaultCorruptError(f"{path}: the decrypted document is malformed ({exc})") from None


def encode_records(records: Iterable[Record]) -> bytes:
    """The plaintext document: a record count, then records sorted by UTF-8 name."""
    ordered = sorted(records, key=lambda r: r.name.encode())
    parts = [_COUNT.pack(len(ordered))]
    for record in ordered:
        name = record.name.encode()
        value = record.value.reveal() if record.value is not None else b""
        flags = _TOMBSTONE if record.value is None else 0
        parts.append(_NAME_LEN.pack(len(name)))
        parts.append(name)
        parts.append(
            _FIXED.pack(flags, record.version, record.created_us, record.updated_us, len(value))
        )
        parts.append(value)
    return b"".join(parts)


def decode_records(data: bytes) -> dict[str, Record]:
    """Parse the plaintext document; raise :class:`ValueError` on any inconsistency."""
    (count,) = _COUNT.unpack_from(data, 0)
    offset = _COUNT.size
    records: dict[str, Record] = {}
    for _ in range(count):
        (name_len,) = _NAME_LEN.unpack_from(data, offset)
        offset += _NAME_LEN.size
        name = data[offset : offset + name_len].decode("utf-8")
        if len(name.encode()) != name_len:
            raise ValueError("name runs past the end")
        offset += name_len
        flags, version, created, updated, value_len = _FIXED.unpack_from(data, offset)
        offset += _FIXED.size
        if flags & ~_TOMBSTONE:
            raise ValueError(f"unknown flags {flags:#x} on {name!r}")
        if offset + value_len > len(data):
            raise ValueError(f"value of {name!r} runs past the end")
        value = None if flags & _TOMBSTONE else SecretValue(data[offset : offset + value_len])
        offset += value_len
        if name in records:
            raise ValueError(f"duplicate name {name!r}")
        records[name] = Record(name, version, created, updated, value)
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} trailing bytes")
    return records
