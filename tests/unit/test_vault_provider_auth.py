"""Token keeping of the vault provider (providers/vault/auth.py) with a scripted fake hvac client
and a fake clock: when it renews, when it logs in again, how a 403 is settled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac.exceptions as hvac_exc
import pytest

from kernel.protocol import ErrorCode
from providers.sdk import AuthFailed, ProviderFault
from providers.vault.auth import VaultAuth
from providers.vault.settings import AuthMethod, AuthSettings


@dataclass
class FakeToken:
    """``client.auth.token``: lookup-self and renew-self answers, scripted per test."""

    ttl: int = 30
    renewable: bool = True
    valid: bool = True
    renew_answers: list[Any] = field(default_factory=list)
    renewals: int = 0

    def lookup_self(self) -> dict[str, Any]:
        if not self.valid:
            raise hvac_exc.Forbidden("permission denied")
        return {"data": {"ttl": self.ttl, "renewable": self.renewable, "creation_ttl": self.ttl}}

    def renew_self(self, increment: int) -> dict[str, Any]:
        self.renewals += 1
        answer = self.renew_answers.pop(0) if self.renew_answers else increment
        if isinstance(answer, Exception):
            raise answer
        return {"auth": {"lease_duration": answer, "renewable": True}}


@dataclass
class FakeApprole:
    ttl: int = 30
    logins: int = 0
    refuse: bool = False

    def login(self, role_id: str, secret_id: str | None, mount_point: str) -> dict[str, Any]:
        if self.refuse:
            raise hvac_exc.InvalidRequest("invalid role or secret ID")
        self.logins += 1
        return {
            "auth": {
                "client_token": f"t{self.logins}",
                "lease_duration": self.ttl,
                "renewable": True,
            }
        }


class FakeClient:
    def __init__(self) -> None:
        self.token: str | None = None
        self.auth = type("Auth", (), {})()
        self.auth.token = FakeToken()
        self.auth.approle = FakeApprole()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(method: AuthMethod, **kwargs: Any) -> tuple[VaultAuth, FakeClient, Clock]:
    client, clock = FakeClient(), Clock()
    if method is AuthMethod.APPROLE:
        settings = AuthSettings(method, "approle", role_id="r", secret_id="s")
    else:
        settings = AuthSettings(method, "token", **kwargs)
    auth = VaultAuth(client, settings, clock=clock)  # type: ignore[arg-type]
    auth.login()
    return auth, client, clock


def test_token_is_renewed_after_two_thirds_of_its_ttl() -> None:
    auth, client, clock = keeper(AuthMethod.TOKEN, token="tok")
    assert client.token == "tok"
    clock.now += 19
    assert not auth.refresh_if_due()
    clock.now += 2
    assert auth.refresh_if_due()
    assert client.auth.token.renewals == 1
    assert auth.seconds_until_due() == pytest.approx(20)


def test_a_token_that_never_expires_is_never_renewed() -> None:
    client = FakeClient()
    client.auth.token.ttl = 0
    auth = VaultAuth(client, AuthSettings(AuthMethod.TOKEN, "token", token="root"))  # type: ignore[arg-type]
    auth.login()
    assert auth.seconds_until_due() is None
    assert not auth.refresh_if_due()


def test_a_capped_renewal_brings_a_new_login() -> None:
    auth, client, clock = keeper(AuthMethod.APPROLE)
    client.auth.token.renew_answers = [12]  # less than the 30 s asked: at the max TTL
    clock.now += 21
    generation = auth.generation
    assert auth.refresh_if_due()
    assert client.auth.approle.logins == 2
    assert auth.generation == generation + 1


def test_a_failed_renewal_brings_a_new_login() -> None:
    auth, client, clock = keeper(AuthMethod.APPROLE)
    client.auth.token.renew_answers = [hvac_exc.InternalServerError("past the max TTL")]
    clock.now += 21
    assert auth.refresh_if_due()
    assert client.auth.approle.logins == 2


def test_a_plain_token_that_cannot_be_renewed_raises_and_stops_trying() -> None:
    auth, client, clock = keeper(AuthMethod.TOKEN, token="tok")
    client.auth.token.renew_answers = [hvac_exc.Forbidden("permission denied")]
    clock.now += 21
    with pytest.raises(ProviderFault):
        auth.refresh_if_due()
    assert auth.seconds_until_due() is None


def test_a_token_file_is_read_again_when_the_token_dies(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    auth, client, _ = keeper(AuthMethod.TOKEN, token_file=path)
    assert client.token == "first"
    path.write_text("second\n")
    client.auth.token.valid = False
    with pytest.raises(AuthFailed):
        auth.recover(auth.generation)  # the new token is dead too (lookup-self refuses it)
    client.auth.token.valid = True
    assert client.token == "second"


def test_403_with_a_valid_token_is_access_denied() -> None:
    auth, _, _ = keeper(AuthMethod.APPROLE)
    assert auth.recover(auth.generation) is False


def test_403_with_a_dead_token_logs_in_again_once() -> None:
    auth, client, _ = keeper(AuthMethod.APPROLE)
    client.auth.token.valid = False
    generation = auth.generation
    assert auth.recover(generation) is True
    assert client.auth.approle.logins == 2
    # A second thread that saw the 403 with the old token just retries.
    assert auth.recover(generation) is True
    assert client.auth.approle.logins == 2


def test_403_with_a_dead_plain_token_is_auth_failed() -> None:
    auth, client, _ = keeper(AuthMethod.TOKEN, token="s.CANARY-TOKEN")
    client.auth.token.valid = False
    with pytest.raises(AuthFailed) as info:
        auth.recover(auth.generation)
    assert "CANARY" not in info.value.message


def test_refused_logins_are_auth_failed() -> None:
    client = FakeClient()
    client.auth.approle.refuse = True
    auth = VaultAuth(client, AuthSettings(AuthMethod.APPROLE, "approle", role_id="r"))  # type: ignore[arg-type]
    with pytest.raises(AuthFailed) as info:
        auth.login()
    assert info.value.code is ErrorCode.AUTH_FAILED
    client = FakeClient()
    client.auth.token.valid = False
    auth = VaultAuth(client, AuthSettings(AuthMethod.TOKEN, "token", token="bad"))  # type: ignore[arg-type]
    with pytest.raises(AuthFailed):
        auth.login()


def test_the_background_thread_starts_and_stops() -> None:
    auth, _, _ = keeper(AuthMethod.APPROLE)
    auth.start()
    auth.stop()
    assert auth._thread is not None
    assert not auth._thread.is_alive()
