"""The vault provider as a real process (``python -m providers.vault``) behind the real host
client, against a real OpenBao dev server: KV v1/v2, versions, fields, pinning, list, a sealed
and a stopped server, the breaker, log hygiene. Auth methods: test_vault_provider_auth.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from kernel.config.model import BreakerConfig, Config, ProviderConfig
from kernel.errors import DSOError, ProviderUnavailableError
from kernel.paths import local_layout
from kernel.protocol import ErrorCode, SecretRef, wire_code
from kernel.provider_host import BreakerState, ProviderHost
from tests.integration.servers import (
    OpenBao,
    clean_env,
    error_code,
    one,
    provider_command,
    provider_logs,
    start_provider,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ca_bundles")]


def start(clients: list[Any], settings: dict[str, Any] | None) -> Any:
    client = start_provider("vault", settings)
    clients.append(client)
    return client


# -- KV v2 with a token -------------------------------------------------------------------------


def test_kv2_whole_secret_fields_versions_and_pinning(
    openbao: OpenBao, provider_clients: list[Any]
) -> None:
    path = f"{unique('app')}/db"
    first = {"password": "pw-1", "port": 5432, "tls": True, "opts": {"pool": [1, 2]}}
    assert openbao.write(path, first) == 1
    assert openbao.write(path, {**first, "password": "pw-2"}) == 2
    client = start(provider_clients, openbao.settings())

    value, version = one(client, SecretRef("whole", path))
    assert json.loads(value) == {**first, "password": "pw-2"}
    assert version == "2"
    refs = [
        SecretRef("pw", path, field="password"),
        SecretRef("port", path, field="port"),
        SecretRef("tls", path, field="tls"),
        SecretRef("opts", path, field="opts"),
        SecretRef("pool", path, field="opts.pool.1"),
        SecretRef("old", path, field="password", version="1"),
        SecretRef("full", f"secret/data/{path}", field="password"),
    ]
    result = client.get(refs)
    assert not result.errors
    got = {k: v.value for k, v in result.values.items()}
    assert got == {
        "pw": b"pw-2",
        "port": b"5432",
        "tls": b"true",
        "opts": b'{"pool":[1,2]}',
        "pool": b"2",
        "old": b"pw-1",
        "full": b"pw-2",
    }
    assert result.values["old"].version == "1"

    versions = client.versions([SecretRef("a", path), SecretRef("b", path, version="1")])
    assert versions.versions == {"a": "2", "b": "1"}
    assert openbao.write(path, {"password": "pw-3"}) == 3
    assert client.versions([SecretRef("a", path)]).versions == {"a": "3"}

    assert error_code(client, SecretRef("x", path, version="9")) is ErrorCode.NOT_FOUND
    assert error_code(client, SecretRef("x", path, version="9"), "versions") is ErrorCode.NOT_FOUND
    assert error_code(client, SecretRef("x", path, field="nope")) is ErrorCode.NOT_FOUND
    assert error_code(client, SecretRef("x", unique("missing"))) is ErrorCode.NOT_FOUND
    missing = SecretRef("x", unique("missing"))
    assert error_code(client, missing, "versions") is ErrorCode.NOT_FOUND
    assert error_code(client, SecretRef("x", "a/../b")) is ErrorCode.INVALID_REQUEST


def test_deleted_current_version_is_not_found_but_older_ones_stay(
    openbao: OpenBao, provider_clients: list[Any]
) -> None:
    path = unique("del")
    openbao.write(path, {"v": "1"})
    openbao.write(path, {"v": "2"})
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path=path, mount_point="secret")
    client = start(provider_clients, openbao.settings())
    assert error_code(client, SecretRef("x", path)) is ErrorCode.NOT_FOUND
    assert error_code(client, SecretRef("x", path), "versions") is ErrorCode.NOT_FOUND
    assert one(client, SecretRef("x", path, field="v", version="1")) == (b"1", "1")


def test_list_walks_folders_under_a_prefix(openbao: OpenBao, provider_clients: list[Any]) -> None:
    top = unique("list")
    for name in ("a", "b/c", "b/d/e"):
        openbao.write(f"{top}/{name}", {"k": "v"})
    client = start(provider_clients, openbao.settings())
    assert client.list_names(f"{top}/") == [f"{top}/a", f"{top}/b/c", f"{top}/b/d/e"]
    assert client.list_names(f"{top}/b/") == [f"{top}/b/c", f"{top}/b/d/e"]
    assert client.list_names(unique("none") + "/") == []


# -- KV v1 --------------------------------------------------------------------------------------


def test_kv1_values_and_fingerprint_versions(openbao: OpenBao, provider_clients: list[Any]) -> None:
    path = unique("v1")
    openbao.write(path, {"user": "u", "n": 7}, mount=OpenBao.KV1)
    settings = openbao.settings(mount=OpenBao.KV1, kv_version=1)
    client = start(provider_clients, settings)
    value, version = one(client, SecretRef("a", path))
    assert json.loads(value) == {"user": "u", "n": 7}
    assert version.startswith("fp-")
    assert "u" not in version.removeprefix("fp-").strip("0123456789abcdef")
    assert one(client, SecretRef("n", path, field="n")) == (b"7", version)
    assert client.versions([SecretRef("a", path)]).versions == {"a": version}
    assert one(client, SecretRef("p", path, field="user", version=version))[0] == b"u"
    assert error_code(client, SecretRef("p", path, version="fp-0")) is ErrorCode.NOT_FOUND

    openbao.write(path, {"user": "u2", "n": 7}, mount=OpenBao.KV1)
    changed = client.versions([SecretRef("a", path)]).versions["a"]
    assert changed != version
    assert one(client, SecretRef("a", path, field="user")) == (b"u2", changed)
    # Another provider process computes the same fingerprint: no spurious rotation on restart.
    again = start(provider_clients, settings)
    assert again.versions([SecretRef("a", path)]).versions["a"] == changed
    keyed = start(provider_clients, {**settings, "fingerprint_secret": "k" * 32})
    assert keyed.versions([SecretRef("a", path)]).versions["a"] != changed
    assert client.list_names(None) and path in client.list_names(None)


# -- outages ------------------------------------------------------------------------------------


def test_sealed_server_is_unavailable_until_unsealed(
    fresh_openbao: OpenBao, provider_clients: list[Any]
) -> None:
    fresh_openbao.write("s", {"k": "v"})
    client = start(provider_clients, fresh_openbao.settings())
    fresh_openbao.seal()
    assert error_code(client, SecretRef("a", "s")) is ErrorCode.UNAVAILABLE
    assert error_code(client, SecretRef("a", "s"), "versions") is ErrorCode.UNAVAILABLE
    fresh_openbao.unseal()
    assert one(client, SecretRef("a", "s", field="k"))[0] == b"v"


def test_stopped_server_is_unavailable_and_opens_the_breaker(
    fresh_openbao: OpenBao, dso_home: Path
) -> None:
    fresh_openbao.write("s", {"k": "v"})
    config = Config(
        default_provider="vault",
        providers={
            "vault": ProviderConfig(
                name="vault",
                type="vault",
                timeout=5.0,
                breaker=BreakerConfig(failure_threshold=2, cooldown=60.0),
                settings=fresh_openbao.settings(),
            )
        },
    )
    with ProviderHost(
        config, local_layout(), commands={"vault": provider_command("vault")}, environ=clean_env()
    ) as host:
        vault = host.client("vault")
        ref = SecretRef("a", "s", field="k")
        assert vault.get([ref]).values["a"].value == b"v"
        fresh_openbao.stop()
        for _ in range(2):
            assert vault.get([ref]).errors["a"].code is ErrorCode.UNAVAILABLE
        assert vault.breaker.state is BreakerState.OPEN
        with pytest.raises(ProviderUnavailableError) as info:
            vault.get([ref])
        assert wire_code(info.value) is ErrorCode.UNAVAILABLE


def test_unreachable_server_at_configure_is_unavailable(provider_clients: list[Any]) -> None:
    with pytest.raises(DSOError) as info:
        start(provider_clients, {"address": "http://127.0.0.1:9", "token": "t"})
    assert wire_code(info.value) is ErrorCode.UNAVAILABLE


def test_tls_with_ca_file_without_it_and_skip_verify(
    tmp_path: Path, provider_clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bao = OpenBao(tmp_path / "tls", tls=True)
    try:
        assert bao.address.startswith("https://")
        bao.write("s", {"k": "tls-ok"})
        ref = SecretRef("a", "s", field="k")
        verified = start(provider_clients, bao.settings(ca_file=str(bao.ca_file)))
        assert one(verified, ref)[0] == b"tls-ok"
        # The server's certificate is self-signed: without its CA the handshake is refused.
        with pytest.raises(DSOError) as info:
            start(provider_clients, bao.settings())
        assert wire_code(info.value) is ErrorCode.UNAVAILABLE
        assert "TLS" in info.value.message
        assert "tls_skip_verify" not in provider_logs(caplog)
        unverified = start(provider_clients, bao.settings(tls_skip_verify=True))
        assert one(unverified, ref)[0] == b"tls-ok"
        assert "tls_skip_verify is true" in provider_logs(caplog)
    finally:
        bao.stop()


# -- hygiene ------------------------------------------------------------------------------------


def test_values_and_tokens_never_reach_the_logs(
    openbao: OpenBao, provider_clients: list[Any], caplog: pytest.LogCaptureFixture, canary: str
) -> None:
    caplog.set_level(logging.DEBUG)
    path = unique("canary")
    openbao.write(path, {"password": canary})
    token = openbao.token(["root"])
    client = start_provider("vault", None)
    provider_clients.append(client)
    client.configure(openbao.settings(token))
    assert one(client, SecretRef("a", path, field="password"))[0] == canary.encode()
    openbao.client().auth.token.revoke(token)
    client.get([SecretRef("a", path)])
    client.close(grace=2.0)
    text = provider_logs(caplog)
    assert "authenticated" in text, "the provider's stderr is re-logged by the host"
    assert canary not in text
    assert token not in text
