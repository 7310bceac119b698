"""The provider conformance suite against the azure provider from source, talking to the HTTPS
Key Vault double through the real SecretClient and the real client-secret credential.

The fixture uses Key Vault's own names (``list`` returns those). Key Vault values are at most
25 KiB, so the suite's large-value check (≥ 512 KiB) is skipped; the provider has no ``watch``
(Key Vault pushes changes only through Event Grid), so that check is skipped too.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.conformance import (
    CHECK_NAMES,
    ExpectedSecret,
    Fixture,
    SuiteReport,
    render_text,
    run_suite,
)
from kernel.provider_host import ProviderCommand
from tests.contract.outcome import assert_check
from tests.fakes.azure_keyvault_double import (
    MAX_VALUE,
    KeyVaultDouble,
    clean_environ,
    provider_settings,
    running_double,
)

pytestmark = [pytest.mark.contract, pytest.mark.integration]

SOURCE = ProviderCommand("azure", (sys.executable, "-m", "providers.azure"), "source")
#: Checks that cannot apply to Key Vault (see the module docstring).
NOT_APPLICABLE = {"large-value", "watch"}


def seed_double(double: KeyVaultDouble) -> Fixture:
    """Random secrets in the double, and the fixture naming them."""
    plain = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(18)
    biggest = secrets.token_hex(MAX_VALUE // 2)  # exactly Key Vault's 25 KiB limit
    double.set_secret("conformance-plain", plain)
    double.set_secret(
        "conformance-json", json.dumps({"user": "c", "password": password, "port": 5432})
    )
    double.set_secret("conformance-biggest", biggest)
    return Fixture(
        settings=provider_settings(double),
        secrets=(
            ExpectedSecret("conformance-plain", value=plain.encode()),
            ExpectedSecret("conformance-json", "password", password.encode()),
            ExpectedSecret("conformance-json", "port", b"5432"),
            ExpectedSecret("conformance-biggest", value=biggest.encode()),
        ),
        missing="conformance-missing",
    )


def run_against_double(command: ProviderCommand, directory: Path) -> SuiteReport:
    """Start a double in ``directory``, seed it, run the whole suite against ``command``."""
    with running_double(directory) as double:
        return run_suite(command, seed_double(double), environ=clean_environ())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteReport]:
    result = run_against_double(SOURCE, tmp_path_factory.mktemp("contract-azure"))
    print(render_text(result))
    yield result


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report: SuiteReport, check: str) -> None:
    assert_check(report, check, NOT_APPLICABLE)
