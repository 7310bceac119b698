"""The local provider's boundary: kernel vault errors → SDK faults (wire codes).

    kernel exception          fault                wire code         why
    VaultNotFoundError        BackendUnavailable   unavailable       the back end is absent; it
                                                                     appears with `docker dso
                                                                     init`, and a retry then works
    VaultKeyError             AuthFailed           auth_failed       wrong key file or passphrase
                                                                     (or tampering: same to GCM)
    VaultCorruptError         BackendUnavailable   unavailable       the back end is failing; not
                                                                     a provider bug, and restoring
                                                                     the file fixes it
    VaultBusyError            BackendUnavailable   unavailable       lock contention: retry later
    VaultError (other)        BackendUnavailable   unavailable       unreadable file
    InvalidSecretNameError    InvalidRequest       invalid_request   the reference's path cannot
                                                                     be a vault name
    SecretNotFoundError       SecretNotFound       not_found         no such secret
    SecretError (other)       InvalidRequest       invalid_request
    StorageError              BackendUnavailable   unavailable
    DSOError (other)          InternalFault        internal

A missing vault is deliberately not ``not_found``: that code means "this reference names
nothing" and sends the user to check the reference, while the fix here is ``docker dso init``
(the message says so). Messages are the kernel exception's message and hint, which by the
kernel's convention name files and secrets, never values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kernel.errors import (
    DSOError,
    InvalidSecretNameError,
    SecretError,
    SecretNotFoundError,
    StorageError,
    VaultBusyError,
    VaultCorruptError,
    VaultError,
    VaultKeyError,
    VaultNotFoundError,
)
from providers.sdk import (
    AuthFailed,
    BackendUnavailable,
    InternalFault,
    InvalidRequest,
    ProviderFault,
    SecretNotFound,
)

#: Most specific first: the first class the exception is an instance of wins.
FAULT_TABLE: tuple[tuple[type[DSOError], type[ProviderFault]], ...] = (
    (VaultNotFoundError, BackendUnavailable),
    (VaultKeyError, AuthFailed),
    (VaultCorruptError, BackendUnavailable),
    (VaultBusyError, BackendUnavailable),
    (VaultError, BackendUnavailable),
    (InvalidSecretNameError, InvalidRequest),
    (SecretNotFoundError, SecretNotFound),
    (SecretError, InvalidRequest),
    (StorageError, BackendUnavailable),
    (DSOError, InternalFault),
)


def fault_for_error(exc: DSOError) -> ProviderFault:
    """The SDK fault standing for a kernel error, with its message and hint on one line."""
    fault_cls = next(
        (fault for error, fault in FAULT_TABLE if isinstance(exc, error)), InternalFault
    )
    message = exc.message
    if exc.hint:
        message = f"{message} (hint: {exc.hint})"
    return fault_cls(message)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Run a block calling the kernel vault; its :class:`DSOError` leaves as a ``ProviderFault``.

    Anything else passes through untouched: the SDK turns it into ``internal`` with a generic
    message and logs only its type and stack.
    """
    try:
        yield
    except DSOError as exc:
        raise fault_for_error(exc) from None
