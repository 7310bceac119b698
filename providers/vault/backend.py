"""One configured connection to Vault: the hvac client, its token keeper and the KV mount.

Every back-end call goes through :meth:`Backend.call`: the error mapping of
:mod:`providers.vault.errors`, a renewal check, and — after a 403 — the token check of
:mod:`providers.vault.auth`, retrying once when a fresh token could be obtained. The provider
imports this module when it is first configured: hvac (with requests) takes about 0.1 s to
import, and the handshake should not wait for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import hvac

from providers.sdk import AccessDenied, get_logger
from providers.vault.auth import VaultAuth
from providers.vault.errors import translate
from providers.vault.kv import KV, MAX_CALL_TIMEOUT, KVSecret
from providers.vault.settings import VaultSettings

log = get_logger("vault")

T = TypeVar("T")


class Backend:
    """Everything one ``configure`` built; replaced whole on reconfiguration."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self.client = hvac.Client(
            url=settings.address,
            verify=settings.verify,
            cert=settings.cert,
            timeout=MAX_CALL_TIMEOUT,
            namespace=settings.namespace,
        )
        self.auth = VaultAuth(self.client, settings.auth)
        secret = settings.fingerprint_secret
        self.kv = KV(
            self.client, settings.mount, settings.kv_version, secret.encode() if secret else None
        )

    @classmethod
    def connect(cls, settings: VaultSettings) -> Backend:
        """A backend that has logged in (raises ``auth_failed``/``unavailable`` otherwise)."""
        backend = cls(settings)
        try:
            backend.auth.login()
        except BaseException:
            backend.client.adapter.close()
            raise
        return backend

    def start(self) -> None:
        self.auth.start()

    def stop_renewal(self) -> None:
        """Stop renewing; requests in flight on this session may still finish."""
        self.auth.stop()

    def close(self) -> None:
        self.auth.stop()
        try:
            self.client.adapter.close()
        except Exception as exc:  # closing sockets must never fail a shutdown
            log.debug("closing the HTTP session failed: %s", type(exc).__name__)

    # -- calls ----------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the error mapping; on a 403 find out whether the token died, and
        if a new one could be obtained, retry once."""
        try:
            self.auth.refresh_if_due()
        except Exception as exc:  # the read itself will report the real state
            log.debug("token refresh before a read failed: %s", type(exc).__name__)
        generation = self.auth.generation
        try:
            with translate(what):
                return fn()
        except AccessDenied:
            if not self.auth.recover(generation):
                raise
        with translate(what):
            return fn()

    def read(self, path: str, pinned: str | None) -> KVSecret:
        return self.call(self.kv.where(path), lambda: self.kv.read(path, pinned))

    def version(self, path: str, pinned: str | None) -> str:
        return self.call(self.kv.where(path), lambda: self.kv.version(path, pinned))

    def names(self, prefix: str | None) -> list[str]:
        return self.call(f"list {self.kv.where(prefix or '')}", lambda: self.kv.names(prefix))
