"""The doctor's runner, its JSON document and text output, and docs/doctor.md against the
registry of checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kernel.doctor import CHECK_IDS, CHECKS, Context, Level, Report, Status, run_checks
from kernel.doctor.model import Check, NotChecked, fail, ok, warn
from kernel.errors import VaultKeyError
from kernel.paths import Layout
from tests.conftest import RunDso
from tests.unit.doctor_support import home, make_context

__all__ = ["home"]
DOC = Path(__file__).resolve().parents[2] / "docs" / "doctor.md"


def test_every_check_id_is_documented_and_every_documented_id_exists() -> None:
    text = DOC.read_text()
    documented = re.findall(r"^### `([a-z0-9_.]+)`", text, flags=re.MULTILINE)
    assert sorted(documented) == sorted(CHECK_IDS)
    for check_id in CHECK_IDS:
        section = text.split(f"### `{check_id}`", 1)[1].split("\n### ", 1)[0]
        assert "**Fix" in section, f"{check_id}: say how to fix what it finds"


def test_ids_are_unique_and_dotted() -> None:
    assert len(set(CHECK_IDS)) == len(CHECK_IDS)
    assert all(re.fullmatch(r"[a-z0-9]+\.[a-z0-9_]+", i) for i in CHECK_IDS)
    assert [c.id for c in CHECKS if c.full_only] == ["providers.reachable"]


def _crash(ctx: Context) -> object:
    raise RuntimeError("boom")


def _stand_ins() -> list[Check]:
    def not_checked(ctx: Context) -> object:
        raise NotChecked("Docker is not reachable", see="docker.reachable")

    def refused(ctx: Context) -> object:
        raise VaultKeyError("wrong key for the vault", hint="check DSO_VAULT_PASSPHRASE")

    return [
        Check("t.ok", "", lambda ctx: ok("fine", "looked at x")),
        Check("t.warn", "", lambda ctx: warn("meh", "because", "do y")),
        Check("t.crash", "", _crash),  # type: ignore[arg-type]
        Check("t.skip", "", not_checked),  # type: ignore[arg-type]
        Check("t.error", "", refused),  # type: ignore[arg-type]
        Check("t.full", "", lambda ctx: fail("x"), full_only=True),
    ]


def test_the_runner_isolates_a_crashing_check_and_reports_in_order(home: Layout) -> None:
    report = run_checks(make_context(home), _stand_ins())
    assert [(r.id, r.status) for r in report.results] == [
        ("t.ok", Status.OK),
        ("t.warn", Status.WARN),
        ("t.crash", Status.FAIL),
        ("t.skip", Status.WARN),
        ("t.error", Status.FAIL),
    ]
    crash, skip, error = report.results[2:]
    assert crash.finding == "the check itself failed (RuntimeError): a bug in dso"
    assert skip.finding == "not checked: Docker is not reachable (see docker.reachable)"
    assert skip.fix == "fix docker.reachable first"
    assert (error.finding, error.fix) == ("wrong key for the vault", "check DSO_VAULT_PASSPHRASE")
    assert not report.ok and [r.id for r in report.failed()] == ["t.crash", "t.error"]


def test_the_json_document(home: Layout) -> None:
    basic = run_checks(make_context(home), _stand_ins()[:2]).to_dict()
    assert basic["level"] == "basic" and basic["ok"] is True and basic["mode"] == "local"
    assert basic["checks"][1] == {
        "id": "t.warn",
        "status": "warn",
        "finding": "meh",
        "detail": None,
        "fix": None,
        "seconds": basic["checks"][1]["seconds"],
    }
    full = run_checks(make_context(home, level=Level.FULL), _stand_ins()).to_dict()
    assert [c["id"] for c in full["checks"]][-1] == "t.full"
    assert full["checks"][1]["detail"] == "because" and full["checks"][1]["fix"] == "do y"
    assert full["ok"] is False


@pytest.fixture
def fake_report(monkeypatch: pytest.MonkeyPatch, home: Layout) -> list[Check]:
    """``docker dso doctor`` runs these checks instead of the registry's."""
    import kernel.doctor

    checks: list[Check] = []

    def run(ctx: Context) -> Report:
        return run_checks(ctx, checks)

    monkeypatch.setattr(kernel.doctor, "run_checks", run)
    return checks


def test_the_command_exits_1_on_a_failure_and_0_on_warnings(
    run_dso: RunDso, fake_report: list[Check]
) -> None:
    fake_report += _stand_ins()[:2]
    done = run_dso("doctor")
    assert done.exit_code == 0, done.stderr
    assert "  warn  t.warn  meh" in done.stdout
    assert "2 checks: 1 ok, 1 warning(s), 0 failure(s)" in done.stdout
    assert "why:" not in done.stdout
    fake_report.append(Check("t.bad", "", lambda ctx: fail("broken", "the cause", "the fix")))
    done = run_dso("doctor")
    assert done.exit_code == 1
    assert "  FAIL  t.bad   broken" in done.stdout
    assert "1 check(s) failed: t.bad; --level full shows the fixes" in done.stderr
    done = run_dso("doctor", "--level", "full")
    assert "why: the cause" in done.stdout and "fix: the fix" in done.stdout
    assert "info: looked at x" in done.stdout
    done = run_dso("doctor", "--json")
    assert done.exit_code == 1
    doc = json.loads(done.stdout)
    assert [c["status"] for c in doc["checks"]] == ["ok", "warn", "fail"]
