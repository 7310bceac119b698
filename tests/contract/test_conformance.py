"""The provider conformance suite (kernel.conformance) against every provider we ship, the echo
fake, and a third-party provider named by DSO_CONTRACT_PROVIDER.

The suite runs once per provider (module-scoped); each check is its own test, so a report
names exactly what broke. A check the suite skips (a capability the provider does not
advertise) is reported as skipped, never as passed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel.conformance import CHECK_NAMES, CheckStatus, SuiteReport, render_text, run_suite
from tests.contract.targets import Target, targets

pytestmark = [pytest.mark.contract, pytest.mark.integration]


@pytest.fixture(scope="module", params=targets(), ids=lambda target: target.id)
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SuiteReport]:
    target: Target = request.param
    command, fixture = target.build(tmp_path_factory.mktemp(f"contract-{target.id}"))
    result = run_suite(command, fixture)
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
