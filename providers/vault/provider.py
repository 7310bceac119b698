"""The vault provider: secrets from HashiCorp Vault or OpenBao KV mounts, through hvac.

A reference's ``path`` is the secret's path under the configured KV ``mount`` (``app/db``);
without a ``field`` the whole KV data object is delivered as JSON text, with one the field's
value (strings raw, other JSON values as JSON text). ``version`` pins a KV v2 version number.
``versions`` answers from KV v2 metadata without reading values. docs/providers/vault.md is the
user's guide.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from providers.sdk import (
    GetResult,
    Provider,
    SecretData,
    SecretRef,
    VersionsResult,
    WireError,
    get_logger,
)
from providers.sdk.errors import wire_error_for
from providers.sdk.fields import json_text, select_field
from providers.vault.settings import VaultSettings

if TYPE_CHECKING:
    from providers.vault.backend import Backend
    from providers.vault.kv import KV, KVSecret

log = get_logger("vault")

T = TypeVar("T")

#: Release of this provider program.
VERSION = "1.0.0"


class VaultProvider(Provider):
    """Reads KV v1/v2 secrets; keeps its token alive; maps every hvac error to a wire code."""

    name = "vault"
    version = VERSION

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._backend: Backend | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        VaultSettings.parse(settings, environ)

    def configure(self, settings: Mapping[str, Any]) -> None:
        parsed = VaultSettings.parse(settings, self._environ)
        if parsed.tls_skip_verify:
            log.warning(
                "tls_skip_verify is true: the Vault server's certificate is NOT checked;"
                " anyone on the network path can read the secrets and the token"
            )
        # Imported here, not at the top: hvac takes ~0.1 s, and the handshake need not wait.
        from providers.vault.backend import Backend

        backend = Backend.connect(parsed)
        with self._lock:
            old, self._backend = self._backend, backend
        backend.start()
        if old is not None:
            old.stop_renewal()  # requests in flight may still use its session
        log.info(
            "configured",
            extra={
                "mount": parsed.mount,
                "kv_version": parsed.kv_version,
                "auth": parsed.auth.method.value,
            },
        )

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def _current(self) -> Backend:
        backend = self._backend
        if backend is None:  # the SDK refuses requests before configure; be safe anyway
            raise RuntimeError("vault provider used before configure")
        return backend

    # -- methods --------------------------------------------------------------------------------

    def get(self, refs: Sequence[SecretRef]) -> GetResult:
        """Values for a batch; references to the same secret and version share one read."""
        backend = self._current()
        kv = backend.kv
        values: dict[str, SecretData] = {}
        errors: dict[str, WireError] = {}
        for ref, outcome in _batch(kv, refs, backend.read):
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                values[ref.id] = _deliver(outcome, ref, kv.where(kv.relative(ref.path)))
            except Exception as exc:
                errors[ref.id] = wire_error_for(exc, f"get {ref.path!r}")
        return GetResult(values, errors)

    def versions(self, refs: Sequence[SecretRef]) -> VersionsResult:
        """Version ids for a batch: one metadata read per distinct secret, no values."""
        backend = self._current()
        found: dict[str, str] = {}
        errors: dict[str, WireError] = {}
        for ref, outcome in _batch(backend.kv, refs, backend.version):
            if isinstance(outcome, BaseException):
                errors[ref.id] = wire_error_for(outcome, f"versions {ref.path!r}")
            else:
                found[ref.id] = outcome
        return VersionsResult(found, errors)

    def list_names(self, prefix: str | None) -> list[str]:
        return self._current().names(prefix)


def _batch(
    kv: KV, refs: Sequence[SecretRef], fetch: Callable[[str, str | None], T]
) -> list[tuple[SecretRef, T | Exception]]:
    """``fetch(path, version)`` once per distinct secret and version of the batch; each ref
    gets the shared outcome, or the exception that fetching (or its path) raised."""
    done: dict[tuple[str, str | None], T | Exception] = {}
    outcomes: list[tuple[SecretRef, T | Exception]] = []
    for ref in refs:
        try:
            key = (kv.relative(ref.path), ref.version)
        except Exception as exc:
            outcomes.append((ref, exc))
            continue
        if key not in done:
            try:
                done[key] = fetch(*key)
            except Exception as exc:
                done[key] = exc
        outcomes.append((ref, done[key]))
    return outcomes


def _deliver(secret: KVSecret, ref: SecretRef, where: str) -> SecretData:
    if ref.field is None:
        return SecretData(json_text(secret.data), secret.version)
    return SecretData(select_field(secret.data, ref.field, where), secret.version)
