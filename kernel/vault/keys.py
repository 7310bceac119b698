"""Where the vault's 256-bit AES key comes from: a key file, or a passphrase through a KDF.

The vault header names the KDF and carries its parameters, so opening never guesses:

- ``KEY_FILE``: the key is the 32 raw bytes of ``vault.key`` (mode 0600, created by ``init``).
- ``ARGON2ID``: the key is Argon2id(``DSO_VAULT_PASSPHRASE``, salt) — memory-hard, RFC 9106.
- ``SCRYPT``: the fallback when the installed OpenSSL has no Argon2id.

Every key and passphrase is held in a :class:`SecretValue`, so a traceback never shows it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path

from kernel.errors import VaultCorruptError, VaultKeyError
from kernel.secret_value import SecretValue
from kernel.vault.files import write_new_file

#: Environment variable holding the vault passphrase (passphrase mode).
PASSPHRASE_ENV = "DSO_VAULT_PASSPHRASE"  # noqa: S105 (a variable name, not a password)
#: AES-256: every key, from a file or a KDF, is 32 bytes.
KEY_SIZE = 32
SALT_SIZE = 16

#: Argon2id cost: RFC 9106 §4 second recommended option (t=3, p=4, m=64 MiB).
ARGON2_ITERATIONS = 3
ARGON2_LANES = 4
ARGON2_MEMORY_KIB = 64 * 1024
#: scrypt cost (fallback): N=2^17, r=8, p=1 — 128 MiB, the OWASP-recommended floor.
SCRYPT_LOG2_N = 17
SCRYPT_R = 8
SCRYPT_P = 1


class KdfId(IntEnum):
    """How the vault key is obtained; stored as one byte in the vault header."""

    #: The key is the content of the key file; no derivation, no salt.
    KEY_FILE = 1
    #: Argon2id over the passphrase; params = (iterations, lanes, memory in KiB).
    ARGON2ID = 2
    #: scrypt over the passphrase; params = (log2 N, r, p).
    SCRYPT = 3


# Ranges accepted when reading a header: a tampered header must not make us allocate 1 TiB.
_PARAM_RANGES: dict[KdfId, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    KdfId.KEY_FILE: ((0, 0), (0, 0), (0, 0)),
    KdfId.ARGON2ID: ((1, 64), (1, 64), (8, 4 * 1024 * 1024)),
    KdfId.SCRYPT: ((10, 22), (1, 32), (1, 16)),
}


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Which KDF protects a vault, its three cost parameters and its salt (all in the header)."""

    kdf: KdfId
    params: tuple[int, int, int] = (0, 0, 0)
    salt: bytes = bytes(SALT_SIZE)

    @classmethod
    def key_file(cls) -> KdfParams:
        return cls(KdfId.KEY_FILE)

    @classmethod
    def argon2id(
        cls,
        *,
        iterations: int = ARGON2_ITERATIONS,
        lanes: int = ARGON2_LANES,
        memory_kib: int = ARGON2_MEMORY_KIB,
        salt: bytes | None = None,
    ) -> KdfParams:
        return cls(KdfId.ARGON2ID, (iterations, lanes, memory_kib), salt or os.urandom(SALT_SIZE))

    @classmethod
    def scrypt(
        cls,
        *,
        log2_n: int = SCRYPT_LOG2_N,
        r: int = SCRYPT_R,
        p: int = SCRYPT_P,
        salt: bytes | None = None,
    ) -> KdfParams:
        return cls(KdfId.SCRYPT, (log2_n, r, p), salt or os.urandom(SALT_SIZE))

    @classmethod
    def for_passphrase(cls) -> KdfParams:
        """The default passphrase KDF: Argon2id when OpenSSL has it, else scrypt."""
        return cls.argon2id() if argon2id_available() else cls.scrypt()

    @property
    def uses_passphrase(self) -> bool:
        return self.kdf is not KdfId.KEY_FILE

    def check(self) -> None:
        """Raise :class:`VaultCorruptError` if the parameters are outside the accepted ranges."""
        for value, (low, high) in zip(self.params, _PARAM_RANGES[self.kdf], strict=True):
            if not low <= value <= high:
                raise VaultCorruptError(f"{self.describe()}: KDF parameters out of range")
        if len(self.salt) != SALT_SIZE:
            raise VaultCorruptError(f"the KDF salt is {len(self.salt)} bytes, not {SALT_SIZE}")
        if self.kdf is KdfId.ARGON2ID and self.params[2] < 8 * self.params[1]:
            raise VaultCorruptError(f"{self.describe()}: Argon2id needs 8 KiB of memory per lane")

    def describe(self) -> str:
        """A short human description, e.g. ``argon2id (t=3, p=4, m=64 MiB)``."""
        a, b, c = self.params
        if self.kdf is KdfId.ARGON2ID:
            return f"argon2id (t={a}, p={b}, m={_kib(c)})"
        if self.kdf is KdfId.SCRYPT:
            return f"scrypt (N=2^{a}, r={b}, p={c})"
        return "key file"


def _kib(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib % 1024 == 0 else f"{kib} KiB"


@cache
def argon2id_available() -> bool:
    """True when the installed cryptography/OpenSSL can run Argon2id (OpenSSL ≥ 3.2)."""
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        Argon2id(salt=bytes(8), length=KEY_SIZE, iterations=1, lanes=1, memory_cost=8).derive(b"x")
    except Exception:  # ImportError, UnsupportedAlgorithm: the fallback is scrypt
        return False
    return True


def derive_key(kdf: KdfParams, passphrase: SecretValue) -> SecretValue:
    """Derive the 32-byte AES key from ``passphrase`` with the KDF the header names."""
    kdf.check()
    a, b, c = kdf.params
    if kdf.kdf is KdfId.ARGON2ID:
        if not argon2id_available():
            raise VaultKeyError(
                "this vault uses argon2id, which the installed OpenSSL does not provide",
                hint="install dso with cryptography built against OpenSSL 3.2 or newer",
            )
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        derived = Argon2id(
            salt=kdf.salt, length=KEY_SIZE, iterations=a, lanes=b, memory_cost=c
        ).derive(passphrase.reveal())
        return SecretValue(derived)
    if kdf.kdf is KdfId.SCRYPT:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return SecretValue(
            Scrypt(salt=kdf.salt, length=KEY_SIZE, n=2**a, r=b, p=c).derive(passphrase.reveal())
        )
    raise ValueError("a key-file vault has no key derivation")


@dataclass(frozen=True, slots=True)
class KeySource:
    """What this process can unlock a vault with: its key file path and maybe a passphrase."""

    key_file: Path
    #: From ``DSO_VAULT_PASSPHRASE``; ``None`` when unset. May be empty (refused when needed).
    passphrase: SecretValue | None = None

    @classmethod
    def from_env(cls, key_file: Path, environ: Mapping[str, str] | None = None) -> KeySource:
        env = os.environ if environ is None else environ
        raw = env.get(PASSPHRASE_ENV)
        if raw is None:
            return cls(key_file)
        # surrogateescape gives back the exact bytes of a passphrase that is not UTF-8.
        return cls(key_file, SecretValue(raw.encode("utf-8", "surrogateescape")))

    @property
    def has_passphrase(self) -> bool:
        return self.passphrase is not None

    def key_for(self, kdf: KdfParams, vault: Path) -> SecretValue:
        """The AES key for a vault whose header says ``kdf``; raise :class:`VaultKeyError`."""
        if kdf.kdf is KdfId.KEY_FILE:
            return read_key_file(self.key_file)
        return derive_key(kdf, self.require_passphrase(vault, kdf))

    def require_passphrase(self, vault: Path, kdf: KdfParams | None = None) -> SecretValue:
        how = f" ({kdf.describe()})" if kdf else ""
        if self.passphrase is None:
            raise VaultKeyError(
                f"{vault} is protected by a passphrase{how} and {PASSPHRASE_ENV} is not set",
                hint=f"read -rs {PASSPHRASE_ENV} && export {PASSPHRASE_ENV}  (not echoed)",
            )
        if not self.passphrase:
            raise VaultKeyError(f"{PASSPHRASE_ENV} is set but empty", hint="set the passphrase")
        return self.passphrase


def read_key_file(path: Path) -> SecretValue:
    """Read and check the 32-byte key file; raise :class:`VaultKeyError` with a hint.

    Like ssh with a private key, refuse a key file that group or others can access.
    """
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise VaultKeyError(f"the vault key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise VaultKeyError(
                f"the vault key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it",
                hint=f"chmod 600 {path}",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise VaultKeyError(
            f"the vault key file {path} is missing",
            hint="restore it from your backup, or set DSO_HOME to the directory that holds it",
        ) from None
    except OSError as exc:
        raise VaultKeyError(f"cannot read the vault key file {path}: {exc.strerror}") from None
    if len(data) != KEY_SIZE:
        raise VaultKeyError(
            f"the vault key file {path} is {len(data)} bytes; a key is {KEY_SIZE} bytes"
        )
    return SecretValue(data)


def create_key_file(path: Path) -> SecretValue:
    """Write 32 fresh random bytes to ``path`` (mode 0600); never replaces an existing file."""
    key = SecretValue(os.urandom(KEY_SIZE))
    write_new_file(path, key.reveal())
    return key
