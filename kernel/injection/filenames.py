"""The file name a ``dsofile://`` variable gets inside the container (docs/compose.md).

The name is the variable's name with every character outside ``[A-Za-z0-9._-]`` replaced by
``_``, and a leading ``.`` replaced by ``_`` (names starting with ``..`` belong to the atomic
``..data`` machinery, and hidden files surprise people). ``DB_PASSWORD_FILE: dsofile://app/db``
is delivered as ``/run/secrets/dso/DB_PASSWORD_FILE``.
"""

from __future__ import annotations

import re

#: Longest file name a Linux file system accepts, in bytes.
MAX_FILE_NAME = 255

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(variable: str) -> str:
    """The safe file name for ``variable``; :class:`ValueError` if there is none."""
    name = _UNSAFE.sub("_", variable)
    if name.startswith("."):
        name = "_" + name[1:]
    if not name:
        raise ValueError("an empty variable name cannot name a file")
    if len(name.encode()) > MAX_FILE_NAME:
        raise ValueError(f"the variable name is longer than {MAX_FILE_NAME} characters")
    return name


def is_safe_file_name(name: str) -> bool:
    """True for names :func:`file_name` can produce (what a secrets directory may hold)."""
    return (
        bool(name)
        and not name.startswith(".")
        and not _UNSAFE.search(name)
        and (len(name.encode()) <= MAX_FILE_NAME)
    )
