"""LocalVaultResolver: the embedded default behind the Resolver interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import (
    DSOError,
    InvalidSecretNameError,
    ProviderNotFoundError,
    SecretNotFoundError,
    VaultNotFoundError,
)
from kernel.injection.resolver import LocalVaultResolver, Resolved, require
from kernel.injection.setup import make_resolver
from kernel.paths import local_layout
from kernel.reference import parse_reference
from kernel.secret_value import SecretValue
from kernel.vault import KeySource, Vault, create_key_file


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    keys = KeySource(tmp_path / "vault.key")
    create_key_file(keys.key_file)
    vault = Vault.create(tmp_path / "vault.enc", keys)
    vault.set("app/db_password", SecretValue("CANARY-one"))
    vault.set("app/db_password", SecretValue("CANARY-two"))
    vault.set("app/db", SecretValue('{"user": "app", "password": "CANARY-pw"}'))
    return vault


def resolver_for(vault: Vault, **kwargs: object) -> tuple[LocalVaultResolver, list[int]]:
    opened: list[int] = []

    def open_vault() -> Vault:
        opened.append(1)
        return vault

    return LocalVaultResolver(open_vault, **kwargs), opened  # type: ignore[arg-type]


def test_default_and_local_references_read_the_vault_once(vault: Vault) -> None:
    resolver, opened = resolver_for(vault)
    refs = [
        parse_reference("dso://app/db_password"),
        parse_reference("dsofile://local:app/db_password"),
        parse_reference("dso://app/db#password"),
        parse_reference("dso://app/db_password@2"),
    ]
    outcomes = resolver.resolve(refs)
    assert list(outcomes) == refs
    assert all(isinstance(o, Resolved) for o in outcomes.values())
    values = require(outcomes)
    assert values[refs[0]].value == SecretValue("CANARY-two")
    assert values[refs[0]].version == "2"
    assert values[refs[0]].provider == "local"
    assert values[refs[0]].fingerprint == "local:2"
    assert values[refs[1]].value == SecretValue("CANARY-two")
    assert values[refs[2]].value == SecretValue("CANARY-pw")
    assert values[refs[3]].version == "2"
    assert opened == [1]


def test_each_failure_is_per_reference_and_names_it(vault: Vault) -> None:
    resolver, _ = resolver_for(vault)
    missing = parse_reference("dso://app/missing")
    old = parse_reference("dso://app/db_password@1")
    field = parse_reference("dso://app/db#nope")
    bad_name = parse_reference("dso://app/we:ird")
    good = parse_reference("dso://app/db_password")
    outcomes = resolver.resolve([missing, old, field, bad_name, good])
    assert isinstance(outcomes[good], Resolved)
    for ref, cls, words in [
        (missing, SecretNotFoundError, "no secret named 'app/missing'"),
        (old, SecretNotFoundError, "keeps only the latest value (version 2)"),
        (field, SecretNotFoundError, "no field 'nope'"),
        (bad_name, InvalidSecretNameError, "contains ':'"),
    ]:
        error = outcomes[ref]
        assert isinstance(error, cls), ref
        assert str(ref) in error.message and words in error.message
        assert "CANARY" not in str(error)
    with pytest.raises(SecretNotFoundError, match="app/missing"):
        require(outcomes)


def test_unknown_and_not_yet_served_providers(vault: Vault) -> None:
    resolver, opened = resolver_for(vault, configured={"vault": "vault"})
    unknown = parse_reference("dso://aws:prod/db")
    configured = parse_reference("dso://vault:kv/app")
    outcomes = resolver.resolve([unknown, configured])
    assert opened == [], "no local reference, no vault read"
    first, second = outcomes[unknown], outcomes[configured]
    assert isinstance(first, ProviderNotFoundError) and first.provider == "aws"
    assert "no provider 'aws' is configured" in first.message and first.hint
    assert isinstance(second, ProviderNotFoundError)
    assert "type vault" in second.message
    assert str(first).count("aws") >= 2 and not str(first).startswith("provider 'aws'")


def test_a_missing_vault_is_the_outcome_of_every_local_reference(tmp_path: Path) -> None:
    def open_vault() -> Vault:
        raise VaultNotFoundError("no vault at /x", hint="docker dso init")

    resolver = LocalVaultResolver(open_vault)
    refs = [parse_reference("dso://a/b"), parse_reference("dsofile://c/d")]
    outcomes = resolver.resolve(refs)
    assert all(isinstance(o, VaultNotFoundError) for o in outcomes.values())
    assert resolver.provider_of(refs[0]) == "local"


def test_default_provider_from_configuration(vault: Vault) -> None:
    resolver, _ = resolver_for(vault, default_provider="vault", configured={"vault": "vault"})
    ref = parse_reference("dso://app/db_password")
    assert resolver.provider_of(ref) == "vault"
    assert isinstance(resolver.resolve([ref])[ref], DSOError)


def test_without_configuration_the_default_is_the_local_vault(dso_home: Path) -> None:
    resolver = make_resolver(local_layout())
    ref = parse_reference("dso://app/db_password")
    assert resolver.provider_of(ref) == "local"
    # No vault yet: the outcome says so instead of raising.
    assert isinstance(resolver.resolve([ref])[ref], VaultNotFoundError)
