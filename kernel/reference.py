"""Secret references: ``dso://`` (environment variable) and ``dsofile://`` (file).

Grammar (normative text, with examples: docs/references.md)::

    reference := scheme "://" [ provider ":" ] path [ "@" version ] [ "#" field ]
    scheme    := "dso" | "dsofile"
    provider  := [a-z][a-z0-9_-]{0,62}     (omitted: the configured default_provider)
    path      := segments joined by "/"; no whitespace, control characters or "?";
                 "@" and "#" written as %40 and %23
    version   := [A-Za-z0-9._-]+           (provider-specific: 3, AWSCURRENT, a uuid)
    field     := name *( "." name )        (one field of a JSON secret)

``dso://app/db_password`` resolves ``app/db_password`` in the default provider, which is the
local vault when there is no configuration at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from kernel.errors import SecretReferenceError


class Delivery(Enum):
    """How a resolved value reaches the container."""

    #: ``dso://``: an environment variable (visible in ``docker inspect``).
    ENV = "dso"
    #: ``dsofile://``: a 0400 file on a tmpfs mounted into the container.
    FILE = "dsofile"


_PROVIDER = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_TOKEN = re.compile(r"[A-Za-z0-9._-]+")
_FIELD = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f?]")
MAX_REFERENCE_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class SecretReference:
    """A parsed reference. ``provider`` is None for the default provider."""

    delivery: Delivery
    path: str
    provider: str | None = None
    version: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        return self.uri()

    def uri(self) -> str:
        text = f"{self.delivery.value}://"
        if self.provider:
            text += f"{self.provider}:"
        text += _quote_path(self.path)
        if self.version:
            text += f"@{self.version}"
        if self.field:
            text += f"#{self.field}"
        return text

    def key(self, default_provider: str) -> tuple[str, str, str | None, str | None]:
        """What identifies the secret value, independent of delivery (for batching)."""
        return (self.provider or default_provider, self.path, self.version, self.field)


def is_reference(value: str) -> bool:
    """True for strings that claim to be references (and must then parse)."""
    return value.startswith(("dso://", "dsofile://"))


def parse_reference(text: str) -> SecretReference:
    """Parse ``text``; raise :class:`SecretReferenceError` saying what is wrong and where."""
    if len(text) > MAX_REFERENCE_LENGTH:
        raise _error(text, f"longer than {MAX_REFERENCE_LENGTH} characters")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _error(text, "missing scheme: write dso://<path> or dsofile://<path>")
    try:
        delivery = Delivery(scheme)
    except ValueError:
        raise _error(text, f"unknown scheme {scheme!r}: use dso:// or dsofile://") from None
    offset = len(scheme) + 3
    bad = _FORBIDDEN.search(rest)
    if bad:
        char = bad.group()
        what = "'?'" if char == "?" else f"character {char!r}"
        raise _error(text, f"{what} at column {offset + bad.start() + 1} is not allowed")

    rest, _, field = rest.partition("#") if "#" in rest else (rest, "", None)
    if field is not None and not _FIELD.fullmatch(field):
        raise _error(text, f"field {field!r} after '#' must be names joined by dots")
    version: str | None = None
    if "@" in rest:
        rest, _, version = rest.rpartition("@")
        if not _TOKEN.fullmatch(version):
            raise _error(text, f"version {version!r} after '@' may only contain A-Z a-z 0-9 . _ -")

    provider: str | None = None
    head, colon, tail = rest.partition(":")
    if colon and _PROVIDER.fullmatch(head):
        provider, rest = head, tail
        if provider == "arn":
            raise _error(text, "an AWS ARN needs its provider first, e.g. dso://aws:arn:aws:…")
    if not rest:
        raise _error(text, "the secret path is empty")
    try:
        path = unquote(rest, errors="strict")
    except UnicodeDecodeError:
        raise _error(text, "a %XX escape does not decode as UTF-8") from None
    if path.startswith("/") or path.endswith("/") or "//" in path:
        raise _error(text, "the path must not start or end with '/' nor contain '//'")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise _error(text, "'.' and '..' path segments are not allowed")
    return SecretReference(delivery, path, provider, version, field)


def _quote_path(path: str) -> str:
    return path.replace("%", "%25").replace("@", "%40").replace("#", "%23")


def _error(text: str, problem: str) -> SecretReferenceError:
    shown = text if len(text) <= 120 else text[:117] + "..."
    return SecretReferenceError(
        f"invalid secret reference {shown!r}: {problem}",
        hint="see docs/references.md for the grammar",
    )
