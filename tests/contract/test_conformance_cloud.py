"""The conformance suite against the vault and aws providers, run from source, each against its
real server (OpenBao dev server; moto server), with secrets seeded for the run.

Same shape as test_conformance.py: the suite runs once per target (module-scoped), each check
is its own test. Neither provider announces ``watch``, and AWS caps a secret at 64 KiB (no
``large-value`` secret): the tests assert exactly those checks did not apply.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel.conformance import CHECK_NAMES, SuiteReport, render_text, run_suite
from tests.contract.cloud_targets import TARGETS, aws_fixture, vault_fixture
from tests.contract.outcome import assert_check
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


NOT_APPLICABLE = {
    "vault-kv2": frozenset({"watch"}),
    "vault-kv1": frozenset({"watch"}),
    "aws": frozenset({"watch", "large-value"}),
}


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report: SuiteReport, check: str, request: pytest.FixtureRequest) -> None:
    target = request.node.callspec.params["report"]
    assert_check(report, check, NOT_APPLICABLE[target])


def test_every_check_ran(report: SuiteReport) -> None:
    assert [r.name for r in report.results] == list(CHECK_NAMES)
