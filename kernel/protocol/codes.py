"""The closed set of wire error codes, and how the kernel turns each into a :class:`DSOError`.

A provider answers a failed request (or one reference of a batch) with ``{code, message}``.
The code is one of :class:`ErrorCode`; the kernel raises the exception class mapped here so the
user sees the right exit code (a missing secret exits 5 like a missing local secret, everything
else exits 7 as a provider failure). ``docs/provider-protocol.md`` holds the same table.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

from kernel.errors import (
    DSOError,
    ProtocolError,
    ProviderError,
    ProviderTimeoutError,
    SecretError,
    SecretNotFoundError,
)

#: Longest provider-supplied error message the kernel keeps; longer ones are cut.
MAX_ERROR_MESSAGE = 1024


class ErrorCode(StrEnum):
    """Wire error codes of Protocol 1. Closed: a new code needs a new protocol version."""

    #: The reference names nothing (no such path, field or version) in the back end.
    NOT_FOUND = "not_found"
    #: The provider authenticated, but its identity may not read this secret.
    ACCESS_DENIED = "access_denied"
    #: The provider could not authenticate to its back end (bad token, expired credentials).
    AUTH_FAILED = "auth_failed"
    #: The back end is unreachable, throttling or failing; retrying later may succeed.
    UNAVAILABLE = "unavailable"
    #: The request is malformed, names an unknown method, or a setting/reference is invalid.
    INVALID_REQUEST = "invalid_request"
    #: The request's deadline passed before the provider could answer.
    TIMEOUT = "timeout"
    #: A bug or an unexpected failure inside the provider; details are in its stderr log.
    INTERNAL = "internal"


#: Every valid code string, for validators.
ERROR_CODES: frozenset[str] = frozenset(code.value for code in ErrorCode)

#: Codes worth retrying (with backoff) without operator action.
RETRYABLE_CODES: frozenset[ErrorCode] = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT})

#: Codes that count as a provider failure for its circuit breaker. ``not_found``,
#: ``access_denied`` and ``invalid_request`` describe the request, not the provider's health.
BREAKER_CODES: frozenset[ErrorCode] = frozenset(
    {ErrorCode.AUTH_FAILED, ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.INTERNAL}
)

#: The kernel exception raised for each code (exit code in parentheses):
#: not_found → SecretNotFoundError (5); timeout → ProviderTimeoutError (7); every other code →
#: ProviderError (7) carrying the code in ``.code``.
EXCEPTION_FOR_CODE: MappingProxyType[ErrorCode, type[DSOError]] = MappingProxyType(
    {
        ErrorCode.NOT_FOUND: SecretNotFoundError,
        ErrorCode.ACCESS_DENIED: ProviderError,
        ErrorCode.AUTH_FAILED: ProviderError,
        ErrorCode.UNAVAILABLE: ProviderError,
        ErrorCode.INVALID_REQUEST: ProviderError,
        ErrorCode.TIMEOUT: ProviderTimeoutError,
        ErrorCode.INTERNAL: ProviderError,
    }
)

_HINTS: MappingProxyType[ErrorCode, str] = MappingProxyType(
    {
        ErrorCode.NOT_FOUND: "check the reference's path, field and version in the provider",
        ErrorCode.ACCESS_DENIED: "grant the provider's identity read access to this secret",
        ErrorCode.AUTH_FAILED: "check the provider's credentials in the configuration",
        ErrorCode.UNAVAILABLE: "the back end is unreachable or failing; dso retries with backoff",
        ErrorCode.INVALID_REQUEST: "check the provider's settings and the reference in dso.yaml",
        ErrorCode.TIMEOUT: "the back end is slow; raise the provider's timeout if this persists",
        ErrorCode.INTERNAL: "the provider's log (stderr) has the details",
    }
)


def parse_code(value: object) -> ErrorCode:
    """The :class:`ErrorCode` for a wire value; anything outside the closed set raises."""
    if isinstance(value, str) and value in ERROR_CODES:
        return ErrorCode(value)
    raise ProtocolError(f"unknown error code {value!r:.40}; expected one of {sorted(ERROR_CODES)}")


def clean_message(message: str) -> str:
    """A provider-supplied message made safe for one log/terminal line: no control characters,
    at most :data:`MAX_ERROR_MESSAGE` characters."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in message[:MAX_ERROR_MESSAGE])
    if len(message) > MAX_ERROR_MESSAGE:
        cleaned += "…"
    return cleaned


def exception_for(
    code: ErrorCode | str,
    message: str,
    *,
    provider: str | None = None,
    reference: str | None = None,
) -> DSOError:
    """The kernel exception for a wire error, ready to raise.

    ``reference`` (a path the user wrote, never a value) is named in the message. The wire code
    survives as ``.code`` on ProviderError subclasses and via :func:`wire_code` for all.
    """
    code = parse_code(code)
    cls = EXCEPTION_FOR_CODE[code]
    text, own_hint = split_hint(clean_message(message) or code.value)
    # A provider's own hint is more specific than the code's; one hint line, never two.
    hint = own_hint or _HINTS.get(code)
    # Every error about a reference leads with the reference the user wrote, then who answered.
    if issubclass(cls, ProviderError):
        error = cls(text, provider=provider, code=code.value, hint=hint)
        if reference is not None:
            error.message = f"{reference}: {error.message}"
            error.args = (error.message,)
        return error
    if provider is not None:
        text = f"provider {provider!r}: {text}"
    if reference is not None:
        text = f"{reference}: {text}"
    return cls(text, hint=hint)


def split_hint(message: str) -> tuple[str, str | None]:
    """A provider message and the hint it ends with as ``… (hint: …)`` (the wire has no hint
    field, so providers append theirs, e.g. ``providers.local.errors.fault_for_error``)."""
    head, marker, tail = message.rpartition(" (hint: ")
    if not marker or not head or not tail.endswith(")") or len(tail) < 2:
        return message, None
    return head, tail[:-1]


def wire_code(exc: BaseException) -> ErrorCode:
    """The wire code an exception stands for: the inverse of :func:`exception_for`.

    Lets kernel code (metrics, breaker, ``--json`` output) treat every provider failure alike.
    """
    if isinstance(exc, ProviderError):
        try:
            return ErrorCode(exc.code)
        except ValueError:
            return ErrorCode.INTERNAL
    if isinstance(exc, SecretNotFoundError):
        return ErrorCode.NOT_FOUND
    if isinstance(exc, SecretError):
        return ErrorCode.INVALID_REQUEST
    return ErrorCode.INTERNAL
