"""A container for secret bytes that refuses to show them by accident.

``repr``, ``str``, f-strings, logging and pickling all see a mask. Call :meth:`reveal` at the
one place the bytes must leave dso (a tmpfs file, a child's environment, a ``--reveal`` print).
"""

from __future__ import annotations

import hmac
from typing import NoReturn

MASK = "********"


class SecretValue:
    """Secret bytes with a masking repr. Compare in constant time; never hash or pickle."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | str) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError("SecretValue wants bytes or str")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The secret bytes. Every call site is a place a value leaves dso: keep them few."""
        return self._value

    def reveal_text(self) -> str:
        """The secret as UTF-8 text (for environment variables); invalid bytes raise."""
        return self._value.decode("utf-8")

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"SecretValue({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return hmac.compare_digest(self._value, other._value)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")
