"""How one conformance check's result becomes a test outcome.

A check that does not apply to a provider (a capability it does not advertise, a value larger
than its back end stores) is not a pass and not a silent skip: each target declares which checks
do not apply, and the test asserts the suite agreed — so a provider that suddenly advertises
``watch`` (or stops passing a check) fails the test.
"""

from __future__ import annotations

from collections.abc import Collection

import pytest

from kernel.conformance import CheckStatus, SuiteReport


def assert_check(report: SuiteReport, check: str, not_applicable: Collection[str] | None) -> None:
    """``not_applicable=None`` is for third-party targets, whose capabilities we cannot know."""
    (result,) = [r for r in report.results if r.name == check]
    if not_applicable is None and result.status is CheckStatus.SKIPPED:
        pytest.skip(result.detail)
    if not_applicable is not None and check in not_applicable:
        assert result.status is CheckStatus.SKIPPED, (
            f"{check} was expected not to apply, but it {result.status.value}: {result.detail}"
        )
        return
    assert result.status is CheckStatus.PASSED, f"{check} ({result.section}): {result.detail}"
