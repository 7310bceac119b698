"""hvac and requests exceptions → wire error codes, at the vault provider's boundary.

One ordered table (:data:`RULES`, first match wins, so subclasses come before their bases) and
one context manager (:func:`translate`) that every back-end call runs under. Messages are built
from the exception's *type*, the HTTP status it stands for and the path being read, never from
``str(exc)``: hvac puts the whole response body into its exception text when Vault answers
without a JSON ``errors`` list, and a body can hold secret data.

Whether a 403 means "this token may not read that path" (``access_denied``) or "this token is
invalid, expired or revoked" (``auth_failed``) cannot be told from the answer — Vault and
OpenBao answer ``permission denied`` for both. The provider settles it with a ``lookup-self``
call (see :mod:`providers.vault.auth`); this table maps a bare 403 to ``access_denied``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import hvac.exceptions as hvac_exc
import requests.exceptions as req_exc

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

log = get_logger("vault")


@dataclass(frozen=True, slots=True)
class Rule:
    """Exceptions of type ``exc`` become ``fault`` with ``cause`` (and ``status``) as text."""

    exc: type[BaseException]
    fault: type[ProviderFault]
    cause: str
    status: int | None = None


#: The mapping, most specific first. Anything not listed escapes to the SDK, which answers
#: ``internal`` with a generic message and logs the type and stack (never the text).
RULES: tuple[Rule, ...] = (
    Rule(hvac_exc.InvalidPath, SecretNotFound, "no such secret, version or mount", 404),
    Rule(hvac_exc.Forbidden, AccessDenied, "permission denied", 403),
    Rule(hvac_exc.Unauthorized, AuthFailed, "authentication refused", 401),
    Rule(hvac_exc.VaultDown, BackendUnavailable, "Vault is sealed or in maintenance", 503),
    Rule(hvac_exc.BadGateway, BackendUnavailable, "bad gateway in front of Vault", 502),
    Rule(hvac_exc.RateLimitExceeded, BackendUnavailable, "rate limited by Vault", 429),
    Rule(hvac_exc.InternalServerError, BackendUnavailable, "Vault reported a server error", 500),
    Rule(hvac_exc.VaultNotInitialized, BackendUnavailable, "Vault is not initialized", 501),
    # A performance standby that has not caught up yet answers 412: retrying later works.
    Rule(hvac_exc.PreconditionFailed, BackendUnavailable, "Vault is not caught up yet", 412),
    Rule(hvac_exc.InvalidRequest, InvalidRequest, "Vault rejected the request as invalid", 400),
    Rule(hvac_exc.UnsupportedOperation, InvalidRequest, "operation not supported by Vault"),
    Rule(hvac_exc.ParamValidationError, InvalidRequest, "invalid parameters for Vault"),
    Rule(hvac_exc.UnexpectedError, InternalFault, "unexpected answer from Vault"),
    Rule(hvac_exc.VaultError, InternalFault, "unexpected error from Vault"),
    # requests: SSLError and ConnectTimeout subclass ConnectionError, so they come first.
    Rule(req_exc.SSLError, BackendUnavailable, "TLS with Vault failed (check ca_file)"),
    Rule(req_exc.ConnectTimeout, BackendUnavailable, "timed out connecting to Vault"),
    Rule(req_exc.ProxyError, BackendUnavailable, "the HTTP proxy failed"),
    Rule(req_exc.ConnectionError, BackendUnavailable, "cannot connect to Vault"),
    Rule(req_exc.Timeout, BackendUnavailable, "Vault did not answer in time"),
    Rule(req_exc.InvalidURL, InvalidRequest, "the address setting is not a valid URL"),
    Rule(req_exc.MissingSchema, InvalidRequest, "the address setting needs http:// or https://"),
    Rule(req_exc.InvalidSchema, InvalidRequest, "the address setting needs http:// or https://"),
    Rule(req_exc.RequestException, BackendUnavailable, "HTTP error talking to Vault"),
)


def rule_for(exc: BaseException) -> Rule | None:
    """The first rule matching ``exc``, or None for an exception this module does not know."""
    for rule in RULES:
        if isinstance(exc, rule.exc):
            return rule
    return None


def fault_for(exc: BaseException, what: str) -> ProviderFault | None:
    """The fault to raise for ``exc`` while doing ``what`` (e.g. ``'secret/app/db'``)."""
    rule = rule_for(exc)
    if rule is None:
        return None
    status = f" (HTTP {rule.status})" if rule.status is not None else ""
    return rule.fault(f"{what}: {rule.cause}{status}")


def translate(what: str) -> AbstractContextManager[None]:
    """Run a back-end call, turning a known hvac/requests exception into a ProviderFault."""
    return translating(what, fault_for, log)
