"""Reference paths → Key Vault secret names, and version pins.

Key Vault secret names are 1-127 characters of ``0-9 a-z A-Z -`` and are case-insensitive.
dso paths are written like ``app/db_password`` (docs/references.md), so the mapping is:

- ``/`` and ``_`` become ``-``: ``app/db_password`` → ``app-db-password``;
- letters, digits and ``-`` are kept as written (Key Vault ignores their case);
- anything else (``.``, ``:``, ``@``, spaces, non-ASCII…) cannot be mapped and the reference is
  refused as ``invalid_request`` naming the character, as is a name longer than 127 characters.

The mapping is not one-to-one: ``app/db``, ``app_db``, ``app-db`` and ``APP-DB`` all name the
same Key Vault secret. ``list`` returns Key Vault's own names, which map to themselves.
"""

from __future__ import annotations

import re

from providers.sdk import InvalidRequest

#: Longest Key Vault secret name.
MAX_NAME_LENGTH = 127
#: Characters dso paths may use that Key Vault names cannot, and what they become.
SEPARATORS = {"/": "-", "_": "-"}

_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_BAD_CHAR = re.compile(r"[^0-9A-Za-z/_-]")
_VERSION = re.compile(r"[0-9A-Za-z]{1,64}")


def vault_name(path: str) -> str:
    """The Key Vault secret name for the reference path ``path``."""
    bad = _BAD_CHAR.search(path)
    if bad is not None:
        raise InvalidRequest(
            f"{path!r:.200} cannot be an Azure Key Vault secret name: {bad.group()!r} is not"
            " allowed (names are letters, digits and '-'; '/' and '_' are read as '-')"
        )
    name = path.translate(_TABLE)
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"{path!r:.200} cannot be an Azure Key Vault secret name: it has {len(name)}"
            f" characters, the most is {MAX_NAME_LENGTH}"
        )
    return name


def name_prefix(prefix: str | None) -> str:
    """A ``list`` prefix mapped like a path (empty: everything), lower-cased for comparing."""
    if not prefix:
        return ""
    bad = _BAD_CHAR.search(prefix)
    if bad is not None:
        raise InvalidRequest(
            f"prefix {prefix!r:.200} cannot match Azure Key Vault secret names:"
            f" {bad.group()!r} is not allowed"
        )
    return prefix.translate(_TABLE).lower()


def check_version(path: str, version: str | None) -> str | None:
    """The version pin, checked to be a Key Vault version id (32 hex digits today)."""
    if version is None:
        return None
    if not _VERSION.fullmatch(version):
        raise InvalidRequest(
            f"{path!r:.200}: {version!r:.80} is not an Azure Key Vault version id"
            " (letters and digits, e.g. 32 hex digits; Key Vault has no version labels)"
        )
    return version.lower()


_TABLE = str.maketrans(SEPARATORS)
