"""``docker dso providers install|remove`` on real programs: a bundle directory, a tarball and a
single executable (wrappers around the echo fake provider), each then run by dso from the
plugins directory; a tampered tarball and an unsupported protocol refused with nothing left.

The unit tests (tests/unit/test_provider_install.py) cover the manifest edits and every
refusal with a stub ``--describe``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import time
from pathlib import Path

import pytest

from kernel.provider_host.verify import MANIFEST_NAME, sha256_file
from tests.conftest import RunDso
from tests.integration.provider_host_support import ECHO

pytestmark = pytest.mark.integration

WRAPPER = f'#!/bin/sh\nexec {sys.executable} {ECHO} "$@"\n'
OTHER_LINE = f"{'a' * 64}  dso-provider-other\n"


@pytest.fixture
def plugins(dso_home: Path) -> Path:
    """The local layout's plugins directory, with a manifest line of another provider."""
    directory = dso_home / "plugins"
    directory.mkdir(parents=True)
    (directory / MANIFEST_NAME).write_text(OTHER_LINE)
    return directory


def echo_bundle(root: Path) -> Path:
    """``root/dso-provider-echo/`` (wrapper + a data file), ``root/SHA256SUMS`` listing both."""
    top = root / "dso-provider-echo"
    top.mkdir(parents=True)
    exe = top / top.name
    exe.write_text(WRAPPER)
    exe.chmod(0o755)
    (top / "lib.dat").write_bytes(b"library bytes\n")
    (root / MANIFEST_NAME).write_text(
        f"{sha256_file(exe)}  dso-provider-echo/dso-provider-echo\n"
        f"{sha256_file(top / 'lib.dat')}  dso-provider-echo/lib.dat\n"
    )
    return top


def make_tarball(root: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        archive.add(root, arcname="echo-1.0.0")
    return path


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
        for p in sorted(directory.rglob("*"))
    }


def list_json(run_dso: RunDso) -> dict[str, dict[str, object]]:
    result = run_dso("providers", "list", "--json")
    assert result.exit_code == 0, result.output
    return {item["name"]: item for item in json.loads(result.stdout)["providers"]}


def test_a_bundle_directory_installs_runs_and_is_removed(
    run_dso: RunDso, plugins: Path, tmp_path: Path, canary: str
) -> None:
    top = echo_bundle(tmp_path / "dist")
    result = run_dso("providers", "install", str(top), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["action"] == "installed" and doc["name"] == "echo" and doc["protocol"] == 1
    assert doc["source"] == {"kind": "directory", "checksums": "SHA256SUMS"}
    assert doc["files"] == 2
    assert (plugins / "dso-provider-echo" / "lib.dat").read_bytes() == b"library bytes\n"
    found = list_json(run_dso)["echo"]
    assert found["origin"] == "plugins-dir" and found["verified"] is True
    assert found["version"] == "1.0.0"

    # dso runs it from there: a configured provider of that type fetches through it.
    config = tmp_path / "dso.yaml"
    config.write_text(
        f"version: 1\nproviders:\n  team:\n    type: echo\n    secrets:\n      app/t: {canary}\n"
    )
    config.chmod(0o600)
    fetched = run_dso("-c", str(config), "fetch", "dso://team:app/t", "--json")
    assert fetched.exit_code == 0, fetched.output
    assert canary not in fetched.output
    assert json.loads(fetched.stdout)["provider"] == "team"

    refused = run_dso("-c", str(config), "providers", "remove", "echo")
    assert refused.exit_code == 7
    assert "dso.yaml configures team with this program" in refused.stderr
    assert "--force" in refused.stderr
    removed = run_dso("-c", str(config), "providers", "remove", "echo", "--force", "--json")
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["manifest_lines_removed"] == 1
    assert snapshot(plugins) == {MANIFEST_NAME: OTHER_LINE.encode()}


def test_a_tarball_installs_and_a_tampered_one_leaves_nothing(
    run_dso: RunDso, plugins: Path, tmp_path: Path
) -> None:
    root = tmp_path / "dist"
    top = echo_bundle(root)
    good = make_tarball(root, tmp_path / "echo-1.0.0.tar.gz")
    (top / "lib.dat").write_bytes(b"library bytes, altered after the sums were written\n")
    bad = make_tarball(root, tmp_path / "echo-tampered.tar.gz")

    before = snapshot(plugins)
    refused = run_dso("providers", "install", str(bad))
    assert refused.exit_code == 7, refused.output
    assert "checksum mismatch for dso-provider-echo/lib.dat" in refused.stderr
    assert "nothing was installed" in refused.stderr
    assert snapshot(plugins) == before

    result = run_dso("providers", "install", str(good))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("installed echo 1.0.0: protocol 1, get,")
    assert "checked against the source's SHA256SUMS" in result.stdout
    assert list_json(run_dso)["echo"]["verified"] is True
    checked = run_dso("providers", "check", "echo")
    assert checked.exit_code == 0, checked.output


def test_a_single_file_replace_with_force_and_remove_restores(
    run_dso: RunDso, plugins: Path, tmp_path: Path
) -> None:
    before = snapshot(plugins)
    exe = tmp_path / "build-output"
    exe.write_text(WRAPPER)
    exe.chmod(0o755)
    result = run_dso("providers", "install", str(exe))
    assert result.exit_code == 0, result.output
    assert "digest computed: the source had no SHA256SUMS" in result.stdout
    digest = hashlib.sha256(exe.read_bytes()).hexdigest()
    assert (plugins / MANIFEST_NAME).read_text() == OTHER_LINE + f"{digest}  dso-provider-echo\n"

    again = run_dso("providers", "install", str(exe))
    assert again.exit_code == 7
    assert "is already installed (version 1.0.0); the source is version 1.0.0" in again.stderr
    assert "hint: pass --force to replace it" in again.stderr

    exe.write_text(WRAPPER + "# rebuilt\n")
    forced = run_dso("providers", "install", str(exe), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    doc = json.loads(forced.stdout)
    assert doc["action"] == "replaced" and doc["replaced_version"] == "1.0.0"
    assert doc["sha256"] == sha256_file(plugins / "dso-provider-echo")
    assert list_json(run_dso)["echo"]["verified"] is True

    removed = run_dso("providers", "remove", "echo")
    assert removed.exit_code == 0, removed.output
    assert snapshot(plugins) == before
    missing = run_dso("providers", "remove", "echo")
    assert missing.exit_code == 7 and "no dso-provider-echo in" in missing.stderr


def test_an_unsupported_protocol_is_refused(run_dso: RunDso, plugins: Path, tmp_path: Path) -> None:
    future = tmp_path / "dso-provider-future"
    describe = {"name": "future", "version": "9.0", "protocol_versions": [7], "capabilities": []}
    future.write_text(f"#!/bin/sh\necho '{json.dumps(describe)}'\n")
    future.chmod(0o755)
    before = snapshot(plugins)
    result = run_dso("providers", "install", str(future), "--dry-run")
    assert result.exit_code == 7
    assert "dso-provider-future speaks protocol 7; this dso speaks 1" in result.stderr
    assert snapshot(plugins) == before


def test_dry_run_reports_and_changes_nothing(
    run_dso: RunDso, plugins: Path, tmp_path: Path
) -> None:
    before = snapshot(plugins)
    result = run_dso("providers", "install", str(echo_bundle(tmp_path / "d")), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("would install echo 1.0.0")
    assert snapshot(plugins) == before


def test_a_running_provider_host_uses_the_new_program_at_its_next_start(
    plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the agent does after `install --force`: the running process is left alone, and the
    next start (here after idling out) execs the new program, verified against the new line."""
    from kernel.paths import local_layout
    from kernel.protocol import SecretRef
    from kernel.provider_host import ProviderHost
    from kernel.provider_host.install import install
    from tests.integration.provider_host_support import REPO, config_with

    monkeypatch.setenv("DSO_PLUGINS_DIR", str(plugins))
    v1 = tmp_path / "v1" / "dso-provider-echo"
    v1.parent.mkdir()
    v1.write_text(WRAPPER)
    v1.chmod(0o755)
    v2 = tmp_path / "v2" / "dso-provider-echo"
    v2.parent.mkdir()
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r});"
        " from tests.fakes.echo_provider import EchoProvider; from providers.sdk import serve;"
        " EchoProvider.version = '2.0.0'; serve(EchoProvider)"
    )
    v2.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{code}" "$@"\n')
    v2.chmod(0o755)
    install(v1, plugins)
    config = config_with("echo", settings={"secrets": {"a/b": "v"}}, idle_timeout=5.0)
    ref = [SecretRef("r", "a/b")]
    with ProviderHost(config, local_layout()) as host:
        provider = host.client("echo")
        assert provider.get(ref).values["r"].value == b"v"
        first = provider.status()
        assert (first["origin"], first["version"]) == ("plugins-dir", "1.0.0")

        assert install(v2, plugins, force=True).replaced_version == "1.0.0"
        assert provider.status()["pid"] == first["pid"]  # not restarted by the install
        assert provider.status()["version"] == "1.0.0"

        deadline = time.monotonic() + 15
        while provider.state() != "idle" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert provider.state() == "idle"
        assert provider.get(ref).values["r"].value == b"v"
        after = provider.status()
        assert after["version"] == "2.0.0" and after["pid"] != first["pid"]
        assert after["starts"] == 2 and after["crashes"] == 0
