"""Outcomes of the conformance checks: one :class:`CheckResult` per check, gathered in a
:class:`SuiteReport` that the CLI prints, ``--json`` serialises and pytest asserts on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CheckStatus(StrEnum):
    """How one check ended."""

    #: The provider did what the protocol requires.
    PASSED = "passed"
    #: It did not; ``detail`` says what was expected and what happened.
    FAILED = "failed"
    #: Not applicable (capability not advertised, nothing in the fixture to test it with).
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, outcome, a one-line detail (never a secret value) and duration."""

    name: str
    status: CheckStatus
    detail: str
    #: Seconds the check took.
    duration: float
    #: The protocol section the check verifies, e.g. ``§6.2``.
    section: str = ""

    @property
    def passed(self) -> bool:
        """True unless the check failed: a skipped check does not count against a provider."""
        return self.status is not CheckStatus.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "passed": self.passed,
            "detail": self.detail,
            "duration": round(self.duration, 6),
            "section": self.section,
        }


@dataclass(frozen=True, slots=True)
class SuiteReport:
    """Every check run against one provider command."""

    provider: str
    command: tuple[str, ...]
    results: tuple[CheckResult, ...] = field(default_factory=tuple)
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(result.passed for result in self.results)

    def count(self, status: CheckStatus) -> int:
        return sum(1 for result in self.results if result.status is status)

    def failures(self) -> Sequence[CheckResult]:
        return [result for result in self.results if result.status is CheckStatus.FAILED]

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "command": list(self.command),
            "passed": self.passed,
            "counts": {status.value: self.count(status) for status in CheckStatus},
            "duration": round(self.duration, 6),
            "checks": [result.to_json() for result in self.results],
        }
