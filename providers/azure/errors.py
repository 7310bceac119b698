"""azure-core / azure-identity exceptions → provider faults (wire codes), at the boundary.

The tree this maps (``azure.core.exceptions``), first matching row of :data:`RULES` wins::

    AzureError
    ├── ServiceRequestError            request not sent: DNS, refused, TLS    → unavailable
    │   └── ServiceRequestTimeoutError   connect timeout                      → timeout*
    ├── ServiceResponseError           connection broke before an answer      → unavailable
    │   └── ServiceResponseTimeoutError  read timeout                         → timeout*
    └── HttpResponseError              an HTTP error answer, by status:
        ├── ClientAuthenticationError    401, or a credential got no token    → auth_failed
        │   └── CredentialUnavailableError  (azure.identity) source missing   → auth_failed
        ├── ResourceNotFoundError        404                                  → not_found
        ├── DecodeError                  unreadable answer                    → unavailable
        └── (others by status)           400 → invalid_request, 403 → access_denied,
                                         408/409/429/5xx → unavailable

    * timeout when the request's deadline has passed, else unavailable (a slow connect).

Messages are built from the status, Key Vault's error code and the Retry-After header, never
from ``str(exc)``: an exception's text can carry a response body. The only text read out of one
is an ``AADSTS<digits>`` code, matched by a strict pattern.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ODataV4Format,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.identity import CredentialUnavailableError

from providers.sdk import (
    DeadlineExceeded,
    ErrorCode,
    InvalidRequest,
    ProviderFault,
    fault_for,
)

_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_AADSTS = re.compile(r"AADSTS\d{4,9}")
_RETRY_AFTER = re.compile(r"\d{1,6}")

ROLE_HINT = "grant it the 'Key Vault Secrets User' role, or an access policy with get and list"


@dataclass(frozen=True, slots=True)
class Rule:
    """Exceptions of type ``exception`` (and HTTP ``status``, when given) become ``code``."""

    exception: type[BaseException]
    #: One status, a range of them, or None for any (or no) status.
    status: int | range | None
    code: ErrorCode
    text: str


#: The mapping, most specific first; unit-tested row by row.
RULES: tuple[Rule, ...] = (
    Rule(
        CredentialUnavailableError,
        None,
        ErrorCode.AUTH_FAILED,
        "the credential is not available here (no managed identity endpoint, no Azure CLI"
        " login, or missing AZURE_* variables: list them in the provider's env)",
    ),
    Rule(ClientAuthenticationError, 401, ErrorCode.AUTH_FAILED, "Key Vault refused the token"),
    Rule(ClientAuthenticationError, None, ErrorCode.AUTH_FAILED, "could not get a token"),
    Rule(ResourceNotFoundError, None, ErrorCode.NOT_FOUND, "no such secret in the vault"),
    Rule(DecodeError, None, ErrorCode.UNAVAILABLE, "unreadable answer from Key Vault"),
    Rule(HttpResponseError, 400, ErrorCode.INVALID_REQUEST, "Key Vault rejected the request"),
    Rule(HttpResponseError, 401, ErrorCode.AUTH_FAILED, "Key Vault refused the token"),
    Rule(
        HttpResponseError,
        403,
        ErrorCode.ACCESS_DENIED,
        f"the provider's identity may not read it ({ROLE_HINT})",
    ),
    Rule(HttpResponseError, 404, ErrorCode.NOT_FOUND, "no such secret in the vault"),
    Rule(HttpResponseError, 408, ErrorCode.UNAVAILABLE, "Key Vault timed out"),
    Rule(
        HttpResponseError,
        409,
        ErrorCode.UNAVAILABLE,
        "conflict: the secret is being deleted or recovered",
    ),
    Rule(HttpResponseError, 429, ErrorCode.UNAVAILABLE, "throttled by Key Vault"),
    Rule(HttpResponseError, 500, ErrorCode.UNAVAILABLE, "Key Vault failed"),
    Rule(HttpResponseError, 502, ErrorCode.UNAVAILABLE, "bad gateway in front of Key Vault"),
    Rule(HttpResponseError, 503, ErrorCode.UNAVAILABLE, "Key Vault is unavailable"),
    Rule(HttpResponseError, 504, ErrorCode.UNAVAILABLE, "gateway timeout in front of Key Vault"),
    Rule(HttpResponseError, range(500, 600), ErrorCode.UNAVAILABLE, "Key Vault failed"),
    Rule(HttpResponseError, None, ErrorCode.INVALID_REQUEST, "unexpected answer from Key Vault"),
    Rule(
        ServiceRequestTimeoutError, None, ErrorCode.UNAVAILABLE, "timed out connecting to the vault"
    ),
    Rule(
        ServiceResponseTimeoutError, None, ErrorCode.UNAVAILABLE, "timed out waiting for an answer"
    ),
    Rule(ServiceRequestError, None, ErrorCode.UNAVAILABLE, "could not reach the vault"),
    Rule(
        ServiceResponseError, None, ErrorCode.UNAVAILABLE, "the connection broke before an answer"
    ),
    Rule(AzureError, None, ErrorCode.INTERNAL, "unexpected Azure SDK failure"),
)

_TIMEOUTS = (ServiceRequestTimeoutError, ServiceResponseTimeoutError)


def rule_for(exc: BaseException) -> Rule | None:
    """The first rule matching ``exc``, or None for an exception that is not Azure's."""
    status = status_of(exc)
    for rule in RULES:
        if isinstance(exc, rule.exception) and _matches(rule.status, status):
            return rule
    return None


def _matches(wanted: int | range | None, status: int | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, range):
        return status in wanted
    return status == wanted


def fault_from(exc: BaseException, subject: str, deadline: float | None = None) -> ProviderFault:
    """The fault to report for ``exc`` raised while reading ``subject`` (a quoted name)."""
    if isinstance(exc, ProviderFault):
        return exc
    if isinstance(exc, _TIMEOUTS) and deadline is not None and time.time() >= deadline - 0.01:
        return DeadlineExceeded(f"{subject}: the request's deadline passed while Key Vault worked")
    if isinstance(exc, ValueError) and "challenge" in str(exc).lower():
        # Raised by the SDK's own check of the 401 challenge (no server text in it).
        return InvalidRequest(
            f"{subject}: the vault's authentication challenge names another domain than"
            " vault_url (verify_challenge_resource: false is only for private test doubles)"
        )
    if disabled(exc):
        return fault_for(
            ErrorCode.ACCESS_DENIED, f"{subject}: the version is disabled{details(exc)}"
        )
    rule = rule_for(exc)
    if rule is None:
        raise exc  # not Azure's: the SDK reports it as internal and logs the stack
    return fault_for(rule.code, f"{subject}: {rule.text}{details(exc)}")


@contextmanager
def translated(subject: str, deadline: float | None = None) -> Iterator[None]:
    """Run a Key Vault call, turning Azure exceptions into provider faults."""
    try:
        yield
    except (AzureError, ValueError) as exc:
        raise fault_from(exc, subject, deadline) from exc


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def details(exc: BaseException) -> str:
    """`` (HTTP 403, Forbidden/SecretDisabled, retry after 5 s)`` from safe parts only."""
    parts: list[str] = []
    status = status_of(exc)
    if status is not None:
        parts.append(f"HTTP {status}")
    error = getattr(exc, "error", None)
    if isinstance(error, ODataV4Format):
        codes = [error.code]
        inner = getattr(error, "innererror", None)
        if isinstance(inner, dict):
            codes.append(inner.get("code"))
        named = [c for c in codes if isinstance(c, str) and _CODE.fullmatch(c)]
        if named:
            parts.append("/".join(named))
    if isinstance(exc, ClientAuthenticationError) and status is None:
        found = _AADSTS.search(str(exc.message) if exc.message else "")
        if found:
            parts.append(found.group())
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        retry_after = headers.get("Retry-After")
        if isinstance(retry_after, str) and _RETRY_AFTER.fullmatch(retry_after.strip()):
            parts.append(f"retry after {retry_after.strip()} s")
    return f" ({', '.join(parts)})" if parts else ""


def disabled(exc: BaseException) -> bool:
    """True for Key Vault's 403 answer to reading a disabled version."""
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None)
    return (
        status_of(exc) == 403 and isinstance(inner, dict) and inner.get("code") == "SecretDisabled"
    )
