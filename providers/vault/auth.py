"""Getting and keeping a Vault token: login, renewal before expiry, re-login when renewal fails.

:class:`VaultAuth` owns the client's token. ``login()`` obtains one with the configured method
(token, AppRole, Kubernetes, JWT) and records its lease. A background thread renews the token
(``renew-self``) once two thirds of its TTL have passed, the way Vault Agent does; when renewal
fails, or the token has reached its maximum TTL, the provider logs in again (re-reading a
``token_file``, ``secret_id_file`` or ``jwt_file``, which may have been rotated meanwhile).

Vault answers 403 ``permission denied`` both for a token that may not read a path and for a
token that is invalid, expired or revoked. After a 403, :meth:`VaultAuth.recover` asks
``lookup-self``: if the token is dead it logs in again (the caller retries once) or raises
``auth_failed``; if the token is alive the 403 stands as ``access_denied``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions as hvac_exc

from providers.sdk import AccessDenied, AuthFailed, InvalidRequest, get_logger
from providers.sdk.settings import read_credential_file
from providers.vault.errors import translate
from providers.vault.settings import AuthMethod, AuthSettings

log = get_logger("vault")

#: Renew once this fraction of the token's TTL has passed (Vault Agent renews at about 2/3).
RENEW_AT = 2 / 3
#: Shortest pause between two renewal attempts, so a tiny TTL cannot spin the thread.
MIN_WAIT = 0.2
#: Pause after a failed renewal or login before the thread tries again.
RETRY_WAIT = 5.0
#: How often the thread wakes when the token never expires (root or periodic-less tokens).
IDLE_WAIT = 300.0


@dataclass(frozen=True, slots=True)
class Lease:
    """What Vault told us about the current token."""

    ttl: float  # seconds from ``obtained``; 0 means the token never expires
    renewable: bool
    obtained: float  # monotonic clock
    increment: int  # seconds asked for on renewal (the token's creation TTL)

    def due(self) -> float | None:
        """Monotonic time at which to renew or log in again; None when never."""
        if self.ttl <= 0:
            return None
        return self.obtained + self.ttl * RENEW_AT


class VaultAuth:
    """Keeps ``client.token`` valid for the provider's lifetime (see the module doc)."""

    def __init__(
        self,
        client: hvac.Client,
        settings: AuthSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self._clock = clock
        self._lock = threading.RLock()
        self._lease: Lease | None = None
        self._generation = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- state ----------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Increases with every new token; lets a caller see that another thread re-logged in."""
        return self._generation

    @property
    def lease(self) -> Lease | None:
        return self._lease

    @property
    def can_relogin(self) -> bool:
        """True when a fresh token can be obtained without operator action."""
        return self.settings.method is not AuthMethod.TOKEN or self.settings.token_file is not None

    # -- login ----------------------------------------------------------------------------------

    def login(self) -> None:
        """Obtain a token with the configured method; raises ``auth_failed`` when refused."""
        with self._lock:
            method = self.settings.method
            with _refused_is_auth_failed(f"{method.value} login"):
                if method is AuthMethod.TOKEN:
                    self.client.token = self._read_token()
                    data = self.client.auth.token.lookup_self()["data"]
                    ttl = float(data.get("ttl") or 0)
                    lease = Lease(
                        ttl, bool(data.get("renewable")), self._clock(), _creation_ttl(data, ttl)
                    )
                else:
                    auth = self._method_login()["auth"]
                    ttl = float(auth.get("lease_duration") or 0)
                    lease = Lease(ttl, bool(auth.get("renewable")), self._clock(), int(ttl))
            self._lease = lease
            self._generation += 1
            log.info(
                "authenticated",
                extra={"method": method.value, "ttl": lease.ttl, "renewable": lease.renewable},
            )
        self._wake.set()

    def _read_token(self) -> str:
        if self.settings.token is not None:
            return self.settings.token
        assert self.settings.token_file is not None
        return read_credential_file(self.settings.token_file, "setting 'token_file'")

    def _method_login(self) -> dict[str, Any]:
        s = self.settings
        if s.method is AuthMethod.APPROLE:
            secret_id = s.secret_id
            if secret_id is None and s.secret_id_file is not None:
                secret_id = read_credential_file(s.secret_id_file, "setting 'auth.secret_id_file'")
            result = self.client.auth.approle.login(
                role_id=s.role_id, secret_id=secret_id, mount_point=s.mount
            )
        else:
            assert s.jwt_file is not None
            jwt = read_credential_file(s.jwt_file, "setting 'auth.jwt_file'")
            if s.method is AuthMethod.KUBERNETES:
                result = self.client.auth.kubernetes.login(
                    role=s.role, jwt=jwt, mount_point=s.mount
                )
            else:
                result = self.client.auth.jwt.jwt_login(role=s.role, jwt=jwt, path=s.mount)
        if not isinstance(result, dict) or not isinstance(result.get("auth"), dict):
            raise AuthFailed(f"{s.method.value} login: Vault answered without a token")
        return result

    # -- renewal --------------------------------------------------------------------------------

    def seconds_until_due(self) -> float | None:
        lease = self._lease
        due = lease.due() if lease is not None else None
        return None if due is None else due - self._clock()

    def refresh_if_due(self) -> bool:
        """Renew (or log in again) when the token is past its renewal point; True if it did."""
        with self._lock:
            left = self.seconds_until_due()
            if left is None or left > 0:
                return False
            self._refresh()
            return True

    def _refresh(self) -> None:
        lease = self._lease
        assert lease is not None
        if lease.renewable:
            try:
                with translate("renew-self"):
                    auth = self.client.auth.token.renew_self(increment=lease.increment)["auth"]
            except Exception as exc:
                if not self.can_relogin:
                    log.warning(
                        "token renewal failed (%s): the token will expire", type(exc).__name__
                    )
                    self._lease = Lease(0, False, self._clock(), 0)
                    raise
                # Expected at the token's max TTL ("past the max TTL, cannot renew").
                log.info("token renewal failed (%s): logging in again", type(exc).__name__)
            else:
                ttl = float(auth.get("lease_duration") or 0)
                # Near its max TTL a renewal is capped to what is left (possibly 0 s), and the
                # next one fails: a capped token is replaced by a fresh login right away.
                capped = ttl < lease.increment
                if not (capped and self.can_relogin):
                    renewable = bool(auth.get("renewable")) and not capped
                    self._lease = Lease(ttl, renewable, self._clock(), lease.increment)
                    log.info("token renewed", extra={"ttl": ttl})
                    return
                log.info("token reached its maximum TTL: logging in again")
        if self.can_relogin:
            self.login()
        else:
            self._lease = Lease(0, False, self._clock(), 0)  # nothing more to do until it dies

    # -- 403 handling ---------------------------------------------------------------------------

    def token_is_valid(self) -> bool:
        """Ask ``lookup-self``: False when Vault says the token is invalid/expired/revoked."""
        try:
            with translate("token lookup-self"):
                self.client.auth.token.lookup_self()
        except AccessDenied:
            return False
        return True

    def recover(self, generation: int) -> bool:
        """After a 403 seen with token ``generation``: True when a new token is in place (the
        caller retries once); False when the token is valid (so the 403 is ``access_denied``).
        Raises ``auth_failed`` when the token is dead and no new one can be obtained."""
        with self._lock:
            if self._generation != generation:
                return True  # another thread logged in meanwhile
            if self.token_is_valid():
                return False
            log.warning("the Vault token is no longer valid")
            if not self.can_relogin:
                raise AuthFailed(
                    "the Vault token is invalid, expired or revoked: provide a new one"
                    " (token, token_file or VAULT_TOKEN)"
                )
            self.login()
            return True

    # -- background thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the renewal thread (a daemon: it never keeps the process alive)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dso-vault-renew", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2)

    def _run(self) -> None:
        wait: float | None = None
        while True:
            left = self.seconds_until_due()
            timeout = wait if wait is not None else (IDLE_WAIT if left is None else left)
            self._wake.wait(max(MIN_WAIT, timeout))
            self._wake.clear()
            if self._stopping:
                return
            wait = None
            try:
                self.refresh_if_due()
            except Exception as exc:
                log.warning("background token refresh failed (%s); retrying", type(exc).__name__)
                wait = RETRY_WAIT


def _creation_ttl(data: dict[str, Any], ttl: float) -> int:
    value = data.get("creation_ttl")
    return int(value) if isinstance(value, int) and value > 0 else int(ttl)


@contextmanager
def _refused_is_auth_failed(what: str) -> Iterator[None]:
    """A login refused for any reason the caller can fix (bad role, bad secret id, bad or
    revoked token: 400/401/403) is ``auth_failed``; outages keep their own codes."""
    try:
        with translate(what):
            yield
    except (AccessDenied, InvalidRequest) as fault:
        if isinstance(fault.__cause__, hvac_exc.VaultError) or isinstance(fault, AccessDenied):
            raise AuthFailed(f"{what} refused by Vault: check the credentials") from fault
        raise
