"""An extension as a pip-installable package: examples/extensions/dso-change-freeze.

The package is installed with pip (its own pyproject.toml, its `dso` entry point) into a
temporary target that dso sees through PYTHONPATH: the project's venv is never changed. Its own
tests run against the installed copy, then it vetoes a real `docker dso rotate` of a compose
container inside a freeze window, and lets the same rotation run outside it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.compose_support import IMAGE, ComposeProject, docker, project
from tests.integration.rotation_support import wait_for

pytestmark = pytest.mark.integration
__all__ = ["project"]

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "examples" / "extensions" / "dso-change-freeze"
NAME = "change_freeze_windows"

WEB = f"""
services:
  web:
    image: {IMAGE}
    init: true
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - mkdir -p /www && echo "$$MSG" > /www/index.html && exec httpd -f -p 80 -h /www
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 30s
    environment:
      MSG: dso://app/msg
"""


def pip_install(source: Path, target: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def run_tests(source: Path, target: Path) -> str:
    """The package's own tests, against the installed copy; returns pytest's output."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=source,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(source)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


def serves(project: ComposeProject) -> str:
    """What the web container answers (empty while httpd is not listening yet)."""
    done = docker("exec", project.container("web"), "wget", "-q", "-O-", "http://127.0.0.1/")
    return done.stdout if done.returncode == 0 else ""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the pip --target directory, the copy of the package's source it was built from)."""
    root = tmp_path_factory.mktemp("change-freeze")
    source = root / "src-copy"  # pip builds in the source tree: never in the checkout
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "site"
    pip_install(source, target)
    assert (target / "dso_change_freeze").is_dir()
    return target, source


def test_the_packages_own_tests_pass_on_the_installed_copy(installed: tuple[Path, Path]) -> None:
    target, source = installed
    output = run_tests(source, target)
    assert re.search(r"\b(1[0-9]|[2-9][0-9]) passed\b", output), output[-500:]


def write_freeze(path: Path, start: dt.datetime, end: dt.datetime) -> None:
    path.write_text(
        "[[window]]\n"
        'name = "release week"\n'
        f"start = {start:%Y-%m-%dT%H:%M:%SZ}\n"
        f"end = {end:%Y-%m-%dT%H:%M:%SZ}\n"
        'reason = "ask in #release first"\n'
    )


def test_a_freeze_window_vetoes_a_real_rotation_and_outside_it_the_rotation_runs(
    project: ComposeProject, installed: tuple[Path, Path]
) -> None:
    target, _ = installed
    freeze = project.dir / "change-freeze.toml"
    env = {**project.env, "PYTHONPATH": str(target), "DSO_CHANGE_FREEZE_CONFIG": str(freeze)}
    listed = project.dso("extensions", "list", "--json", env=env)
    (ext,) = [e for e in json.loads(listed.stdout)["extensions"] if e["name"] == NAME]
    assert ext["source"] == "entry-point" and ext["status"] == "enabled", ext

    project.set_secret("app/msg", "v1")
    project.write("compose.yaml", WEB)
    project.dso("up", "-d", env=env)
    before = project.container("web")
    assert wait_for(lambda: serves(project) == "v1\n")
    project.set_secret("app/msg", "v2")

    # Inside the window: vetoed, with the window's name, and the container untouched.
    now = dt.datetime.now(dt.UTC)
    write_freeze(freeze, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    vetoed = project.dso("rotate", "web", "--json", ok=False, env=env)
    assert vetoed.returncode != 0, vetoed.stdout
    (result,) = json.loads(vetoed.stdout)["rotations"]
    assert result["status"] == "rolled_back", result
    assert f"vetoed by extension '{NAME}': change freeze 'release week'" in result["error"]
    assert "ask in #release first" in result["error"] and str(freeze) in result["error"]
    assert project.container("web") == before
    assert project.inspect("web")["State"]["Running"]
    assert serves(project) == "v1\n"
    leftovers = docker("ps", "-aq", f"--filter=label=com.docker.compose.project={project.name}")
    assert leftovers.stdout.split() == [before[:12]]
    audit = (Path(project.env["DSO_HOME"]) / "logs" / "audit.jsonl").read_text()
    assert f'"vetoed_by": "{NAME}"' in audit or f'"vetoed_by":"{NAME}"' in audit

    # The window is over: the same rotation runs.
    write_freeze(freeze, now - dt.timedelta(hours=2), now - dt.timedelta(hours=1))
    rotated = project.dso("rotate", "web", "--json", env=env)
    (result,) = json.loads(rotated.stdout)["rotations"]
    assert result["status"] == "completed", result
    assert project.container("web") != before
    assert serves(project) == "v2\n"


def test_the_walk_through_in_the_docs_builds_a_working_package(
    tmp_path: Path, project: ComposeProject
) -> None:
    doc = (ROOT / "docs" / "extension-hooks.md").read_text()
    section = doc[doc.index("## Write and ship one in a few minutes") :]
    section = section[: section.index("\n## ", 5)]
    (pyproject,) = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)
    module, test = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    source = tmp_path / "dso-no-weekends"
    (source / "src" / "dso_no_weekends").mkdir(parents=True)
    (source / "tests").mkdir()
    (source / "pyproject.toml").write_text(pyproject)
    (source / "src" / "dso_no_weekends" / "__init__.py").write_text(module)
    (source / "tests" / "test_no_weekends.py").write_text(test)
    target = tmp_path / "site"
    pip_install(source, target)
    assert "2 passed" in run_tests(source, target)
    env = {**project.env, "PYTHONPATH": str(target)}
    listed = project.dso("extensions", "list", "--json", env=env)
    (ext,) = [e for e in json.loads(listed.stdout)["extensions"] if e["name"] == "no_weekends"]
    assert ext["source"] == "entry-point" and ext["status"] == "enabled", ext
    assert ext["hooks"] == ["dso_before_swap"]
