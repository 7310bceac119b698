"""The PyInstaller-built providers (``make build``), run as the kernel runs them.

The module first brings ``dist/plugins/`` up to date through build/build_providers.py (a no-op
when every bundle's stamp matches its sources, ~0.2 s; a full build takes ~40 s here), then for
each bundle: the cookie refusal a person sees running it by hand, ``--describe``, the SHA256SUMS
check and discovery as the kernel does them, ``make install-providers`` into a fresh plugins
directory, and the whole conformance suite against the frozen executable (found through
``find_command``, so its digest is checked again at exec): ``local`` over a seeded vault,
``azure`` against the HTTPS Key Vault double, ``vault`` against an OpenBao dev server (KV v2
and KV v1) and ``aws`` against a moto server, started and seeded by
tests/contract/cloud_targets.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.conformance import CheckStatus, SuiteReport, render_text, run_suite
from kernel.conformance.seed import seed_local_vault
from kernel.protocol import MAGIC_COOKIE_KEY
from kernel.provider_host import ProviderCommand, discover, find_command, read_manifest
from kernel.provider_host.verify import check
from tests.contract.cloud_targets import TARGETS as SERVER_TARGETS
from tests.contract.cloud_targets import server_target
from tests.contract.test_conformance_azure import NOT_APPLICABLE, run_against_double
from tests.integration.servers import clean_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "build" / "build_providers.py"
PLUGINS = REPO / "dist" / "plugins"
PROVIDERS = ("local", "vault", "aws", "azure")
#: A full build here takes ~40 s; leave room for a slow CI machine.
BUILD_TIMEOUT = 900


def driver(*args: str, timeout: float = BUILD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DRIVER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def built() -> list[str]:
    """Names of the frozen providers, built (or found up to date) for this run."""
    result = driver("build")
    assert result.returncode == 0, f"make build failed:\n{result.stdout}{result.stderr}"
    names = [
        n for n in PROVIDERS if (PLUGINS / f"dso-provider-{n}" / f"dso-provider-{n}").is_file()
    ]
    assert names == list(PROVIDERS), f"not every provider was built: {names}"
    assert driver("status", timeout=60).returncode == 0, "a bundle is stale right after a build"
    return names


def frozen(name: str, built: list[str], env_allow: tuple[str, ...] = ()) -> ProviderCommand:
    assert name in built, f"dso-provider-{name} is not built"
    command = find_command(name, PLUGINS, env_allow=env_allow, environ={})
    assert command.origin == "plugins-dir" and command.sha256, command
    return command


@pytest.mark.parametrize("name", PROVIDERS)
def test_refuses_to_run_by_hand(name: str, built: list[str]) -> None:
    exe = frozen(name, built).argv[0]
    env = {k: v for k, v in os.environ.items() if k != MAGIC_COOKIE_KEY}
    result = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"dso provider '{name}'" in result.stderr
    assert "docker dso providers list" in result.stderr


@pytest.mark.parametrize("name", PROVIDERS)
def test_describe(name: str, built: list[str]) -> None:
    exe = frozen(name, built).argv[0]
    result = subprocess.run([exe, "--describe"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["name"] == name and 1 in doc["protocol_versions"] and "get" in doc["capabilities"]


def test_manifest_and_discovery(built: list[str]) -> None:
    manifest = read_manifest(PLUGINS)
    assert manifest is not None and not manifest.problems
    assert sorted(manifest.entries) == sorted(f"dso-provider-{n}/dso-provider-{n}" for n in built)
    for name in built:
        exe = PLUGINS / f"dso-provider-{name}" / f"dso-provider-{name}"
        assert check(exe, PLUGINS, manifest).ok
    found = discover(PLUGINS, environ={}, include_source=False).found
    assert sorted(found) == sorted(built)
    assert all(item.verified for item in found.values())


def test_install_providers(built: list[str], tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "SHA256SUMS").write_text(f"{'0' * 64}  dso-provider-other/dso-provider-other\n")
    result = driver("install", "--plugins-dir", str(plugins), timeout=120)
    assert result.returncode == 0, result.stderr
    lines = (plugins / "SHA256SUMS").read_text().splitlines()
    assert lines[0].endswith("dso-provider-other/dso-provider-other"), "other lines are kept"
    found = discover(plugins, environ={}, include_source=False).found
    assert sorted(found) == sorted(built)
    # Installing again replaces the bundles and keeps one line per provider.
    assert driver("install", "--plugins-dir", str(plugins), timeout=120).returncode == 0
    assert len((plugins / "SHA256SUMS").read_text().splitlines()) == len(built) + 1


def assert_conforms(report: SuiteReport, not_applicable: set[str]) -> None:
    print(render_text(report))
    failed = [r for r in report.results if r.status is CheckStatus.FAILED]
    assert not failed, "; ".join(f"{r.name}: {r.detail}" for r in failed)
    skipped = {r.name for r in report.results if r.status is CheckStatus.SKIPPED}
    assert skipped <= not_applicable, f"unexpected skips: {sorted(skipped - not_applicable)}"


def test_local_conforms_frozen(built: list[str], tmp_path: Path) -> None:
    fixture = seed_local_vault(tmp_path)
    command = frozen("local", built, fixture.env_allow)
    # local advertises every optional capability, so nothing is left to refuse.
    assert_conforms(run_suite(command, fixture, environ={}), {"unadvertised-methods"})


def test_azure_conforms_frozen(built: list[str], tmp_path: Path) -> None:
    assert_conforms(run_against_double(frozen("azure", built), tmp_path), NOT_APPLICABLE)


#: Checks that cannot apply: no ``watch`` in vault and aws; AWS caps a secret at 64 KiB.
SERVER_NOT_APPLICABLE = {
    "vault-kv2": {"watch"},
    "vault-kv1": {"watch"},
    "aws": {"watch", "large-value"},
}


@pytest.mark.parametrize("target", SERVER_TARGETS)
def test_server_backed_providers_conform_frozen(
    target: str, built: list[str], tmp_path: Path
) -> None:
    name = target.split("-")[0]
    with server_target(target, tmp_path) as (_source, fixture):
        command = frozen(name, built, fixture.env_allow)
        report = run_suite(command, fixture, environ=clean_env(), request_timeout=20.0)
    assert_conforms(report, SERVER_NOT_APPLICABLE[target])
