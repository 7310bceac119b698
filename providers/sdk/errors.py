"""Exceptions a provider raises, each carrying its wire error code, and the boundary mapping.

A provider translates its back end's exceptions (hvac, botocore, azure) into these in its own
``errors.py``; the SDK turns them into ``{code, message}``. Any other exception becomes
``internal`` with a generic message: its text may hold secret material (a response body, a
token), so only its type and stack are logged, never ``str(exc)``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from kernel.errors import ProtocolError
from kernel.protocol.codes import ErrorCode, clean_message
from kernel.protocol.messages import WireError

#: What the kernel is told about an unexpected exception; the details stay in the log.
GENERIC_INTERNAL_MESSAGE = "internal error in the provider (see its log)"

log = logging.getLogger("providers.sdk")


class ProviderFault(Exception):
    """Base of the exceptions a provider raises on purpose. The message goes to the kernel and
    the user verbatim: name references and causes, never secret values or credentials."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message or self.code.value.replace("_", " ")

    def to_wire(self) -> WireError:
        return WireError(self.code, clean_message(self.message))


class SecretNotFound(ProviderFault):
    """The path, field or version does not exist in the back end."""

    code = ErrorCode.NOT_FOUND


class AccessDenied(ProviderFault):
    """The provider's identity is authenticated but may not read this secret."""

    code = ErrorCode.ACCESS_DENIED


class AuthFailed(ProviderFault):
    """The provider could not authenticate: bad or expired credentials."""

    code = ErrorCode.AUTH_FAILED


class BackendUnavailable(ProviderFault):
    """The back end is unreachable, throttling or failing; a retry may succeed."""

    code = ErrorCode.UNAVAILABLE


class InvalidRequest(ProviderFault):
    """A setting or reference is invalid for this provider, or the request is malformed."""

    code = ErrorCode.INVALID_REQUEST

    def __init__(self, message: str = "", *, setting: str | None = None) -> None:
        super().__init__(message)
        #: The dotted setting at fault (``auth.method``), when it is one: ``docker dso config
        #: validate`` points at its line in dso.yaml.
        self.setting = setting


class DeadlineExceeded(ProviderFault):
    """The request's deadline passed; raise it when a back-end call times out."""

    code = ErrorCode.TIMEOUT


class InternalFault(ProviderFault):
    """A failure inside the provider that it chooses to report with a safe message."""

    code = ErrorCode.INTERNAL


#: The exception class for each wire code, for providers that map by code.
FAULT_FOR_CODE: dict[ErrorCode, type[ProviderFault]] = {
    cls.code: cls
    for cls in (
        SecretNotFound,
        AccessDenied,
        AuthFailed,
        BackendUnavailable,
        InvalidRequest,
        DeadlineExceeded,
        InternalFault,
    )
}


def fault_for(code: ErrorCode | str, message: str = "") -> ProviderFault:
    """A ready-to-raise exception for a wire code."""
    return FAULT_FOR_CODE[ErrorCode(code)](message)


def wire_error_for(exc: BaseException, context: str) -> WireError:
    """The ``{code, message}`` for an exception that reached the SDK's boundary.

    ``context`` (a method name, a reference path; never a value) is used in the log only.
    """
    if isinstance(exc, ProviderFault):
        return exc.to_wire()
    if isinstance(exc, ProtocolError):
        # Raised by the SDK's own param parsers: the message names a field, not a value.
        return WireError(ErrorCode.INVALID_REQUEST, clean_message(exc.message))
    log_unexpected(exc, context)
    return WireError(ErrorCode.INTERNAL, GENERIC_INTERNAL_MESSAGE)


def log_unexpected(exc: BaseException, context: str) -> None:
    """Log an unexpected exception's type chain and stack, withholding its message."""
    chain: list[str] = []
    stack: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(f"{type(current).__module__}.{type(current).__qualname__}")
        stack = traceback.format_tb(current.__traceback__) + stack
        current = current.__cause__ or current.__context__
    log.error(
        "unexpected %s in %s (message withheld: it may contain secret material)\n%s",
        " <- ".join(chain),
        context,
        "".join(stack).rstrip(),
    )


@contextmanager
def translating(
    what: str,
    fault_for_exception: Callable[[BaseException, str], ProviderFault | None],
    log: logging.Logger,
) -> Iterator[None]:
    """Run one back-end call, turning an SDK exception into a :class:`ProviderFault`.

    ``fault_for_exception`` is the provider's mapping table (its ``errors.py``); an exception it
    does not know is re-raised and becomes ``internal`` at the SDK boundary.
    """
    try:
        yield
    except ProviderFault:
        raise
    except Exception as exc:
        fault = fault_for_exception(exc, what)
        if fault is None:
            raise
        log.debug("%s: %s → %s", what, type(exc).__name__, fault.code.value)
        raise fault from exc
