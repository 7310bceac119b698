"""Auth methods of the vault provider as a real process against a real OpenBao dev server:
token, AppRole and JWT login, bad credentials, revoked tokens, renewal and re-login."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ProviderError
from kernel.protocol import ErrorCode, SecretRef
from tests.integration.servers import OpenBao, error_code, one, start_provider, unique


def start(clients: list[Any], settings: dict[str, Any] | None) -> Any:
    client = start_provider("vault", settings)
    clients.append(client)
    return client


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ca_bundles")]


def approle(openbao: OpenBao, policy: str, name: str | None = None, **role: Any) -> tuple[str, str]:
    name = name or unique("role")
    root = openbao.client()
    root.auth.approle.create_or_update_approle(role_name=name, token_policies=[policy], **role)
    role_id = root.auth.approle.read_role_id(role_name=name)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role_name=name)["data"]["secret_id"]
    return str(role_id), str(secret_id)


def test_approle_login_and_access_denied_outside_the_policy(
    openbao: OpenBao, provider_clients: list[Any], tmp_path: Path
) -> None:
    prefix = unique("team")
    openbao.write(f"{prefix}/db", {"password": "ok"})
    other = unique("other")
    openbao.write(f"{other}/db", {"password": "hidden"})
    role_id, secret_id = approle(openbao, openbao.read_policy(prefix))
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id + "\n")
    auth = {"method": "approle", "role_id": role_id, "secret_id_file": str(secret_file)}
    client = start(provider_clients, {"address": openbao.address, "auth": auth})
    assert one(client, SecretRef("a", f"{prefix}/db", field="password"))[0] == b"ok"
    assert client.versions([SecretRef("a", f"{prefix}/db")]).versions == {"a": "1"}
    # The minimal policy of docs/providers/vault.md is enough to list under the prefix.
    assert client.list_names(f"{prefix}/") == [f"{prefix}/db"]
    # The token is valid (lookup-self works): the 403 is access_denied, not auth_failed.
    assert error_code(client, SecretRef("b", f"{other}/db")) is ErrorCode.ACCESS_DENIED


def test_bad_credentials_fail_configure_with_auth_failed(
    openbao: OpenBao, provider_clients: list[Any]
) -> None:
    role_id, _ = approle(openbao, "default")
    cases = [
        openbao.settings("not-a-token"),
        {
            "address": openbao.address,
            "auth": {"method": "approle", "role_id": role_id, "secret_id": "wrong"},
        },
    ]
    for settings in cases:
        with pytest.raises(ProviderError) as info:
            start(provider_clients, settings)
        assert info.value.code == ErrorCode.AUTH_FAILED.value, info.value.message
        assert "wrong" not in info.value.message


def test_revoked_token_is_auth_failed(openbao: OpenBao, provider_clients: list[Any]) -> None:
    path = unique("rev")
    openbao.write(path, {"k": "v"})
    token = openbao.token(["root"])
    client = start(provider_clients, openbao.settings(token))
    assert one(client, SecretRef("a", path, field="k"))[0] == b"v"
    openbao.client().auth.token.revoke(token)
    assert error_code(client, SecretRef("a", path)) is ErrorCode.AUTH_FAILED
    assert error_code(client, SecretRef("a", path), "versions") is ErrorCode.AUTH_FAILED


def logins(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage() == "authenticated" for r in caplog.records)


def test_revoked_approle_token_logs_in_again(
    openbao: OpenBao, provider_clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    prefix = unique("relogin")
    openbao.write(f"{prefix}/s", {"k": "v"})
    role = unique("role")
    role_id, secret_id = approle(openbao, openbao.read_policy(prefix), role)
    auth = {"method": "approle", "role_id": role_id, "secret_id": secret_id}
    client = start(provider_clients, {"address": openbao.address, "auth": auth})
    assert one(client, SecretRef("a", f"{prefix}/s", field="k"))[0] == b"v"
    assert logins(caplog) == 1
    root = openbao.client()
    revoked = 0
    for accessor in root.list("auth/token/accessors")["data"]["keys"]:
        meta = root.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        if meta.get("role_name") == role:
            root.auth.token.revoke_accessor(accessor)
            revoked += 1
    assert revoked == 1
    # The read gets a 403; lookup-self says the token is dead; the provider logs in again.
    assert one(client, SecretRef("a", f"{prefix}/s", field="k"))[0] == b"v"
    assert logins(caplog) == 2


def test_short_ttl_token_is_renewed_before_it_expires(
    openbao: OpenBao, provider_clients: list[Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = unique("ttl")
    openbao.write(path, {"k": "v"})
    token = openbao.token(["root"], ttl="3s", renewable=True, explicit_max_ttl="5m")
    token_file = tmp_path / "token"
    token_file.write_text(token)
    client = start(provider_clients, {"address": openbao.address, "token_file": str(token_file)})
    time.sleep(5)  # longer than the 3 s TTL: only renewal keeps the token alive
    assert one(client, SecretRef("a", path, field="k"))[0] == b"v"
    assert sum(r.getMessage() == "token renewed" for r in caplog.records) >= 2
    openbao.client().auth.token.lookup(token)  # still alive (raises once expired)


def test_token_at_max_ttl_is_replaced_by_a_new_login(
    openbao: OpenBao, provider_clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    prefix = unique("maxttl")
    openbao.write(f"{prefix}/s", {"k": "v"})
    role_id, secret_id = approle(
        openbao, openbao.read_policy(prefix), token_ttl="2s", token_max_ttl="3s"
    )
    auth = {"method": "approle", "role_id": role_id, "secret_id": secret_id}
    client = start(provider_clients, {"address": openbao.address, "auth": auth})
    deadline = time.monotonic() + 7  # past two max TTLs: re-login, not renewal, keeps it going
    while time.monotonic() < deadline:
        assert one(client, SecretRef("a", f"{prefix}/s", field="k"))[0] == b"v"
        time.sleep(0.5)
    assert logins(caplog) >= 3
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_jwt_login(openbao: OpenBao, provider_clients: list[Any], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    prefix = unique("jwt")
    openbao.write(f"{prefix}/s", {"k": "jwt-ok"})
    mount = unique("jwt")
    root = openbao.client()
    root.sys.enable_auth_method("jwt", path=mount)
    root.write(f"auth/{mount}/config", jwt_validation_pubkeys=[public_pem.decode()])
    root.write(
        f"auth/{mount}/role/app",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["dso"],
        token_policies=[openbao.read_policy(prefix)],
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "svc", "aud": "dso", "iat": now, "nbf": now - 5, "exp": now + 600}
    head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(f"{head}.{body}.{b64(signature)}")
    auth = {"method": "jwt", "mount": mount, "role": "app", "jwt_file": str(jwt_file)}
    client = start(provider_clients, {"address": openbao.address, "auth": auth})
    assert one(client, SecretRef("a", f"{prefix}/s", field="k"))[0] == b"jwt-ok"
