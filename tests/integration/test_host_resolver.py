"""ProviderHostResolver: references resolved by real provider processes (the local vault's)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel.config import load_config
from kernel.errors import DSOError, ProviderNotFoundError, SecretError, SecretNotFoundError
from kernel.injection.host_resolver import ProviderHostResolver
from kernel.injection.resolver import Resolved, require
from kernel.paths import local_layout
from kernel.reference import parse_reference
from kernel.runtime import Runtime
from kernel.secret_value import SecretValue
from kernel.vault import KeySource, Vault, create_key_file
from tests.integration.provider_host_support import spawned

pytestmark = pytest.mark.integration
__all__ = ["spawned"]

_OPENED: list[Runtime] = []


@pytest.fixture(autouse=True)
def _close_runtimes() -> Iterator[None]:
    yield
    close_runtimes()


def resolver_for(config: Path | None = None) -> ProviderHostResolver:
    """The resolver of a runtime on the local layout (its provider host is the runtime's)."""
    runtime = Runtime.load(local_layout(), config)
    _OPENED.append(runtime)
    return runtime.resolver


def close_runtimes() -> None:
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture
def vault(dso_home: Path) -> Vault:
    layout = local_layout()
    layout.root.mkdir(mode=0o700)
    keys = KeySource(layout.vault_key)
    create_key_file(keys.key_file)
    vault = Vault.create(layout.vault, keys)
    vault.set("app/db_password", SecretValue("CANARY-one"))
    vault.set("app/db_password", SecretValue("CANARY-two"))
    vault.set("app/db", SecretValue('{"user": "app", "password": "CANARY-pw", "port": 5432}'))
    return vault


def test_references_resolve_through_the_local_provider(vault: Vault) -> None:
    resolver = resolver_for()
    refs = [
        parse_reference("dso://app/db_password"),
        parse_reference("dsofile://local:app/db_password"),
        parse_reference("dso://app/db#password"),
        parse_reference("dso://app/db#port"),
        parse_reference("dso://app/db_password@2"),
    ]
    outcomes = resolver.resolve(refs)
    assert list(outcomes) == refs
    values = require(outcomes)
    assert values[refs[0]].value == SecretValue("CANARY-two")
    assert values[refs[0]].fingerprint == "local:2"
    assert values[refs[1]].value == SecretValue("CANARY-two")
    assert values[refs[2]].value == SecretValue("CANARY-pw")
    assert values[refs[3]].value == SecretValue("5432")
    assert values[refs[4]].version == "2"


def test_each_failure_is_per_reference_and_names_it(vault: Vault) -> None:
    resolver = resolver_for()
    missing = parse_reference("dso://app/missing")
    old = parse_reference("dso://app/db_password@1")
    field = parse_reference("dso://app/db#nope")
    unknown = parse_reference("dso://aws:prod/db")
    good = parse_reference("dso://app/db_password")
    outcomes = resolver.resolve([missing, old, field, unknown, good])
    assert isinstance(outcomes[good], Resolved)
    for ref, cls in [
        (missing, SecretNotFoundError),
        (old, SecretNotFoundError),
        (field, SecretError),
        (unknown, ProviderNotFoundError),
    ]:
        error = outcomes[ref]
        assert isinstance(error, cls), (ref, error)
        assert ref.uri() in str(error)
        assert "CANARY" not in str(error)
    assert "no provider 'aws' is configured" in str(outcomes[unknown])
    with pytest.raises(SecretNotFoundError, match="app/missing"):
        require(outcomes)


def test_without_a_vault_every_local_reference_says_how_to_create_one(dso_home: Path) -> None:
    resolver = resolver_for()
    refs = [parse_reference("dso://a/b"), parse_reference("dsofile://c/d")]
    outcomes = resolver.resolve(refs)
    for outcome in outcomes.values():
        assert isinstance(outcome, DSOError)
        assert "docker dso init" in str(outcome)


def test_default_provider_comes_from_the_configuration(dso_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "dso.yaml"
    config.write_text(
        "version: 1\ndefault_provider: other\nproviders:\n  other:\n    type: local\n"
    )
    config.chmod(0o600)
    resolver = resolver_for(config)
    ref = parse_reference("dso://app/db_password")
    assert resolver.provider_of(ref) == "other"
    assert load_config(config).config.default_provider == "other"


def test_a_provider_that_is_down_is_the_outcome_of_its_references(
    vault: Vault, tmp_path: Path
) -> None:
    config = tmp_path / "dso.yaml"
    config.write_text(
        "version: 1\nproviders:\n  vault:\n    type: vault\n"
        "    address: http://127.0.0.1:1\n    token: test-token\n    timeout: 3s\n"
    )
    config.chmod(0o600)
    resolver = resolver_for(config)
    down = parse_reference("dso://vault:kv/app#password")
    local = parse_reference("dso://app/db_password")
    outcomes = resolver.resolve([down, local])
    assert isinstance(outcomes[local], Resolved), "one provider down does not fail the others"
    error = outcomes[down]
    assert isinstance(error, DSOError)
    assert error.exit_code == 7
    assert "vault" in str(error)


def test_prewarm_starts_the_default_provider_once_for_the_next_resolve(
    vault: Vault, spawned: list[int]
) -> None:
    resolver = resolver_for()
    resolver.prewarm()
    wait_until(lambda: len(spawned) == 1)
    ref = parse_reference("dso://app/db_password")
    assert require(resolver.resolve([ref]))[ref].value == SecretValue("CANARY-two")
    assert len(spawned) == 1  # the warmed process answered
    close_runtimes()  # the runtime stops it (reaped: the fixture checks)


def test_prewarm_without_a_resolve_is_closed(vault: Vault, spawned: list[int]) -> None:
    resolver = resolver_for()
    resolver.prewarm()
    wait_until(lambda: len(spawned) == 1)
    close_runtimes()  # the fixture asserts the process was reaped


def test_prewarm_without_a_vault_still_says_how_to_create_one(
    dso_home: Path, spawned: list[int]
) -> None:
    resolver = resolver_for()  # no vault: every reference fails, and says why
    resolver.prewarm()
    ref = parse_reference("dso://app/db_password")
    (outcome,) = resolver.resolve([ref]).values()
    assert isinstance(outcome, DSOError)
    assert "docker dso init" in f"{outcome} {outcome.hint}"
    close_runtimes()


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)
