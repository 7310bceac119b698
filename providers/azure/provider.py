"""Azure Key Vault secrets served as a dso provider: get, versions, list.

A reference's path is mapped to a Key Vault secret name (:mod:`providers.azure.names`), its
``version`` pins a Key Vault version id, and its ``field`` selects a key of a JSON value
(:mod:`providers.sdk.fields`). A batch asks Key Vault once per distinct secret (several fields
of one JSON secret cost one read), running up to ``concurrency`` calls at a time. Settings:
:mod:`providers.azure.settings`; user documentation: docs/providers/azure.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, TypeVar

from kernel.protocol import CORE_VERSION
from providers.azure.names import check_version, name_prefix, vault_name
from providers.azure.settings import AzureSettings
from providers.sdk import (
    BackendUnavailable,
    DeadlineExceeded,
    GetResult,
    Provider,
    ProviderFault,
    SecretData,
    SecretRef,
    VersionsResult,
    WireError,
    current_deadline,
    get_logger,
)
from providers.sdk.errors import wire_error_for
from providers.sdk.fields import parse_json, select_field

if TYPE_CHECKING:
    from providers.azure.vault_client import VaultClient

log = get_logger("azure")

#: Seconds a replaced client (configure sent again) stays open for the calls still using it.
RETIRE_AFTER = 60.0

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def subject_of(path: str, name: str, version: str | None = None) -> str:
    """How messages name a reference: the path, and the Key Vault name when it differs."""
    text = repr(path) if path == name else f"{path!r} (Key Vault name {name!r})"
    return text if version is None else f"{text} version {version!r}"


class AzureProvider(Provider):
    """Serves the secrets of one Azure Key Vault."""

    name = "azure"
    version = CORE_VERSION

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: VaultClient | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        AzureSettings.parse(settings)

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Validate the settings, build the client and get a token now, so bad credentials
        fail here as ``auth_failed``. A reload swaps the client only once the new one works."""
        parsed = AzureSettings.parse(settings)
        from providers.azure.vault_client import VaultClient, describe

        client = VaultClient(parsed)
        try:
            client.authenticate(current_deadline())
        except BaseException:
            client.close()
            raise
        with self._lock:
            old_client, self._client = self._client, client
            old_pool = self._pool
            self._pool = ThreadPoolExecutor(parsed.concurrency, thread_name_prefix="dso-azure")
        if old_client is not None:
            # Calls still running on the old client finish before it is closed.
            retire = threading.Timer(RETIRE_AFTER, old_client.close)
            retire.daemon = True
            retire.start()
        if old_pool is not None:
            old_pool.shutdown(wait=False)
        log.info("configured", extra=dict(describe(parsed)))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if client is not None:
            client.close()

    def _state(self) -> tuple[VaultClient, ThreadPoolExecutor]:
        with self._lock:
            if self._client is None or self._pool is None:
                raise BackendUnavailable("the azure provider is not configured")
            return self._client, self._pool

    # -- methods --------------------------------------------------------------------------------

    def get(self, refs: Sequence[SecretRef]) -> GetResult:
        client, pool = self._state()
        deadline = current_deadline()
        errors: dict[str, WireError] = {}
        wanted: dict[tuple[str, str | None], list[SecretRef]] = {}
        for ref in refs:
            try:
                key = (vault_name(ref.path), check_version(ref.path, ref.version))
            except ProviderFault as fault:
                errors[ref.id] = fault.to_wire()
                continue
            wanted.setdefault(key, []).append(ref)

        def read(key: tuple[str, str | None]) -> Any:
            name, version = key
            subject = subject_of(wanted[key][0].path, name, version)
            return client.read(name, version, subject, deadline)

        outcomes = run_all(pool, read, list(wanted), deadline)
        values: dict[str, SecretData] = {}
        for key, group in wanted.items():
            outcome = outcomes[key]
            for ref in group:
                try:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    data = (
                        outcome.value.encode("utf-8")
                        if ref.field is None
                        else select_field(
                            parse_json(outcome.value, repr(ref.path), ref.field),
                            ref.field,
                            repr(ref.path),
                        )
                    )
                    values[ref.id] = SecretData(data, outcome.version)
                except Exception as exc:
                    errors[ref.id] = wire_error_for(exc, f"get {ref.path!r}")
        return GetResult(values, errors)

    def versions(self, refs: Sequence[SecretRef]) -> VersionsResult:
        client, pool = self._state()
        deadline = current_deadline()
        errors: dict[str, WireError] = {}
        by_name: dict[str, list[tuple[SecretRef, str | None]]] = {}
        for ref in refs:
            try:
                name = vault_name(ref.path)
                pin = check_version(ref.path, ref.version)
            except ProviderFault as fault:
                errors[ref.id] = fault.to_wire()
                continue
            by_name.setdefault(name, []).append((ref, pin))

        def lookup(name: str) -> Any:
            group = by_name[name]
            subject = subject_of(group[0][0].path, name)
            return client.versions(name, [pin for _, pin in group], subject, deadline)

        outcomes = run_all(pool, lookup, list(by_name), deadline)
        versions: dict[str, str] = {}
        for name, group in by_name.items():
            outcome = outcomes[name]
            for ref, pin in group:
                try:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    answer = outcome[pin]
                    if isinstance(answer, ProviderFault):
                        raise answer
                    versions[ref.id] = answer
                except Exception as exc:
                    errors[ref.id] = wire_error_for(exc, f"versions {ref.path!r}")
        return VersionsResult(versions, errors)

    def list_names(self, prefix: str | None) -> list[str]:
        client, _ = self._state()
        return client.names(name_prefix(prefix), current_deadline())

    def ping(self) -> None:
        """Liveness only: never contacts Key Vault (protocol §6.2)."""


def run_all(
    pool: ThreadPoolExecutor,
    call: Callable[[_K], _V],
    keys: Sequence[_K],
    deadline: float | None,
) -> dict[_K, _V | BaseException]:
    """``call(key)`` for every key, up to the pool's size at a time; each outcome is the result
    or the exception raised. Keys still running at the deadline get :class:`DeadlineExceeded`."""
    outcomes: dict[_K, _V | BaseException] = {}
    futures: dict[_K, Future[_V]] = {}
    for key in keys:
        if len(keys) > 1:
            try:
                futures[key] = pool.submit(call, key)
                continue
            except RuntimeError:  # shut down: configure replaced the pool meanwhile
                pass
        try:  # one key (the common case: no thread hop), or no pool any more
            outcomes[key] = call(key)
        except Exception as exc:
            outcomes[key] = exc
    for key, future in futures.items():
        left = None if deadline is None else max(0.0, deadline - time.time())
        try:
            outcomes[key] = future.result(timeout=left)
        except FutureTimeout:
            future.cancel()
            outcomes[key] = DeadlineExceeded(
                "the request's deadline passed before Key Vault answered"
            )
        except Exception as exc:
            outcomes[key] = exc
    return outcomes
