"""Frozen (PyInstaller onedir) providers installed with ``docker dso providers install``, through
the real ``dso`` executable of the venv:

- dso's own vault, aws and azure bundles, as ``make build`` leaves them in ``dist/plugins/``
  (each checked against ``dist/plugins/SHA256SUMS``; brought up to date by
  build/build_providers.py, a no-op when tests/e2e/test_frozen_providers.py already built them);
- a project made by ``docker dso providers new``, built by its own ``make build`` (PyInstaller,
  ~8 s here), installed from its ``dist/`` directory (a SHA256SUMS over every file) and from
  the ``make dist`` tarball, then passing the conformance kit as the installed program.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DSO = BIN / "dso"
PLUGINS = REPO / "dist" / "plugins"
#: build/build_providers.py's lock (LOCK there): one PyInstaller build at a time.
BUILD_LOCK = REPO / ".build" / "build.lock"


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSO_")}
    env["DSO_HOME"] = str(home)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def dso(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DSO), *args],
        env=environment(home),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def listed(home: Path) -> dict[str, dict[str, object]]:
    done = dso(home, "providers", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {p["name"]: p for p in json.loads(done.stdout)["providers"]}


def test_the_release_bundles_install_verified(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, str(REPO / "build" / "build_providers.py"), "build"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    home = tmp_path / "home"
    for name in ("vault", "aws", "azure"):
        done = dso(home, "providers", "install", str(PLUGINS / f"dso-provider-{name}"), "--json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["name"] == name and doc["source"]["checksums"] == "SHA256SUMS"
        assert doc["protocol"] == 1 and doc["files"] > 10
    found = listed(home)
    for name in ("vault", "aws", "azure"):
        assert found[name]["origin"] == "plugins-dir" and found[name]["verified"] is True
    # Each starts, handshakes and stops from there (configure is skipped: not configured).
    checked = dso(home, "providers", "check", "vault", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["steps"][0]["detail"].startswith(
        f"plugins-dir: {home}/plugins/dso-provider-vault/dso-provider-vault"
    )


def test_a_scaffolded_provider_builds_installs_and_conforms_frozen(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = tmp_path / "dso-provider-filestore"
    assert dso(home, "providers", "new", "filestore", "--dir", str(project)).returncode == 0
    make = ["make", f"PYTHON={sys.executable}", f"DSO={DSO}"]
    env = environment(home)
    # Under build/build_providers.py's lock: PyInstaller's cache is shared with dso's builds.
    BUILD_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with BUILD_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = subprocess.run(
            [*make, "dist"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    assert built.returncode == 0, built.stdout + built.stderr
    bundle = project / "dist" / "dso-provider-filestore"
    assert (bundle / "dso-provider-filestore").is_file()

    done = dso(home, "providers", "install", str(bundle), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["source"]["checksums"] == "SHA256SUMS" and doc["files"] > 10
    assert listed(home)["filestore"]["verified"] is True

    # The installed (frozen) program passes the kit, found by name in the plugins directory.
    kit = dso(
        home,
        "providers",
        "test",
        "filestore",
        "--fixture",
        "conformance/fixture.json",
        "--json",
        cwd=project,
    )
    report = json.loads(kit.stdout)
    assert kit.returncode == 0 and report["passed"], kit.stdout + kit.stderr
    assert report["command"] == [f"{home}/plugins/dso-provider-filestore/dso-provider-filestore"]

    tarball = project / "dist" / "dso-provider-filestore-0.1.0.tar.gz"
    again = dso(home, "providers", "install", str(tarball), "--force", "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["action"] == "replaced" and doc["source"]["kind"] == "tarball"
    assert doc["replaced_version"] == "0.1.0"
    assert dso(home, "providers", "remove", "filestore").returncode == 0
    assert sorted(p.name for p in (home / "plugins").iterdir()) == []
