"""The local encrypted vault (``~/.dso/vault.enc``): AES-256-GCM, one file, many processes.

Format: docs/local-vault.md. Open the local one with :func:`open_local`; the ``secret`` and
``init`` commands and the local provider are its users.
"""

from __future__ import annotations

from kernel.vault.files import LOCK_TIMEOUT
from kernel.vault.format import HEADER_SIZE
from kernel.vault.keys import (
    PASSPHRASE_ENV,
    KdfId,
    KdfParams,
    KeySource,
    argon2id_available,
    create_key_file,
)
from kernel.vault.names import MAX_NAME_LENGTH, MAX_VALUE_SIZE, validate_name, validate_value
from kernel.vault.store import (
    Change,
    ChangeKind,
    SecretEntry,
    SecretInfo,
    Vault,
    format_timestamp,
    open_local,
)

__all__ = [
    "HEADER_SIZE",
    "LOCK_TIMEOUT",
    "MAX_NAME_LENGTH",
    "MAX_VALUE_SIZE",
    "PASSPHRASE_ENV",
    "Change",
    "ChangeKind",
    "KdfId",
    "KdfParams",
    "KeySource",
    "SecretEntry",
    "SecretInfo",
    "Vault",
    "argon2id_available",
    "create_key_file",
    "format_timestamp",
    "open_local",
    "validate_name",
    "validate_value",
]
