"""Every botocore exception and AWS error code the aws provider can meet maps to the right wire
code; messages never carry the exception's text."""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bce
import pytest

from kernel.protocol import ErrorCode
from providers.aws.errors import CLASS_RULES, CODE_RULES, client_error_code, fault_for, translate
from providers.sdk import ProviderFault

CANARY = "CANARY-s3cr3t-param"


def client_error(
    code: str, status: int | None = 400, message: str = CANARY, operation: str = "GetSecretValue"
) -> bce.ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return bce.ClientError(response, operation)


CODE_CASES = [
    ("ResourceNotFoundException", 400, ErrorCode.NOT_FOUND),
    ("AccessDeniedException", 400, ErrorCode.ACCESS_DENIED),
    ("AccessDenied", 403, ErrorCode.ACCESS_DENIED),
    ("DecryptionFailure", 400, ErrorCode.ACCESS_DENIED),
    ("KMSAccessDeniedException", 400, ErrorCode.ACCESS_DENIED),
    ("UnrecognizedClientException", 400, ErrorCode.AUTH_FAILED),
    ("InvalidClientTokenId", 403, ErrorCode.AUTH_FAILED),
    ("InvalidSignatureException", 400, ErrorCode.AUTH_FAILED),
    ("SignatureDoesNotMatch", 403, ErrorCode.AUTH_FAILED),
    ("IncompleteSignature", 400, ErrorCode.AUTH_FAILED),
    ("MissingAuthenticationToken", 403, ErrorCode.AUTH_FAILED),
    ("ExpiredTokenException", 400, ErrorCode.AUTH_FAILED),
    ("ExpiredToken", 400, ErrorCode.AUTH_FAILED),
    ("InvalidToken", 400, ErrorCode.AUTH_FAILED),
    ("RequestExpired", 400, ErrorCode.AUTH_FAILED),
    ("ThrottlingException", 400, ErrorCode.UNAVAILABLE),
    ("Throttling", 400, ErrorCode.UNAVAILABLE),
    ("TooManyRequestsException", 429, ErrorCode.UNAVAILABLE),
    ("RequestLimitExceeded", 400, ErrorCode.UNAVAILABLE),
    ("InternalServiceError", 500, ErrorCode.UNAVAILABLE),
    ("InternalFailure", 500, ErrorCode.UNAVAILABLE),
    ("ServiceUnavailable", 503, ErrorCode.UNAVAILABLE),
    ("ServiceUnavailableException", 503, ErrorCode.UNAVAILABLE),
    ("RequestTimeout", 408, ErrorCode.UNAVAILABLE),
    ("RequestTimeoutException", 408, ErrorCode.UNAVAILABLE),
    ("InvalidParameterException", 400, ErrorCode.INVALID_REQUEST),
    ("ValidationException", 400, ErrorCode.INVALID_REQUEST),
    ("InvalidRequestException", 400, ErrorCode.INVALID_REQUEST),
    # Unknown codes fall back on the HTTP status.
    ("SomethingNew", 400, ErrorCode.INVALID_REQUEST),
    ("SomethingNew", 401, ErrorCode.AUTH_FAILED),
    ("SomethingNew", 403, ErrorCode.ACCESS_DENIED),
    ("SomethingNew", 404, ErrorCode.NOT_FOUND),
    ("SomethingNew", 429, ErrorCode.UNAVAILABLE),
    ("SomethingNew", 502, ErrorCode.UNAVAILABLE),
    ("SomethingNew", 302, ErrorCode.INTERNAL),
    ("SomethingNew", None, ErrorCode.INTERNAL),
]


@pytest.mark.parametrize(("code", "status", "wire"), CODE_CASES, ids=lambda v: str(v))
def test_client_error_codes(code: str, status: int | None, wire: ErrorCode) -> None:
    fault = fault_for(client_error(code, status), "'prod/db'")
    assert fault is not None
    assert fault.code is wire
    assert fault.message.startswith("'prod/db': ")
    assert CANARY not in fault.message
    if code in CODE_RULES:
        assert code in fault.message


def test_every_code_rule_is_in_the_table() -> None:
    assert set(CODE_RULES) <= {code for code, _, _ in CODE_CASES}


def test_a_secret_scheduled_for_deletion_is_not_found() -> None:
    exc = client_error(
        "InvalidRequestException",
        400,
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
    fault = fault_for(exc, "'gone'")
    assert fault is not None
    assert fault.code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize("code", ["AccessDenied", "ExpiredToken", "RegionDisabledException"])
def test_assume_role_failures_are_auth_failed(code: str) -> None:
    fault = fault_for(client_error(code, 403, operation="AssumeRole"), "'prod/db'")
    assert fault is not None
    assert fault.code is ErrorCode.AUTH_FAILED
    assert "assume the configured role" in fault.message


def test_xml_error_bodies_yield_their_inner_code() -> None:
    # moto (and some proxies) answer JSON-protocol errors with XML: botocore then reports the
    # HTTP status as the code and the XML as the message.
    body = (
        '<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>'
        "<Message>The security token included in the request is invalid.</Message>"
        "</Error></Errors></ErrorResponse>"
    )
    exc = client_error("403", None, body)
    assert client_error_code(exc) == ("InvalidClientTokenId", 403)
    fault = fault_for(exc, "'a'")
    assert fault is not None
    assert fault.code is ErrorCode.AUTH_FAILED
    assert "<" not in fault.message


CLASS_CASES: list[tuple[Exception, ErrorCode]] = [
    (bce.NoCredentialsError(), ErrorCode.AUTH_FAILED),
    (bce.PartialCredentialsError(provider="env", cred_var=CANARY), ErrorCode.AUTH_FAILED),
    (bce.CredentialRetrievalError(provider="x", error_msg=CANARY), ErrorCode.AUTH_FAILED),
    (bce.TokenRetrievalError(provider="sso", error_msg=CANARY), ErrorCode.AUTH_FAILED),
    (bce.UnauthorizedSSOTokenError(), ErrorCode.AUTH_FAILED),
    (bce.SSOError(), ErrorCode.AUTH_FAILED),
    (bce.NoAuthTokenError(), ErrorCode.AUTH_FAILED),
    (bce.RefreshWithMFAUnsupportedError(), ErrorCode.AUTH_FAILED),
    (bce.ProfileNotFound(profile=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.ConfigNotFound(path=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.NoRegionError(), ErrorCode.INVALID_REQUEST),
    (bce.InvalidRegionError(region_name=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.ParamValidationError(report=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.InvalidConfigError(error_msg=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.UnknownEndpointError(service_name="s", region_name=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.EndpointResolutionError(msg=CANARY), ErrorCode.INVALID_REQUEST),
    (bce.SSLError(endpoint_url=CANARY, error=CANARY), ErrorCode.UNAVAILABLE),
    (bce.ConnectTimeoutError(endpoint_url=CANARY), ErrorCode.UNAVAILABLE),
    (bce.ProxyConnectionError(proxy_url=CANARY, error=CANARY), ErrorCode.UNAVAILABLE),
    (bce.EndpointConnectionError(endpoint_url=CANARY), ErrorCode.UNAVAILABLE),
    (bce.ConnectionClosedError(endpoint_url=CANARY), ErrorCode.UNAVAILABLE),
    (bce.ReadTimeoutError(endpoint_url=CANARY), ErrorCode.UNAVAILABLE),
    (bce.HTTPClientError(error=CANARY), ErrorCode.UNAVAILABLE),
    (bce.CapacityNotAvailableError(), ErrorCode.UNAVAILABLE),
    (bce.DataNotFoundError(data_path=CANARY), ErrorCode.INTERNAL),
]


@pytest.mark.parametrize(
    ("exc", "wire"), CLASS_CASES, ids=[type(case[0]).__name__ for case in CLASS_CASES]
)
def test_botocore_exceptions(exc: Exception, wire: ErrorCode) -> None:
    fault = fault_for(exc, "'prod/db'")
    assert fault is not None
    assert fault.code is wire
    assert CANARY not in fault.message


def test_every_class_rule_is_exercised() -> None:
    covered = {type(exc) for exc, _ in CLASS_CASES}
    for cls, _, _ in CLASS_RULES:
        assert any(issubclass(c, cls) for c in covered), cls


def test_subclasses_come_before_their_bases() -> None:
    for i, (early, _, _) in enumerate(CLASS_RULES):
        for late, _, _ in CLASS_RULES[i + 1 :]:
            assert not issubclass(late, early), f"{late} is shadowed by {early}"


def test_translate() -> None:
    with pytest.raises(ProviderFault) as info, translate("'a'"):
        raise client_error("ResourceNotFoundException")
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(KeyError), translate("'a'"):
        raise KeyError(CANARY)
