"""kernel.conformance without processes: the fixture format, results, the report, the check list."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from kernel.conformance import (
    CHECK_NAMES,
    CHECKS,
    CheckResult,
    CheckStatus,
    ExpectedSecret,
    Fixture,
    SuiteReport,
    load_fixture,
    parse_fixture,
    render_text,
)
from kernel.conformance.fixture import LARGE_VALUE
from kernel.conformance.suite import with_prerequisites
from kernel.errors import ConfigError
from tests.conftest import REPO

SECRET = "s3cr3t-FIXTURE-value"


def good_doc() -> dict[str, Any]:
    return {
        "settings": {"address": "https://bao:8200"},
        "env": ["VAULT_TOKEN"],
        "secrets": [
            {"path": "app/db", "field": "password", "value": SECRET},
            {"path": "app/blob", "value_base64": base64.b64encode(b"\x00\xff").decode()},
            {"path": "app/big", "sha256": hashlib.sha256(b"x" * 10).hexdigest(), "size": 10},
        ],
        "missing": {"path": "app/nothing"},
        "change": {"path": "app/db", "command": ["./rotate.sh", "app/db"], "timeout": 3},
    }


def test_a_complete_fixture_parses(tmp_path: Path) -> None:
    fixture = parse_fixture(good_doc(), tmp_path / "f.json")
    assert fixture.settings == {"address": "https://bao:8200"}
    assert fixture.env_allow == ("VAULT_TOKEN",)
    assert fixture.secrets[0] == ExpectedSecret("app/db", "password", SECRET.encode())
    assert fixture.secrets[1].value == b"\x00\xff"
    assert fixture.secrets[2].size == 10
    assert fixture.missing == "app/nothing"
    assert fixture.change_path == "app/db"
    assert fixture.change_timeout == 3.0
    assert callable(fixture.mutate)


def test_missing_may_be_a_plain_string(tmp_path: Path) -> None:
    doc = {"secrets": [{"path": "a", "value": "v"}], "missing": "b"}
    fixture = parse_fixture(doc, tmp_path / "f.json")
    assert fixture.missing == "b"
    assert fixture.mutate is None
    assert fixture.settings == {}


def _broken(**changes: Any) -> dict[str, Any]:
    doc = good_doc()
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "key", "fragment"),
    [
        ([1, 2], "(top level)", "JSON object"),
        (_broken(extra=1), "extra", "unknown key"),
        (_broken(settings=[1]), "settings", "must be an object"),
        (_broken(env="VAULT_TOKEN"), "env", "array of environment variable names"),
        (_broken(secrets=[]), "secrets", "non-empty array"),
        (_broken(secrets=[{"value": "v"}]), "secrets[0]", "non-empty 'path'"),
        (_broken(secrets=[{"path": "a"}]), "secrets[0]", "exactly one of"),
        (_broken(secrets=[{"path": "a", "value": 1}]), "secrets[0].value", "must be a string"),
        (
            _broken(secrets=[{"path": "a", "value_base64": "!!"}]),
            "secrets[0].value_base64",
            "base64",
        ),
        (
            _broken(secrets=[{"path": "a", "sha256": "ab", "size": 1}]),
            "secrets[0].sha256",
            "64 hex",
        ),
        (_broken(secrets=[{"path": "a", "sha256": "a" * 64}]), "secrets[0].size", "length"),
        (
            _broken(secrets=[{"path": "a", "field": "", "value": "v"}]),
            "secrets[0].field",
            "non-empty",
        ),
        (_broken(missing=None), "missing", "does not exist"),
        (_broken(change={"path": "a", "command": "rotate"}), "change.command", "non-empty array"),
        (_broken(change={"command": ["x"]}), "change.path", "must name the secret"),
        (
            _broken(change={"path": "a", "command": ["x"], "timeout": 0}),
            "change.timeout",
            "positive",
        ),
    ],
)
def test_bad_fixtures_name_the_key(doc: Any, key: str, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_fixture(doc, tmp_path / "f.json")
    assert caught.value.key == key
    assert fragment in caught.value.message
    assert str(tmp_path / "f.json") in caught.value.message
    assert SECRET not in caught.value.message


def test_load_fixture_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the fixture"):
        load_fixture(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_fixture(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(good_doc()))
    assert load_fixture(good).missing == "app/nothing"


def test_mismatch_describes_sizes_never_values() -> None:
    secret = ExpectedSecret("app/db", "password", SECRET.encode())
    assert secret.mismatch(SECRET.encode()) is None
    problem = secret.mismatch(b"other-value")
    assert problem is not None and "app/db#password" in problem
    assert SECRET not in problem and "other-value" not in problem
    digest = ExpectedSecret("a", sha256=hashlib.sha256(b"abc").hexdigest().upper(), size=3)
    assert digest.mismatch(b"abc") is None
    assert "SHA-256" in (digest.mismatch(b"abd") or "")
    assert "expected 3" in (digest.mismatch(b"abcd") or "")


def test_large_and_small_secrets() -> None:
    big = ExpectedSecret("big", sha256="0" * 64, size=LARGE_VALUE)
    small = ExpectedSecret("small", value=b"v")
    fixture = Fixture({}, (small, big), "missing")
    assert fixture.large is big
    assert list(fixture.small) == [small]
    only_small = Fixture({}, (small,), "missing")
    assert only_small.large is None
    with pytest.raises(ValueError, match="at least one"):
        Fixture({}, (), "missing")


def result(name: str, status: CheckStatus, detail: str = "why") -> CheckResult:
    return CheckResult(name, status, detail, 0.012, "§5")


def test_report_text_and_json() -> None:
    report = SuiteReport(
        "mine",
        ("./dso-provider-mine",),
        (
            result("handshake", CheckStatus.PASSED, "ok"),
            result("list", CheckStatus.SKIPPED, "not advertised"),
            result("get", CheckStatus.FAILED, "app/db: expected not_found"),
        ),
        1.5,
    )
    assert not report.passed
    text = render_text(report)
    assert "  ✓ handshake" in text
    assert "  - list" in text and "skipped: not advertised" in text
    assert "  ✗ get" in text and "12 ms" in text
    assert text.splitlines()[-1] == (
        "provider 'mine' does NOT conform to protocol 1: 1 passed, 1 failed, 1 skipped in 1.50 s"
    )
    doc = report.to_json()
    assert doc["passed"] is False
    assert doc["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert [c["status"] for c in doc["checks"]] == ["passed", "skipped", "failed"]
    skipped_only = SuiteReport("x", ("x",), (result("list", CheckStatus.SKIPPED),))
    assert skipped_only.passed


def test_check_names_are_unique_and_documented() -> None:
    assert len(set(CHECK_NAMES)) == len(CHECK_NAMES)
    docs = (REPO / "docs" / "provider-protocol.md").read_text()
    kit = docs[docs.index("## Conformance kit") :]
    for check in CHECKS:
        assert check.run.__doc__, check.name
        assert f"`{check.name}`" in kit, f"check {check.name!r} missing from the docs"


def test_prerequisites_are_added_transitively() -> None:
    assert with_prerequisites({"versions"}) == {"versions", "get", "host-start"}
    assert with_prerequisites({"ping"}) == {"ping", "configure", "handshake"}
    assert with_prerequisites({"describe"}) == {"describe"}
    with pytest.raises(ValueError, match="unknown checks"):
        with_prerequisites({"teleport"})
    names = list(CHECK_NAMES)
    for check in CHECKS:  # a check only builds on checks that run before it
        assert all(names.index(need) < names.index(check.name) for need in check.needs)
