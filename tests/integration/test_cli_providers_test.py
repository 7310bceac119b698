"""``docker dso providers test``: the conformance kit from the command line, on real processes.

The command lives in kernel/cli/providers_test.py, attached to the ``providers`` group.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from kernel.conformance import CHECK_NAMES
from tests.conftest import CliResult, RunDso

pytestmark = pytest.mark.integration


@pytest.fixture
def run_test(run_dso: RunDso) -> RunDso:
    def _run(*args: str) -> CliResult:
        return run_dso("providers", "test", *args)

    return _run


def wrapper(tmp_path: Path, module: str, name: str, **env: str) -> Path:
    """An executable ``dso-provider-<name>`` script running ``module`` from this checkout."""
    exports = "".join(f"export {key}={value}\n" for key, value in env.items())
    script = tmp_path / f"dso-provider-{name}"
    script.write_text(f'#!/bin/sh\n{exports}exec {sys.executable} -m {module} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_local_without_a_fixture_uses_a_throwaway_vault(run_test: RunDso, dso_home: Path) -> None:
    result = run_test("local")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("testing provider 'local': ")
    assert any(line.startswith("  ✓ handshake ") for line in lines)
    assert any(line.startswith("  ✓ watch ") for line in lines)
    assert "provider 'local' conforms to protocol 1" in lines[-1]
    assert not dso_home.exists()  # nothing touched the user's vault


def test_json_report(run_test: RunDso) -> None:
    result = run_test("local", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["passed"] is True
    assert [check["name"] for check in doc["checks"]] == list(CHECK_NAMES)
    assert doc["counts"]["failed"] == 0


def test_a_path_and_a_fixture(run_test: RunDso, tmp_path: Path) -> None:
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps(
            {
                "settings": {"secrets": {"app/db": "pw-1", "app/json": {"fields": {"u": "x"}}}},
                "secrets": [
                    {"path": "app/db", "value": "pw-1"},
                    {"path": "app/json", "field": "u", "value": "x"},
                ],
                "missing": "app/none",
            }
        )
    )
    program = wrapper(tmp_path, "tests.fakes.echo_provider", "echo")
    result = run_test(
        str(program),
        "--fixture",
        str(fixture),
        "--check",
        "handshake",
        "--check",
        "get",
        "--check",
        "not-found",
    )
    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.stdout.splitlines()[1:-1]] == [
        "handshake",
        "host-start",  # what get builds on runs too
        "get",
        "not-found",
    ]


def test_a_wrong_expected_value_fails_with_exit_7_and_no_values(
    run_test: RunDso, tmp_path: Path, canary: str
) -> None:
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps(
            {
                "settings": {"secrets": {"app/db": canary}},
                "secrets": [{"path": "app/db", "value": canary + "-expected"}],
                "missing": "app/none",
            }
        )
    )
    program = wrapper(tmp_path, "tests.fakes.echo_provider", "echo")
    result = run_test(str(program), "--fixture", str(fixture), "--check", "get", "--json")
    assert result.exit_code == 7
    (check,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "get"]
    assert check["status"] == "failed"
    size = len(canary)
    assert f"app/db: got {size} bytes, expected {size + 9} other bytes" in check["detail"]
    assert canary not in result.output


def test_a_misbehaving_provider_is_reported(run_test: RunDso, tmp_path: Path) -> None:
    program = wrapper(
        tmp_path, "tests.fakes.misbehaving_provider", "broken", DSO_FAKE_MODE="bad-cookie"
    )
    fixture = tmp_path / "fixture.json"
    fixture.write_text(json.dumps({"secrets": [{"path": "a", "value": "v"}], "missing": "b"}))
    result = run_test(str(program), "--fixture", str(fixture), "--check", "handshake")
    assert result.exit_code == 7
    assert "  ✗ handshake" in result.stdout
    assert "magic cookie" in result.stdout
    assert "does NOT conform" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("./no-such-provider",), 2, "is not an executable file"),
        (("Not A Name",), 2, "neither a provider name"),
        (("local", "--check", "teleport"), 2, "unknown check 'teleport'"),
        (("nosuchprovider",), 7, "no provider program dso-provider-nosuchprovider"),
    ],
)
def test_usage_errors(run_test: RunDso, args: tuple[str, ...], code: int, fragment: str) -> None:
    result = run_test(*args)
    assert result.exit_code == code, result.output
    assert fragment in result.stderr


def test_a_third_party_provider_needs_a_fixture(run_test: RunDso, tmp_path: Path) -> None:
    program = wrapper(tmp_path, "tests.fakes.echo_provider", "echo")
    result = run_test(str(program))
    assert result.exit_code == 2
    assert "needs --fixture FILE" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = run_test(str(program), "--fixture", str(bad))
    assert result.exit_code == 3
    assert "secrets" in result.stderr


def test_a_fixture_change_command_drives_the_watch_check(run_test: RunDso, tmp_path: Path) -> None:
    from kernel.conformance import seed_local_vault

    seeded = seed_local_vault(tmp_path)
    rotate = tmp_path / "rotate.py"
    rotate.write_text(
        "from pathlib import Path\n"
        "from kernel.secret_value import SecretValue\n"
        "from kernel.vault import KeySource, Vault\n"
        "here = Path(__file__).parent\n"
        "vault = Vault.open(here / 'vault.enc', KeySource(here / 'vault.key'))\n"
        "vault.set('conformance/plain', SecretValue(b'rotated'))\n"
    )
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps(
            {
                "settings": dict(seeded.settings),
                "secrets": [{"path": "conformance/json", "field": "port", "value": "5432"}],
                "missing": "conformance/missing",
                "change": {
                    "path": "conformance/plain",
                    "command": [sys.executable, "rotate.py"],
                    "timeout": 5,
                },
            }
        )
    )
    result = run_test("local", "--fixture", str(fixture), "--check", "watch", "--json")
    assert result.exit_code == 0, result.output
    (watch,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "watch"]
    assert watch["detail"].startswith("changed for 'conformance/plain'")
