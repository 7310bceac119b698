"""``docker dso providers new NAME``: the generated project passes the conformance kit and its
own tests before anyone edits it, and is a clean Python project (ruff).

The PyInstaller build of the generated project (``make build``, ~8 s here) is not run in the
suite; tests/unit/test_provider_scaffold.py checks the spec and Makefile it gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunDso

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def project(run_dso: RunDso, tmp_path: Path) -> Path:
    result = run_dso("providers", "new", "team-store-x", "--dir", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["name"] == "team-store-x" and doc["module"] == "dso_provider_team_store_x"
    return Path(doc["directory"])


def test_the_scaffold_passes_the_conformance_kit(
    run_dso: RunDso, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `make conformance` runs it: from the project, where the fixture's directory is.
    monkeypatch.chdir(project)
    result = run_dso(
        "providers",
        "test",
        "./dso-provider-team-store-x",
        "--fixture",
        "conformance/fixture.json",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert report["passed"] and report["provider"] == "team-store-x"
    assert {name for name, status in statuses.items() if status == "skipped"} == {
        "large-value",
        "watch",
    }
    assert statuses["get"] == statuses["versions"] == statuses["list"] == "passed"


def test_the_generated_tests_pass_and_the_code_is_clean(project: Path) -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "6 passed" in tests.stdout
    for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        lint = subprocess.run(
            [str(VENV_BIN / "ruff"), *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_an_existing_directory_is_never_overwritten(run_dso: RunDso, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    result = run_dso("providers", "new", "files", "--dir", str(target))
    assert result.exit_code == 2
    assert f"{target} already exists; nothing was written" in result.stderr
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".taken")]
