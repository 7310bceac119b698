"""Every hvac/requests exception the vault provider can meet maps to the right wire code, and
no exception text (which may hold a response body) reaches the message."""

from __future__ import annotations

import hvac.exceptions as hvac_exc
import pytest
import requests.exceptions as req_exc

from kernel.protocol import ErrorCode
from providers.sdk import ProviderFault
from providers.vault.errors import RULES, fault_for, translate

CANARY = "CANARY-s3cr3t-body"

CASES = [
    (hvac_exc.InvalidPath(CANARY), ErrorCode.NOT_FOUND, "HTTP 404"),
    (hvac_exc.Forbidden(CANARY, errors=[CANARY]), ErrorCode.ACCESS_DENIED, "HTTP 403"),
    (hvac_exc.Unauthorized(CANARY), ErrorCode.AUTH_FAILED, "HTTP 401"),
    (hvac_exc.VaultDown("Vault is sealed"), ErrorCode.UNAVAILABLE, "sealed"),
    (hvac_exc.BadGateway(CANARY), ErrorCode.UNAVAILABLE, "HTTP 502"),
    (hvac_exc.RateLimitExceeded(CANARY), ErrorCode.UNAVAILABLE, "rate limited"),
    (hvac_exc.InternalServerError(CANARY), ErrorCode.UNAVAILABLE, "HTTP 500"),
    (hvac_exc.VaultNotInitialized(CANARY), ErrorCode.UNAVAILABLE, "not initialized"),
    (hvac_exc.PreconditionFailed(CANARY), ErrorCode.UNAVAILABLE, "HTTP 412"),
    (hvac_exc.InvalidRequest(CANARY), ErrorCode.INVALID_REQUEST, "HTTP 400"),
    (hvac_exc.UnsupportedOperation(CANARY), ErrorCode.INVALID_REQUEST, "not supported"),
    (hvac_exc.ParamValidationError(CANARY), ErrorCode.INVALID_REQUEST, "invalid parameters"),
    (hvac_exc.UnexpectedError(CANARY), ErrorCode.INTERNAL, "unexpected answer"),
    (hvac_exc.VaultError(CANARY), ErrorCode.INTERNAL, "unexpected error"),
    (req_exc.SSLError(CANARY), ErrorCode.UNAVAILABLE, "TLS"),
    (req_exc.ConnectTimeout(CANARY), ErrorCode.UNAVAILABLE, "timed out connecting"),
    (req_exc.ProxyError(CANARY), ErrorCode.UNAVAILABLE, "proxy"),
    (req_exc.ConnectionError(CANARY), ErrorCode.UNAVAILABLE, "cannot connect"),
    (req_exc.ReadTimeout(CANARY), ErrorCode.UNAVAILABLE, "did not answer in time"),
    (req_exc.InvalidURL(CANARY), ErrorCode.INVALID_REQUEST, "not a valid URL"),
    (req_exc.MissingSchema(CANARY), ErrorCode.INVALID_REQUEST, "http://"),
    (req_exc.InvalidSchema(CANARY), ErrorCode.INVALID_REQUEST, "http://"),
    (req_exc.ChunkedEncodingError(CANARY), ErrorCode.UNAVAILABLE, "HTTP error"),
]


@pytest.mark.parametrize(
    ("exc", "code", "text"), CASES, ids=[type(case[0]).__name__ for case in CASES]
)
def test_each_exception_maps_to_its_code_without_its_text(
    exc: Exception, code: ErrorCode, text: str
) -> None:
    fault = fault_for(exc, "'secret/app/db'")
    assert fault is not None
    assert fault.code is code
    assert fault.message.startswith("'secret/app/db': ")
    assert text in fault.message
    assert CANARY not in fault.message


def test_every_rule_is_exercised_by_the_table() -> None:
    covered = {type(exc) for exc, _, _ in CASES}
    for rule in RULES:
        assert any(issubclass(cls, rule.exc) for cls in covered), rule.exc


def test_subclasses_come_before_their_bases() -> None:
    for i, early in enumerate(RULES):
        for late in RULES[i + 1 :]:
            assert not issubclass(late.exc, early.exc), f"{late.exc} is shadowed by {early.exc}"


def test_unknown_exceptions_are_left_to_the_sdk() -> None:
    assert fault_for(ValueError(CANARY), "x") is None
    with pytest.raises(ValueError), translate("x"):
        raise ValueError(CANARY)


def test_translate_raises_the_fault_and_keeps_the_cause() -> None:
    with pytest.raises(ProviderFault) as info, translate("'secret/a'"):
        raise hvac_exc.Forbidden(CANARY)
    assert info.value.code is ErrorCode.ACCESS_DENIED
    assert isinstance(info.value.__cause__, hvac_exc.Forbidden)
    assert CANARY not in info.value.to_wire().message
