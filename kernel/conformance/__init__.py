"""The provider conformance kit: one suite of protocol checks, run against any provider command.

Used by ``tests/contract`` (every built-in provider, plus a third-party one named by
``DSO_CONTRACT_PROVIDER``) and by ``docker dso providers test`` for provider authors. The check
list and the fixture format are in docs/provider-protocol.md, "Conformance kit".
"""

from __future__ import annotations

from kernel.conformance.fixture import ExpectedSecret, Fixture, load_fixture, parse_fixture
from kernel.conformance.report import render_text
from kernel.conformance.results import CheckResult, CheckStatus, SuiteReport
from kernel.conformance.seed import seed_local_vault
from kernel.conformance.suite import CHECK_NAMES, CHECKS, run_suite

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "CheckResult",
    "CheckStatus",
    "ExpectedSecret",
    "Fixture",
    "SuiteReport",
    "load_fixture",
    "parse_fixture",
    "render_text",
    "run_suite",
    "seed_local_vault",
]
