"""The azure provider's pure parts: settings, name mapping, token scope, current-version choice,
and the rule that the Azure SDK is imported by ``configure`` only (cold start)."""

from __future__ import annotations

import ast
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from providers.azure.credentials import make_credential, token_scope
from providers.azure.names import check_version, name_prefix, vault_name
from providers.azure.provider import run_all, subject_of
from providers.azure.settings import AzureSettings, ChangeDetection, CredentialKind
from providers.azure.vault_client import newest
from providers.sdk import DeadlineExceeded, InvalidRequest

ROOT = Path(__file__).resolve().parents[2]
VAULT = "https://myvault.vault.azure.net"
SP = {
    "vault_url": VAULT,
    "credential": "client_secret",
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "app",
    "client_secret": "s3cr3t-value",
}


# -- settings -------------------------------------------------------------------------------------


def test_defaults() -> None:
    parsed = AzureSettings.parse({"vault_url": VAULT + "/"})
    assert parsed.vault_url == VAULT
    assert parsed.credential is CredentialKind.DEFAULT
    assert parsed.change_detection is ChangeDetection.PROPERTIES
    assert parsed.verify_challenge_resource is True
    assert (parsed.retries, parsed.connect_timeout, parsed.concurrency) == (1, 5.0, 8)


def test_client_secret_is_not_in_repr() -> None:
    parsed = AzureSettings.parse(SP)
    assert parsed.client_secret == "s3cr3t-value"
    assert "s3cr3t" not in repr(parsed)


def test_values_from_env_expansion_are_text() -> None:
    parsed = AzureSettings.parse(
        {
            "vault_url": VAULT,
            "verify_challenge_resource": "false",
            "retries": "3",
            "connect_timeout": "2.5",
            "change_detection": "value",
        }
    )
    assert parsed.verify_challenge_resource is False
    assert (parsed.retries, parsed.connect_timeout) == (3, 2.5)
    assert parsed.change_detection is ChangeDetection.VALUE


def test_authority_host_is_normalised() -> None:
    parsed = AzureSettings.parse({**SP, "authority_host": "login.microsoftonline.us/"})
    assert parsed.authority_host == "https://login.microsoftonline.us"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({}, "'vault_url' of the azure provider is required"),
        ({"vault_url": "http://myvault.vault.azure.net"}, "https"),
        ({"vault_url": VAULT + "/secrets/x"}, "root URL"),
        ({"vault_url": "https://user:pw@myvault.vault.azure.net"}, "without user"),
        ({"vault_url": VAULT, "vault_ulr": 1}, "did you mean 'vault_url'"),
        ({"vault_url": VAULT, "credential": "password"}, "must be one of"),
        ({"vault_url": VAULT, "credential": "client_secret"}, "'tenant_id'"),
        ({**SP, "client_secret": None}, "'client_secret' of the azure provider is required"),
        ({"vault_url": VAULT, "credential": "managed_identity", "tenant_id": "t"}, "not apply"),
        ({**SP, "tenant_id": "bad tenant!"}, "tenant id"),
        ({**SP, "authority_host": "http://login.example"}, "https only"),
        ({"vault_url": VAULT, "api_version": "latest"}, "api-version"),
        ({"vault_url": VAULT, "retries": 9}, "between 0 and 5"),
        ({"vault_url": VAULT, "concurrency": True}, "whole number"),
        ({"vault_url": VAULT, "ca_file": "/nonexistent/ca.pem"}, "not a file"),
        ({"vault_url": VAULT, "verify_challenge_resource": "maybe"}, "true or false"),
    ],
)
def test_bad_settings(settings: dict[str, Any], words: str) -> None:
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(InvalidRequest) as caught:
        AzureSettings.parse(settings)
    assert words in caught.value.message
    assert "s3cr3t" not in caught.value.message


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("db-password", "db-password"),
        ("app/db_password", "app-db-password"),
        ("App/DB", "App-DB"),
        ("a" * 127, "a" * 127),
    ],
)
def test_name_mapping(path: str, name: str) -> None:
    assert vault_name(path) == name


@pytest.mark.parametrize(
    ("path", "words"),
    [("app.db", "'.' is not allowed"), ("héllo", "'é'"), ("a b", "' '"), ("a" * 128, "128")],
)
def test_unmappable_names(path: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        vault_name(path)
    assert words in caught.value.message


def test_prefix_and_versions() -> None:
    assert name_prefix(None) == ""
    assert name_prefix("App/") == "app-"
    assert check_version("p", None) is None
    assert check_version("p", "ABCDEF0123") == "abcdef0123"
    for bad in ("1.2", "../x", "AWSCURRENT-x"):
        with pytest.raises(InvalidRequest):
            check_version("p", bad)


def test_subject_names_the_key_vault_name_when_it_differs() -> None:
    assert subject_of("db", "db") == "'db'"
    assert subject_of("app/db", "app-db", "v1") == "'app/db' (Key Vault name 'app-db') version 'v1'"


# -- token scope and current version --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        (VAULT, "https://vault.azure.net/.default"),
        ("https://x.vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net/.default"),
        ("https://x.vault.azure.cn", "https://vault.azure.cn/.default"),
        ("https://hsm1.managedhsm.azure.net", "https://managedhsm.azure.net/.default"),
        ("https://127.0.0.1:8443", "https://vault.azure.net/.default"),
    ],
)
def test_token_scope(url: str, scope: str) -> None:
    assert token_scope(url) == scope


def props(version: str, created: int | None, enabled: bool = True) -> Any:
    when = None if created is None else datetime.fromtimestamp(created, UTC)
    return SimpleNamespace(version=version, created_on=when, enabled=enabled)


def test_newest_is_the_last_created() -> None:
    items = [props("b", 200), props("a", 100), props("c", 150)]
    assert newest(items).version == "b"


@pytest.mark.parametrize(
    "items",
    [[], [props("a", 100), props("b", 100)], [props("a", 100), props("b", None)]],
    ids=["empty", "same-second", "undated"],
)
def test_newest_is_none_when_ambiguous(items: list[Any]) -> None:
    assert newest(items) is None


# -- cold start -----------------------------------------------------------------------------------

#: Modules the handshake path imports: they must not import azure at module level.
LIGHT = ("__init__", "__main__", "provider", "settings", "names", "credentials")


@pytest.mark.parametrize("module", LIGHT)
def test_azure_sdk_is_imported_lazily(module: str) -> None:
    tree = ast.parse((ROOT / "providers" / "azure" / f"{module}.py").read_text())
    for node in tree.body:  # module level only; TYPE_CHECKING blocks are If nodes
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        heavy = [n for n in names if n.split(".")[0] == "azure" or n.endswith("vault_client")]
        assert not heavy, f"providers/azure/{module}.py imports {heavy} at module level"


# -- batches --------------------------------------------------------------------------------------


def test_run_all_collects_results_and_exceptions() -> None:
    def call(key: int) -> int:
        if key == 3:
            raise ValueError("three")
        return key * 10

    with ThreadPoolExecutor(4) as pool:
        outcomes = run_all(pool, call, [1, 2, 3], deadline=None)
    assert outcomes[1] == 10 and outcomes[2] == 20
    assert isinstance(outcomes[3], ValueError)


def test_run_all_reports_the_deadline() -> None:
    with ThreadPoolExecutor(2) as pool:
        outcomes = run_all(pool, lambda k: time.sleep(k), [0.0, 1.0], deadline=time.time() + 0.2)
    assert outcomes[0.0] is None
    assert isinstance(outcomes[1.0], DeadlineExceeded)


def test_run_all_survives_a_replaced_pool() -> None:
    pool = ThreadPoolExecutor(2)
    pool.shutdown()
    assert run_all(pool, lambda k: k + 1, [1, 2], deadline=None) == {1: 2, 2: 3}


# -- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        (SP, "ClientSecretCredential"),
        ({**SP, "authority_host": "login.microsoftonline.us"}, "ClientSecretCredential"),
        ({"vault_url": VAULT, "credential": "managed_identity"}, "ManagedIdentityCredential"),
        (
            {"vault_url": VAULT, "credential": "managed_identity", "client_id": "user-mi"},
            "ManagedIdentityCredential",
        ),
        ({"vault_url": VAULT}, "DefaultAzureCredential"),
        ({"vault_url": VAULT, "client_id": "workload-id"}, "DefaultAzureCredential"),
    ],
)
def test_credential_kinds(
    settings: dict[str, Any], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    credential = make_credential(AzureSettings.parse(settings), {"connection_timeout": 1})
    try:
        assert type(credential).__name__ == kind  # built without any network call
    finally:
        credential.close()  # type: ignore[attr-defined]


def test_unknown_authority_disables_instance_discovery() -> None:
    known = make_credential(AzureSettings.parse(SP), {})
    private = make_credential(AzureSettings.parse({**SP, "authority_host": "127.0.0.1:8443"}), {})
    # MSAL's instance discovery knows only Microsoft's clouds.
    assert getattr(known, "_instance_discovery", None) is None
    assert getattr(private, "_instance_discovery", None) is False
