"""The Key Vault calls the azure provider makes, over the real ``SecretClient``.

Imported by ``configure`` only (azure-keyvault-secrets + azure-identity cost ~0.25 s to import;
the handshake must not wait for them). Every call is bounded by the request's deadline: the
time left becomes azure-core's per-operation ``timeout`` (retries included) and ``read_timeout``.
Retries stay short: connection errors are retried ``retries`` times with a 0.2 s backoff;
throttling (429) and 5xx answers are not retried here, since the kernel already retries
``unavailable`` with its own backoff and breaker, and stacked retries would outlive deadlines.

Change detection (``versions``) and what it costs — SecretClient has no call that returns a
secret's current version id without its value:

- ``properties`` (default): ``list_properties_of_secret_versions`` — ``GET
  /secrets/{name}/versions`` — returns every version's id, ``created`` time and ``enabled`` flag,
  no values. The current version is the one created last. Costs one request per 25 versions,
  and the ``list`` permission (the "Key Vault Secrets User" role has it; an access policy needs
  ``list``). Key Vault's ``created`` has one-second resolution: when two versions share the
  newest second the order is unknown, and that secret falls back to a read.
- ``value``: ``get_secret`` — one request whatever the history, only the ``get`` permission,
  but the value crosses the wire on every poll (and is dropped at once).

A listing refused with 403 switches that secret to ``value`` (logged once), so an identity with
``get`` but not ``list`` still works.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.keyvault.secrets import SecretClient, SecretProperties
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from providers.azure.credentials import make_credential, token_scope
from providers.azure.errors import disabled, status_of, translated
from providers.azure.settings import AzureSettings, ChangeDetection
from providers.sdk import (
    AccessDenied,
    DeadlineExceeded,
    InternalFault,
    InvalidRequest,
    ProviderFault,
    SecretNotFound,
    get_logger,
)

log = get_logger("azure")

#: Seconds a call may take when it runs outside a request (no deadline).
DEFAULT_CALL_TIMEOUT = 30.0
#: Backoff between connection retries, and its cap.
RETRY_BACKOFF = 0.2
RETRY_BACKOFF_MAX = 2
#: Connections kept beyond ``concurrency``: a batch of one secret runs on the SDK's worker
#: thread itself (Provider.max_workers of them), larger batches share the ``concurrency`` pool.
EXTRA_CONNECTIONS = 8


def _transport(options: Mapping[str, Any], pool_size: int) -> RequestsTransport:
    """azure-core's requests transport with a connection pool as large as the calls that can
    run at once (requests keeps 10 per host, and drops the rest with a warning)."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_maxsize=pool_size,
        # azure-core retries in its own policy; urllib3 must not retry underneath it.
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    for scheme in ("https://", "http://"):
        session.mount(scheme, adapter)
    tls = {k: v for k, v in options.items() if k in ("connection_verify", "connection_timeout")}
    return RequestsTransport(session=session, session_owner=True, **tls)


@dataclass(frozen=True, slots=True)
class Secret:
    """A value read from the vault (never in ``repr``) and its version id."""

    value: str = field(repr=False)
    version: str


def transport_options(settings: AzureSettings) -> dict[str, Any]:
    """azure-core pipeline options shared by the vault client and the credential."""
    options: dict[str, Any] = {
        "connection_timeout": settings.connect_timeout,
        "retry_total": settings.retries,
        "retry_connect": settings.retries,
        "retry_read": settings.retries,
        "retry_status": 0,
        "retry_backoff_factor": RETRY_BACKOFF,
        "retry_backoff_max": RETRY_BACKOFF_MAX,
    }
    if settings.ca_file is not None:
        if not os.path.isfile(settings.ca_file) or not os.access(settings.ca_file, os.R_OK):
            raise InvalidRequest(
                f"setting 'ca_file': {settings.ca_file!r:.200} is not a readable file"
            )
        options["connection_verify"] = settings.ca_file
    return options


def call_options(deadline: float | None, connect_timeout: float) -> dict[str, Any]:
    """Per-operation options bounding one SDK call (retries included) by the deadline."""
    left = DEFAULT_CALL_TIMEOUT if deadline is None else deadline - time.time()
    if left <= 0:
        raise DeadlineExceeded("the request's deadline passed before Key Vault was asked")
    return {"timeout": left, "connection_timeout": min(connect_timeout, left), "read_timeout": left}


def newest(items: Sequence[SecretProperties]) -> SecretProperties | None:
    """The version Key Vault serves as current (the one created last), or None when that is
    ambiguous: two versions created in the same second, or a version without a date."""
    if not items or any(item.created_on is None or not item.version for item in items):
        return None
    latest = max(item.created_on for item in items if item.created_on is not None)
    top = [item for item in items if item.created_on == latest]
    return top[0] if len(top) == 1 else None


class VaultClient:
    """One vault, one credential, one ``SecretClient``; safe to share between threads."""

    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        options = transport_options(settings)
        self.credential = make_credential(settings, options)
        extra: dict[str, Any] = {}
        if settings.api_version is not None:
            extra["api_version"] = settings.api_version
        self.client = SecretClient(
            settings.vault_url,
            self.credential,
            verify_challenge_resource=settings.verify_challenge_resource,
            transport=_transport(options, pool_size=settings.concurrency + EXTRA_CONNECTIONS),
            **options,
            **extra,
        )
        self._lock = threading.Lock()
        #: Secrets whose version listing was refused (403): they are read instead.
        self._value_only: set[str] = set()

    def close(self) -> None:
        self.client.close()
        close = getattr(self.credential, "close", None)
        if callable(close):
            close()

    def _options(self, deadline: float | None) -> dict[str, Any]:
        return call_options(deadline, self.settings.connect_timeout)

    # -- calls ------------------------------------------------------------------------------------

    def authenticate(self, deadline: float | None) -> None:
        """Get a token now, so bad credentials fail ``configure`` as ``auth_failed``."""
        scope = token_scope(self.settings.vault_url)
        subject = f"credential {self.settings.credential.value!r}"
        outcome: list[BaseException | None] = []
        done = threading.Event()

        def fetch() -> None:
            try:
                with translated(subject, deadline):
                    # As the SDK's challenge policy asks (CAE tokens are cached apart), so the
                    # first vault calls reuse this token instead of all fetching their own.
                    get_info = getattr(self.credential, "get_token_info", None)
                    if callable(get_info):
                        get_info(scope, options={"enable_cae": True})
                    else:
                        self.credential.get_token(scope, enable_cae=True)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)
            finally:
                done.set()

        # The credential has no per-call timeout (DefaultAzureCredential may probe IMDS and run
        # the Azure CLI): wait for it at most until the deadline.
        threading.Thread(target=fetch, name="dso-azure-auth", daemon=True).start()
        left = self._options(deadline)["timeout"]
        if not done.wait(left):
            raise DeadlineExceeded(f"{subject}: getting a token took longer than the deadline")
        if outcome[0] is not None:
            raise outcome[0]

    def read(self, name: str, version: str | None, subject: str, deadline: float | None) -> Secret:
        """The value and version id of ``name`` (current, or the pinned ``version``)."""
        with translated(subject, deadline):
            secret = self.client.get_secret(name, version, **self._options(deadline))
        found = secret.properties.version
        if not found:
            raise InternalFault(f"{subject}: Key Vault answered without a version id")
        return Secret(secret.value or "", found)

    def versions(
        self, name: str, pins: Iterable[str | None], subject: str, deadline: float | None
    ) -> dict[str | None, str | ProviderFault]:
        """The version id for each pin of ``name`` (None: the current version), or the fault
        reporting why there is none, without reading values when the listing allows it."""
        pins = list(dict.fromkeys(pins))
        listing = None
        with self._lock:
            value_only = name in self._value_only
        if self.settings.change_detection is ChangeDetection.PROPERTIES and not value_only:
            listing = self._listing(name, subject, deadline)
        answers: dict[str | None, str | ProviderFault] = {}
        for pin in pins:
            try:
                if listing is None:
                    answers[pin] = self.read(name, pin, subject, deadline).version
                else:
                    answers[pin] = self._pick(listing, name, pin, subject, deadline)
            except ProviderFault as fault:
                answers[pin] = fault
        return answers

    def _listing(
        self, name: str, subject: str, deadline: float | None
    ) -> list[SecretProperties] | None:
        with translated(subject, deadline):
            try:
                items = list(
                    self.client.list_properties_of_secret_versions(name, **self._options(deadline))
                )
            except HttpResponseError as exc:
                if status_of(exc) != 403 or disabled(exc):
                    raise
                with self._lock:
                    self._value_only.add(name)
                log.warning(
                    "listing versions was refused (no list permission?): reading the value"
                    " to detect changes of this secret from now on",
                    extra={"secret": name},
                )
                return None
        if not items:
            raise SecretNotFound(f"{subject}: no such secret in the vault")
        return items

    def _pick(
        self,
        items: Sequence[SecretProperties],
        name: str,
        pin: str | None,
        subject: str,
        deadline: float | None,
    ) -> str:
        if pin is not None:
            match = next((item for item in items if (item.version or "").lower() == pin), None)
            if match is None:
                raise SecretNotFound(f"{subject}: no version {pin!r} in the vault")
        else:
            match = newest(items)
            if match is None:  # versions created in the same second: ask Key Vault
                return self.read(name, None, subject, deadline).version
        if not match.enabled:
            raise AccessDenied(f"{subject}: the version is disabled in Key Vault")
        assert match.version is not None
        return match.version

    def names(self, prefix: str, deadline: float | None) -> list[str]:
        """Names of the vault's secrets starting with ``prefix`` (compared lower-case)."""
        with translated("the vault's secret list", deadline):
            items = list(self.client.list_properties_of_secrets(**self._options(deadline)))
        found = {item.name for item in items if item.name and item.name.lower().startswith(prefix)}
        return sorted(found, key=str.lower)


def describe(settings: AzureSettings) -> Mapping[str, str]:
    """What ``configure`` logs: where and how, never a credential."""
    return {
        "vault": settings.vault_url,
        "credential": settings.credential.value,
        "change_detection": settings.change_detection.value,
    }
