"""What a secret in the local vault may be called and what it may hold.

Names become paths (``dsofile://app/db_password`` → a file under ``/run/secrets/dso/``), so the
rules are those of a safe relative path: ``/``-separated segments of ``[A-Za-z0-9._-]``, no empty,
``.`` or ``..`` segment. Messages say exactly what is wrong; they may quote a name (names are not
secret) but never a value.
"""

from __future__ import annotations

import re

from kernel.errors import InvalidSecretNameError, InvalidSecretValueError
from kernel.secret_value import SecretValue

#: Longest accepted name, in characters.
MAX_NAME_LENGTH = 256
#: Largest accepted value, in bytes (1 MiB): the vault is decrypted whole on every open.
MAX_VALUE_SIZE = 1024 * 1024

_SEGMENT_CHAR = re.compile(r"[A-Za-z0-9._-]")
_ALLOWED = "letters, digits, '.', '_' and '-', with '/' between segments"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid secret name, else raise :class:`InvalidSecretNameError`."""
    if not isinstance(name, str):
        raise InvalidSecretNameError(f"a secret name must be text, not {type(name).__name__}")
    if not name:
        raise InvalidSecretNameError("the secret name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSecretNameError(
            f"the secret name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    for position, char in enumerate(name, start=1):
        if char.isspace() or not char.isprintable():
            kind = "whitespace" if char.isspace() else "a control character"
            raise InvalidSecretNameError(
                f"secret name {name!r} contains {kind} ({char!r}) at position {position}"
            )
    if name.startswith("/"):
        raise InvalidSecretNameError(
            f"secret name {name!r} is absolute; drop the leading '/' (e.g. {name.lstrip('/')!r})"
        )
    for index, segment in enumerate(name.split("/"), start=1):
        if not segment:
            where = "a trailing '/'" if name.endswith("/") and index > 1 else "'//'"
            raise InvalidSecretNameError(
                f"secret name {name!r} has an empty segment ({where}); use {_ALLOWED}"
            )
        if segment in (".", ".."):
            raise InvalidSecretNameError(
                f"secret name {name!r} has a {segment!r} segment; names are not relative paths"
            )
        for char in segment:
            if not _SEGMENT_CHAR.fullmatch(char):
                raise InvalidSecretNameError(
                    f"secret name {name!r} contains {char!r}, which is not allowed; use {_ALLOWED}"
                )
    return name


def validate_value(value: SecretValue, *, name: str | None = None) -> SecretValue:
    """Return ``value`` if it is storable, else raise :class:`InvalidSecretValueError`.

    The message states the size and the limit, never the bytes.
    """
    if not isinstance(value, SecretValue):
        raise TypeError("secret values must be wrapped in SecretValue")
    subject = f"the value of {name!r}" if name else "the secret value"
    size = len(value)
    if size == 0:
        raise InvalidSecretValueError(f"{subject} is empty; a secret needs at least one byte")
    if size > MAX_VALUE_SIZE:
        raise InvalidSecretValueError(
            f"{subject} is {size} bytes; the limit is {MAX_VALUE_SIZE} bytes (1 MiB)"
        )
    return value
