"""The azure provider's boundary: every azure-core / azure-identity exception → one wire code,
with a message built from safe parts only (status, Key Vault codes, Retry-After, AADSTS code)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.identity import CredentialUnavailableError

from providers.azure.errors import RULES, fault_from, rule_for, translated
from providers.sdk import ErrorCode, InvalidRequest, ProviderFault

CANARY = "CANARY-9f1c2b7e"


class FakeResponse:
    """What HttpResponseError reads from a response."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status_code = status
        self.reason = "Reason"
        self.headers = headers or {}
        self.content_type = "application/json"
        self.request = None
        self._body = b"" if body is None else json.dumps(body).encode()

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def body(self) -> bytes:
        return self._body


def kv_error(
    cls: type[HttpResponseError],
    status: int,
    code: str = "Err",
    inner: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponseError:
    error: dict[str, Any] = {"code": code, "message": f"server text {CANARY}"}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return cls(response=FakeResponse(status, {"error": error}, headers))


CASES: list[tuple[str, BaseException, ErrorCode, str]] = [
    ("404", kv_error(ResourceNotFoundError, 404, "SecretNotFound"), ErrorCode.NOT_FOUND, "404"),
    ("401 token refused", kv_error(ClientAuthenticationError, 401, "Unauthorized"),
     ErrorCode.AUTH_FAILED, "refused the token"),
    ("credential failed", ClientAuthenticationError(
        message=f"Authentication failed: AADSTS7000215: Invalid client secret {CANARY}"),
     ErrorCode.AUTH_FAILED, "AADSTS7000215"),
    ("credential unavailable", CredentialUnavailableError(message=f"no IMDS {CANARY}"),
     ErrorCode.AUTH_FAILED, "not available here"),
    ("plain 401", kv_error(HttpResponseError, 401), ErrorCode.AUTH_FAILED, "HTTP 401"),
    ("plain 404", kv_error(HttpResponseError, 404), ErrorCode.NOT_FOUND, "HTTP 404"),
    ("400", kv_error(HttpResponseError, 400, "BadParameter"), ErrorCode.INVALID_REQUEST,
     "BadParameter"),
    ("403", kv_error(HttpResponseError, 403, "Forbidden", "AccessDenied"),
     ErrorCode.ACCESS_DENIED, "Key Vault Secrets User"),
    ("403 disabled", kv_error(HttpResponseError, 403, "Forbidden", "SecretDisabled"),
     ErrorCode.ACCESS_DENIED, "disabled"),
    ("408", kv_error(HttpResponseError, 408), ErrorCode.UNAVAILABLE, "timed out"),
    ("409", kv_error(ResourceExistsError, 409, "Conflict"), ErrorCode.UNAVAILABLE, "conflict"),
    ("429", kv_error(HttpResponseError, 429, "Throttled", headers={"Retry-After": "7"}),
     ErrorCode.UNAVAILABLE, "retry after 7 s"),
    ("500", kv_error(HttpResponseError, 500), ErrorCode.UNAVAILABLE, "HTTP 500"),
    ("502", kv_error(HttpResponseError, 502), ErrorCode.UNAVAILABLE, "bad gateway"),
    ("503", kv_error(HttpResponseError, 503), ErrorCode.UNAVAILABLE, "unavailable"),
    ("504", kv_error(HttpResponseError, 504), ErrorCode.UNAVAILABLE, "gateway timeout"),
    ("507 unlisted 5xx", kv_error(HttpResponseError, 507), ErrorCode.UNAVAILABLE, "HTTP 507"),
    ("418 unlisted 4xx", kv_error(HttpResponseError, 418), ErrorCode.INVALID_REQUEST, "HTTP 418"),
    ("decode", DecodeError(message=f"bad json {CANARY}"), ErrorCode.UNAVAILABLE, "unreadable"),
    ("connect", ServiceRequestError(f"refused {CANARY}"), ErrorCode.UNAVAILABLE, "reach"),
    ("connect timeout", ServiceRequestTimeoutError("t"), ErrorCode.UNAVAILABLE, "connecting"),
    ("broken", ServiceResponseError("reset"), ErrorCode.UNAVAILABLE, "broke"),
    ("read timeout", ServiceResponseTimeoutError("t"), ErrorCode.UNAVAILABLE, "waiting"),
    ("other azure", AzureError(f"odd {CANARY}"), ErrorCode.INTERNAL, "unexpected"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_mapping(exc: BaseException, code: ErrorCode, words: str) -> None:
    fault = fault_from(exc, "'db-password'")
    assert fault.code is code
    assert fault.message.startswith("'db-password': ")
    assert words in fault.message
    assert CANARY not in fault.message, "messages are never built from the exception's text"


def test_every_rule_is_exercised() -> None:
    used = {id(rule_for(case[1])) for case in CASES} - {id(None)}
    unused = [rule for rule in RULES if id(rule) not in used]
    assert not unused, f"rules without a test case: {unused}"


@pytest.mark.parametrize(
    "exc", [ServiceRequestTimeoutError("t"), ServiceResponseTimeoutError("t")], ids=["c", "r"]
)
def test_timeouts_after_the_deadline_are_timeout(exc: BaseException) -> None:
    fault = fault_from(exc, "'x'", deadline=time.time() - 1)
    assert fault.code is ErrorCode.TIMEOUT
    assert fault_from(exc, "'x'", deadline=time.time() + 60).code is ErrorCode.UNAVAILABLE


def test_challenge_resource_mismatch_is_invalid_request() -> None:
    exc = ValueError("The challenge resource 'vault.azure.net' does not match the requested domain")
    assert fault_from(exc, "'x'").code is ErrorCode.INVALID_REQUEST


def test_foreign_exceptions_pass_through() -> None:
    with pytest.raises(KeyError):
        fault_from(KeyError("k"), "'x'")
    fault = InvalidRequest("mine")
    assert fault_from(fault, "'x'") is fault


def test_translated_context_manager() -> None:
    with pytest.raises(ProviderFault) as caught, translated("'db'"):
        raise kv_error(ResourceNotFoundError, 404, "SecretNotFound")
    assert caught.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(RuntimeError), translated("'db'"):
        raise RuntimeError("not Azure's: the SDK reports it as internal")
