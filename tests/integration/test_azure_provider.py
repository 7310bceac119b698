"""The azure provider as a real process (``python -m providers.azure``) under the kernel's
ProviderClient, against the HTTPS Key Vault double, with the real azure-identity credentials.

Each test gets its own double (a fresh port: the Azure SDK caches auth challenges per host:port
process-wide) and its own CA; the provider trusts that CA through ``ca_file`` only, never
through this machine's REQUESTS_CA_BUNDLE/SSL_CERT_FILE, which are removed from its env.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from kernel.errors import ProviderError
from kernel.protocol import ErrorCode, GetResult, SecretRef
from kernel.provider_host import ProviderClient, ProviderCommand
from tests.fakes.azure_keyvault_double import (
    KeyVaultDouble,
    clean_environ,
    provider_settings,
    running_double,
)

pytestmark = pytest.mark.integration

SOURCE = ProviderCommand("azure", (sys.executable, "-m", "providers.azure"), "source")
DB = {"user": "app", "password": "pw-0", "port": 5432, "tls": {"on": True}}


@pytest.fixture
def double(tmp_path: Path) -> Iterator[KeyVaultDouble]:
    with running_double(tmp_path / "tls") as running:
        yield running


def start(
    double: KeyVaultDouble,
    command: ProviderCommand = SOURCE,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> ProviderClient:
    return ProviderClient.start(
        command,
        settings=provider_settings(double, **overrides),
        environ=clean_environ() if environ is None else environ,
        request_timeout=10.0,
    )


@pytest.fixture
def provider(double: KeyVaultDouble) -> Iterator[ProviderClient]:
    client = start(double)
    try:
        yield client
    finally:
        client.close()


def sdk_client(double: KeyVaultDouble) -> SecretClient:
    """A plain SecretClient on the double, standing for whoever rotates the secret."""
    credential = ClientSecretCredential(
        double.tenant_id,
        double.client_id,
        double.client_secret,
        authority=double.origin,
        disable_instance_discovery=True,
        connection_verify=str(double.ca_file),
    )
    return SecretClient(
        double.vault_url,
        credential,
        verify_challenge_resource=False,
        connection_verify=str(double.ca_file),
    )


def test_get_fields_and_names(double: KeyVaultDouble, provider: ProviderClient) -> None:
    version = double.set_secret("app-db", json.dumps(DB))
    double.set_secret("plain", "hunter2")
    result = provider.get(
        [
            SecretRef("whole", "plain"),
            SecretRef("user", "app/db", field="user"),
            SecretRef("port", "app_db", field="port"),
            SecretRef("tls", "app-db", field="tls"),
            SecretRef("nested", "app-db", field="tls.on"),
        ]
    )
    assert not result.errors
    values = {k: v.value for k, v in result.values.items()}
    assert values == {
        "whole": b"hunter2",
        "user": b"app",
        "port": b"5432",
        "tls": b'{"on":true}',
        "nested": b"true",
    }
    assert result.values["user"].version == version
    # Four references to one secret cost one read.
    assert len([r for r in double.value_reads() if "app-db" in r.path]) == 1


def test_versions_follow_a_put_without_reading_values(
    double: KeyVaultDouble, provider: ProviderClient
) -> None:
    first = double.set_secret("rotating", "v1", created=int(time.time()) - 60)
    refs = [SecretRef("r", "rotating"), SecretRef("f", "rotating", field="x")]
    reads = len(double.value_reads())
    assert provider.versions(refs).versions == {"r": first, "f": first}
    with sdk_client(double) as writer:
        second = writer.set_secret("rotating", "v2").properties.version
    assert second and second != first
    assert provider.versions(refs).versions == {"r": second, "f": second}
    assert len(double.value_reads()) == reads, "versions must not read values"
    got = provider.get([SecretRef("r", "rotating")])
    assert (got.values["r"].value, got.values["r"].version) == (b"v2", second)


def test_same_second_versions_fall_back_to_a_read(
    double: KeyVaultDouble, provider: ProviderClient
) -> None:
    now = int(time.time())
    double.set_secret("twice", "a", created=now)
    second = double.set_secret("twice", "b", created=now)
    assert provider.versions([SecretRef("t", "twice")]).versions == {"t": second}
    assert [r.path for r in double.value_reads()] == ["/secrets/twice/"]


def test_version_pinning(double: KeyVaultDouble, provider: ProviderClient) -> None:
    old = double.set_secret("pinned", json.dumps({"k": "old"}), created=1_700_000_000)
    new = double.set_secret("pinned", json.dumps({"k": "new"}))
    refs = [
        SecretRef("old", "pinned", field="k", version=old),
        SecretRef("new", "pinned", field="k"),
        SecretRef("upper", "pinned", version=old.upper()),
        SecretRef("gone", "pinned", version="0" * 32),
        SecretRef("bad", "pinned", version="1.0"),
    ]
    got = provider.get(refs)
    assert got.values["old"].value == b"old" and got.values["old"].version == old
    assert got.values["new"].value == b"new" and got.values["new"].version == new
    assert got.values["upper"].version == old
    assert got.errors["gone"].code is ErrorCode.NOT_FOUND
    assert got.errors["bad"].code is ErrorCode.INVALID_REQUEST
    versions = provider.versions(refs)
    assert versions.versions == {"old": old, "new": new, "upper": old}
    assert versions.errors["gone"].code is ErrorCode.NOT_FOUND


def test_missing_denied_and_disabled(double: KeyVaultDouble, provider: ProviderClient) -> None:
    double.set_secret("secret-x", "x")
    double.deny("secret-x")
    version = double.set_secret("off", "v", created=1_700_000_000)
    double.set_enabled("off", version, False)
    double.set_secret("json-less", "not json")
    refs = [
        SecretRef("missing", "no/such"),
        SecretRef("denied", "secret-x"),
        SecretRef("disabled", "off"),
        SecretRef("field", "json-less", field="a"),
        SecretRef("name", "has.dot"),
    ]
    got = provider.get(refs)
    codes = {k: e.code for k, e in got.errors.items()}
    assert codes == {
        "missing": ErrorCode.NOT_FOUND,
        "denied": ErrorCode.ACCESS_DENIED,
        "disabled": ErrorCode.ACCESS_DENIED,
        "field": ErrorCode.NOT_FOUND,
        "name": ErrorCode.INVALID_REQUEST,
    }
    assert "no-such" in got.errors["missing"].message
    assert "disabled" in got.errors["disabled"].message
    versions = provider.versions(refs[:3])
    assert {k: e.code for k, e in versions.errors.items()} == {
        "missing": ErrorCode.NOT_FOUND,
        "denied": ErrorCode.ACCESS_DENIED,
        "disabled": ErrorCode.ACCESS_DENIED,
    }


def test_listing_refused_falls_back_to_reading(
    double: KeyVaultDouble, provider: ProviderClient, caplog: pytest.LogCaptureFixture
) -> None:
    version = double.set_secret("get-only", "v")
    double.deny("get-only", listing_only=True)
    with caplog.at_level(logging.WARNING, logger="dso.provider.azure"):
        for _ in range(2):
            assert provider.versions([SecretRef("g", "get-only")]).versions == {"g": version}
        provider.ping()
    listings = [
        r for r in double.requests if r.authorized and r.path.endswith("/get-only/versions")
    ]
    assert len(listings) == 1, "after a 403 the listing is not tried again"
    assert "listing versions was refused" in caplog.text


def test_list_names(double: KeyVaultDouble, provider: ProviderClient) -> None:
    for i in range(30):  # more than one page of 25
        double.set_secret(f"svc-{i:02d}", "x")
    double.set_secret("other", "x")
    names = provider.list_names()
    assert len(names) == 31 and "other" in names
    assert provider.list_names("svc/") == [f"svc-{i:02d}" for i in range(30)]


def test_bad_client_secret_is_auth_failed(double: KeyVaultDouble) -> None:
    with pytest.raises(ProviderError) as caught:
        start(double, client_secret="wrong-secret")
    assert caught.value.code == ErrorCode.AUTH_FAILED.value
    assert "AADSTS7000215" in caught.value.message
    assert "wrong-secret" not in caught.value.message


def test_expiring_tokens_are_renewed(tmp_path: Path) -> None:
    with running_double(tmp_path / "tls", token_lifetime=2) as short:
        short.set_secret("s", "v")
        client = start(short)
        try:
            for _ in range(3):
                assert client.get([SecretRef("s", "s")]).values["s"].value == b"v"
                time.sleep(1.1)  # the double refuses a token 2 s after issuing it
        finally:
            client.close()
        assert sum(r.method == "POST" for r in short.requests) >= 2, "tokens were renewed"


def test_expired_client_secret_is_auth_failed(
    double: KeyVaultDouble, provider: ProviderClient
) -> None:
    double.set_secret("s", "v")
    double.tokens.client_secret = "rotated-elsewhere"
    double.tokens.revoke()
    got = provider.get([SecretRef("s", "s")])
    assert got.errors["s"].code is ErrorCode.AUTH_FAILED
    assert "rotated-elsewhere" not in got.errors["s"].message


def test_throttling_and_server_errors_are_unavailable(
    double: KeyVaultDouble, provider: ProviderClient
) -> None:
    double.set_secret("s", "v")
    double.inject(429, "Throttled", retry_after=3)
    got = provider.get([SecretRef("s", "s")])
    assert got.errors["s"].code is ErrorCode.UNAVAILABLE
    assert "retry after 3 s" in got.errors["s"].message
    double.inject(503, "ServiceUnavailable")
    assert provider.versions([SecretRef("s", "s")]).errors["s"].code is ErrorCode.UNAVAILABLE
    assert provider.get([SecretRef("s", "s")]).values["s"].value == b"v"


def test_stopped_double_is_unavailable(double: KeyVaultDouble, provider: ProviderClient) -> None:
    double.set_secret("s", "v")
    assert provider.get([SecretRef("s", "s")]).values["s"].value == b"v"
    double.stop()
    started = time.monotonic()
    got = provider.get([SecretRef("s", "s")])
    assert got.errors["s"].code is ErrorCode.UNAVAILABLE
    assert time.monotonic() - started < 3, "a refused connection must fail fast"
    assert provider.ping() < 1


def test_managed_identity_app_service(double: KeyVaultDouble) -> None:
    double.set_secret("mi", "from-managed-identity")
    command = ProviderCommand(
        "azure", SOURCE.argv, "source", env_allow=("IDENTITY_ENDPOINT", "IDENTITY_HEADER")
    )
    environ = clean_environ(
        IDENTITY_ENDPOINT=double.identity_endpoint, IDENTITY_HEADER=double.identity_header
    )
    client = ProviderClient.start(
        command,
        settings=provider_settings(
            double,
            credential="managed_identity",
            tenant_id=None,
            client_id=None,
            client_secret=None,
            authority_host=None,
        ),
        environ=environ,
    )
    try:
        assert client.get([SecretRef("m", "mi")]).values["m"].value == b"from-managed-identity"
    finally:
        client.close()


def test_values_never_reach_the_logs(
    double: KeyVaultDouble, caplog: pytest.LogCaptureFixture, canary: str
) -> None:
    double.set_secret("canary", json.dumps({"k": canary}))
    with caplog.at_level(logging.DEBUG):
        client = start(double, environ=clean_environ())
        try:
            got = client.get([SecretRef("c", "canary", field="k"), SecretRef("w", "canary")])
            assert got.values["c"].value == canary.encode()
            client.versions([SecretRef("c", "canary")])
            client.get([SecretRef("f", "canary", field="k.deeper")])
        finally:
            client.close()
    assert canary not in caplog.text
    assert double.client_secret not in caplog.text


def test_large_batch_runs_in_parallel(
    double: KeyVaultDouble, provider: ProviderClient, caplog: pytest.LogCaptureFixture
) -> None:
    refs = []
    for i in range(120):
        double.set_secret(f"many-{i}", f"value-{i}")
        refs.append(SecretRef(f"r{i}", f"many/{i}"))
    batches = [refs] * 3 + [[ref] for ref in refs[:12]]  # big batches and single references
    with caplog.at_level(logging.WARNING):
        futures = [provider.submit("get", {"refs": [r.to_wire() for r in b]}) for b in batches]
        results = [
            GetResult.from_wire(f.result(30), [r.id for r in b])
            for f, b in zip(futures, batches, strict=True)
        ]
        provider.ping()
    for result in results:
        assert not result.errors
    assert results[0].values["r7"].value == b"value-7"
    assert "Connection pool is full" not in caplog.text


def test_configure_again_switches_vaults(
    double: KeyVaultDouble, provider: ProviderClient, tmp_path: Path
) -> None:
    double.set_secret("where", "first")
    assert provider.get([SecretRef("w", "where")]).values["w"].value == b"first"
    with running_double(tmp_path / "second") as other:
        other.set_secret("where", "second")
        provider.configure(provider_settings(other))
        assert provider.get([SecretRef("w", "where")]).values["w"].value == b"second"
        with pytest.raises(ProviderError) as caught:
            provider.configure(provider_settings(other, client_secret="nope"))
        assert caught.value.code == ErrorCode.AUTH_FAILED.value
        # A refused configure keeps the working client.
        assert provider.get([SecretRef("w", "where")]).values["w"].value == b"second"
