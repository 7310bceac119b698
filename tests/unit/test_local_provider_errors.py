"""providers.local.errors: every kernel vault error maps to the documented wire code."""

from __future__ import annotations

import pytest

from kernel.errors import (
    ConfigError,
    DSOError,
    InvalidSecretNameError,
    InvalidSecretValueError,
    SecretNotFoundError,
    StorageError,
    VaultBusyError,
    VaultCorruptError,
    VaultError,
    VaultExistsError,
    VaultKeyError,
    VaultNotFoundError,
)
from kernel.protocol import ErrorCode
from providers.local.errors import FAULT_TABLE, fault_for_error, translated
from providers.sdk import ProviderFault

CASES: list[tuple[DSOError, ErrorCode]] = [
    (VaultNotFoundError("no vault at /x/vault.enc"), ErrorCode.UNAVAILABLE),
    (VaultKeyError("wrong key"), ErrorCode.AUTH_FAILED),
    (VaultCorruptError("/x is not a dso vault"), ErrorCode.UNAVAILABLE),
    (VaultBusyError("lock held"), ErrorCode.UNAVAILABLE),
    (VaultExistsError("exists"), ErrorCode.UNAVAILABLE),
    (VaultError("cannot read /x"), ErrorCode.UNAVAILABLE),
    (InvalidSecretNameError("bad name"), ErrorCode.INVALID_REQUEST),
    (SecretNotFoundError("no secret"), ErrorCode.NOT_FOUND),
    (InvalidSecretValueError("too big"), ErrorCode.INVALID_REQUEST),
    (StorageError("disk full"), ErrorCode.UNAVAILABLE),
    (ConfigError("bad"), ErrorCode.INTERNAL),
    (DSOError("other"), ErrorCode.INTERNAL),
]


@pytest.mark.parametrize(("error", "code"), CASES, ids=lambda v: type(v).__name__)
def test_each_kernel_error_maps_to_its_wire_code(error: DSOError, code: ErrorCode) -> None:
    fault = fault_for_error(error)
    assert fault.code is code
    assert fault.to_wire().code is code
    assert error.message in fault.message


def test_the_hint_travels_in_the_message_on_one_line() -> None:
    fault = fault_for_error(
        VaultNotFoundError("no vault at /x/vault.enc", hint="create one with `docker dso init`")
    )
    assert fault.message == "no vault at /x/vault.enc (hint: create one with `docker dso init`)"
    assert "\n" not in fault.to_wire().message


def test_table_lists_subclasses_before_their_bases() -> None:
    classes = [error for error, _ in FAULT_TABLE]
    for index, cls in enumerate(classes):
        for later in classes[index + 1 :]:
            assert not issubclass(later, cls), f"{later.__name__} is shadowed by {cls.__name__}"
    assert classes[-1] is DSOError


def test_translated_converts_dso_errors_and_passes_others() -> None:
    with pytest.raises(ProviderFault) as caught, translated():
        raise VaultKeyError("wrong passphrase")
    assert caught.value.code is ErrorCode.AUTH_FAILED
    assert caught.value.__cause__ is None
    with pytest.raises(KeyError), translated():
        raise KeyError("not ours")
