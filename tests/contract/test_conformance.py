"""The provider conformance suite (kernel.conformance) against every provider we ship, the echo
fake, and a third-party provider named by DSO_CONTRACT_PROVIDER.

The suite runs once per provider (module-scoped); each check is its own test, so a report
names exactly what broke. Each target declares the checks that do not apply to it
(tests/contract/outcome.py); the test asserts the suite agreed, and nothing is skipped, except
the unknown capabilities of a third-party provider.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel.conformance import CHECK_NAMES, SuiteReport, render_text, run_suite
from tests.contract.outcome import assert_check
from tests.contract.targets import Target, targets

pytestmark = [pytest.mark.contract, pytest.mark.integration]


@pytest.fixture(scope="module", params=targets(), ids=lambda target: target.id)
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SuiteReport, Target]]:
    target: Target = request.param
    command, fixture = target.build(tmp_path_factory.mktemp(f"contract-{target.id}"))
    result = run_suite(command, fixture)
    print(render_text(result))
    yield result, target


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_conformance(report: tuple[SuiteReport, Target], check: str) -> None:
    result, target = report
    assert_check(result, check, target.not_applicable)


def test_every_check_ran(report: tuple[SuiteReport, Target]) -> None:
    assert [r.name for r in report[0].results] == list(CHECK_NAMES)
