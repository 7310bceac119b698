"""botocore exceptions → wire error codes, at the aws provider's boundary.

Two ordered tables: :data:`CODE_RULES` maps the error code of a ``ClientError`` (an answer from
AWS), :data:`CLASS_RULES` maps botocore's own exceptions (no answer: credentials, connection,
configuration). :func:`translate` is the one context manager every AWS call runs under.

Messages are built from the error code, the HTTP status, the operation and the secret id —
never from ``str(exc)``: a ``ParamValidationError`` can quote a parameter, and a service
message is not ours to forward. Two facts shape the tables:

- An STS ``AssumeRole`` failure surfaces inside a Secrets Manager call (credentials refresh
  lazily); whatever its code, it means the provider cannot get credentials: ``auth_failed``.
- Some endpoints (moto, some proxies) answer a JSON-protocol error with an XML body, which
  botocore reports with the HTTP status as the code; the real code is then read from the
  body's ``<Code>`` element. Failing that, the HTTP status decides.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from types import MappingProxyType
from typing import Any

import botocore.exceptions as bce

from providers.sdk import (
    AccessDenied,
    AuthFailed,
    BackendUnavailable,
    InternalFault,
    InvalidRequest,
    ProviderFault,
    SecretNotFound,
    get_logger,
)
from providers.sdk.errors import translating

log = get_logger("aws")

Fault = type[ProviderFault]

#: AWS error codes (``ClientError.response["Error"]["Code"]``) → fault and cause.
CODE_RULES: MappingProxyType[str, tuple[Fault, str]] = MappingProxyType(
    {
        "ResourceNotFoundException": (SecretNotFound, "no such secret or version"),
        "AccessDeniedException": (AccessDenied, "access denied by IAM"),
        "AccessDenied": (AccessDenied, "access denied by IAM"),
        "DecryptionFailure": (AccessDenied, "the secret's KMS key cannot be used to decrypt it"),
        "KMSAccessDeniedException": (AccessDenied, "access to the secret's KMS key denied"),
        "UnrecognizedClientException": (AuthFailed, "the access key id is not recognised"),
        "InvalidClientTokenId": (AuthFailed, "the access key id is not recognised"),
        "InvalidSignatureException": (AuthFailed, "bad signature: check the secret access key"),
        "SignatureDoesNotMatch": (AuthFailed, "bad signature: check the secret access key"),
        "IncompleteSignature": (AuthFailed, "the request signature is incomplete"),
        "MissingAuthenticationToken": (AuthFailed, "the request carries no credentials"),
        "ExpiredTokenException": (AuthFailed, "the session token has expired"),
        "ExpiredToken": (AuthFailed, "the session token has expired"),
        "InvalidToken": (AuthFailed, "the session token is invalid"),
        "RequestExpired": (AuthFailed, "the request expired: check this host's clock"),
        "ThrottlingException": (BackendUnavailable, "throttled by AWS"),
        "Throttling": (BackendUnavailable, "throttled by AWS"),
        "TooManyRequestsException": (BackendUnavailable, "throttled by AWS"),
        "RequestLimitExceeded": (BackendUnavailable, "throttled by AWS"),
        "InternalServiceError": (BackendUnavailable, "AWS reported a service error"),
        "InternalFailure": (BackendUnavailable, "AWS reported a service error"),
        "ServiceUnavailable": (BackendUnavailable, "the service is unavailable"),
        "ServiceUnavailableException": (BackendUnavailable, "the service is unavailable"),
        "RequestTimeout": (BackendUnavailable, "AWS timed out the request"),
        "RequestTimeoutException": (BackendUnavailable, "AWS timed out the request"),
        "InvalidParameterException": (InvalidRequest, "invalid parameter"),
        "ValidationException": (InvalidRequest, "invalid request"),
        "InvalidRequestException": (InvalidRequest, "invalid request for this secret"),
    }
)

#: botocore exceptions raised without an answer from AWS; first match wins.
CLASS_RULES: tuple[tuple[type[BaseException], Fault, str], ...] = (
    (bce.NoCredentialsError, AuthFailed, "no AWS credentials found"),
    (bce.PartialCredentialsError, AuthFailed, "incomplete AWS credentials"),
    (bce.CredentialRetrievalError, AuthFailed, "cannot retrieve AWS credentials"),
    (bce.TokenRetrievalError, AuthFailed, "cannot retrieve the SSO token"),
    (bce.SSOError, AuthFailed, "the SSO session is invalid or expired"),
    (bce.NoAuthTokenError, AuthFailed, "no auth token found"),
    (bce.RefreshWithMFAUnsupportedError, AuthFailed, "the role needs MFA, which dso cannot give"),
    (bce.ProfileNotFound, InvalidRequest, "the AWS profile does not exist"),
    (bce.ConfigNotFound, InvalidRequest, "the AWS config file does not exist"),
    (bce.NoRegionError, InvalidRequest, "no region: set 'region' (or AWS_REGION)"),
    (bce.InvalidRegionError, InvalidRequest, "invalid region"),
    (bce.ParamValidationError, InvalidRequest, "invalid parameters (secret id or version)"),
    (bce.InvalidConfigError, InvalidRequest, "invalid AWS client configuration"),
    (bce.UnknownEndpointError, InvalidRequest, "no endpoint for this region"),
    (bce.EndpointResolutionError, InvalidRequest, "cannot resolve the endpoint"),
    (bce.SSLError, BackendUnavailable, "TLS with the endpoint failed (check ca_file)"),
    (bce.ConnectTimeoutError, BackendUnavailable, "timed out connecting to the endpoint"),
    (bce.ProxyConnectionError, BackendUnavailable, "cannot connect through the proxy"),
    (bce.EndpointConnectionError, BackendUnavailable, "cannot connect to the endpoint"),
    (bce.ConnectionError, BackendUnavailable, "connection to the endpoint failed"),
    (bce.ReadTimeoutError, BackendUnavailable, "the endpoint did not answer in time"),
    (bce.HTTPClientError, BackendUnavailable, "HTTP error talking to the endpoint"),
    (bce.CapacityNotAvailableError, BackendUnavailable, "retries exhausted while throttled"),
    (bce.BotoCoreError, InternalFault, "unexpected botocore error"),
)

_XML_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


def client_error_code(exc: bce.ClientError) -> tuple[str, int | None]:
    """The error code and HTTP status of an AWS answer (see the module doc for XML bodies)."""
    response: Any = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if not isinstance(status, int):
        status = int(code) if code.isdigit() else None
    if not code or code.isdigit():
        match = _XML_CODE.search(str(error.get("Message") or ""))
        code = match.group(1) if match else ""
    return code, status


def _by_status(status: int | None) -> tuple[Fault, str]:
    if status == 400:
        return InvalidRequest, "AWS rejected the request"
    if status == 401:
        return AuthFailed, "AWS refused the credentials"
    if status == 403:
        return AccessDenied, "access denied"
    if status == 404:
        return SecretNotFound, "not found"
    if status == 429:
        return BackendUnavailable, "throttled by AWS"
    if status is not None and status >= 500:
        return BackendUnavailable, "AWS reported a server error"
    return InternalFault, "unexpected answer from AWS"


def fault_for(exc: BaseException, what: str) -> ProviderFault | None:
    """The fault to raise for ``exc`` while reading ``what``, or None if it is not botocore's."""
    if isinstance(exc, bce.ClientError):
        code, status = client_error_code(exc)
        operation = str(getattr(exc, "operation_name", "") or "")
        label = code or (f"HTTP {status}" if status else "no code")
        if operation == "AssumeRole":
            return AuthFailed(f"{what}: cannot assume the configured role ({label})")
        fault, cause = CODE_RULES.get(code) or _by_status(status)
        if code == "InvalidRequestException" and status in (None, 400):
            # GetSecretValue on a secret scheduled for deletion: for a reader it is gone.
            message = str((exc.response.get("Error") or {}).get("Message") or "").lower()
            if "marked" in message and "delet" in message:  # "marked for deletion"/"deleted"
                fault, cause = SecretNotFound, "the secret is scheduled for deletion"
        return fault(f"{what}: {cause} ({label}{f', HTTP {status}' if status else ''})")
    for cls, fault_cls, cause in CLASS_RULES:
        if isinstance(exc, cls):
            return fault_cls(f"{what}: {cause} ({type(exc).__name__})")
    return None


def translate(what: str) -> AbstractContextManager[None]:
    """Run an AWS call, turning a botocore exception into a ProviderFault."""
    return translating(what, fault_for, log)
