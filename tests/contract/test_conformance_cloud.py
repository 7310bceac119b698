"""The conformance suite against the vault and aws providers, run from source, each against its
real server (OpenBao dev server; moto server), with secrets seeded for the run.

Same shape as test_conformance.py: the suite runs once per target (module-scoped), each check
is its own test; checks for capabilities a provider does not announce (``watch``) are skipped.
AWS caps a secret at 64 KiB, so the aws target has no ``large-value`` secret (skipped).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel.conformance import CHECK_NAMES, CheckStatus, SuiteReport, render_text, run_suite
from tests.contract.cloud_targets import TARGETS, aws_fixture, vault_fixture
from tests.integration import servers
from tests.integration.servers import OpenBao, clean_env, provider_command

pytestmark = [pytest.mark.contract, pytest.mark.integration]

# The real-server fixtures live in tests/integration; make them visible here.
openbao = servers.openbao
moto = servers.moto


@pytest.fixture(scope="module", params=TARGETS)
def report(request: pytest.FixtureRequest) -> Iterator[SuiteReport]:
    target: str = request.param
    if target.startswith("vault"):
        bao: OpenBao = request.getfixturevalue("openbao")
        fixture = vault_fixture(bao, 2 if target == "vault-kv2" else 1)
        command = provider_command("vault")
    else:
        fixture = aws_fixture(request.getfixturevalue("moto"))
        command = provider_command("aws")
    result = run_suite(command, fixture, environ=clean_env(), request_timeout=20.0)
    print(render_text(result))
    yield result


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report: SuiteReport, check: str) -> None:
    (result,) = [r for r in report.results if r.name == check]
    if result.status is CheckStatus.SKIPPED:
        pytest.skip(result.detail)
    assert result.status is CheckStatus.PASSED, f"{check} ({result.section}): {result.detail}"


def test_every_check_ran(report: SuiteReport) -> None:
    assert [r.name for r in report.results] == list(CHECK_NAMES)
