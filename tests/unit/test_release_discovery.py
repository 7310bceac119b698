"""A frozen dso finds the providers bundled with its release (``<release>/plugins`` beside
``<release>/dso/dso``), verified against that directory's SHA256SUMS; the operator's plugins
directory still wins. Release trees are built in tmp dirs; ``sys.frozen`` and ``sys.executable``
are set as PyInstaller sets them; nothing is executed."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from kernel.doctor import Status
from kernel.errors import ProviderNotFoundError
from kernel.paths import Layout
from kernel.provider_host.discovery import (
    builtin_names,
    discover,
    find_command,
    release_plugins_dir,
    source_command,
)
from kernel.provider_host.verify import MANIFEST_NAME
from tests.unit.doctor_support import check, home, make_context

__all__ = ["home"]


def bundle(directory: Path, name: str, *, listed: str | None = "") -> Path:
    """A onedir bundle ``dso-provider-<name>/dso-provider-<name>`` in ``directory``, with its
    SHA256SUMS line (``listed``: "" the right digest, None no line, else that digest)."""
    program = directory / f"dso-provider-{name}" / f"dso-provider-{name}"
    program.parent.mkdir(parents=True)
    program.write_bytes(b"#!/bin/sh\nexit 0\n# " + name.encode() + b"\n")
    program.chmod(0o755)
    if listed is not None:
        digest = listed or hashlib.sha256(program.read_bytes()).hexdigest()
        with (directory / MANIFEST_NAME).open("a") as manifest:
            manifest.write(f"{digest}  {program.relative_to(directory).as_posix()}\n")
    return program


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``<tmp>/opt/dso/releases/1.0/`` with ``dso/dso`` and the providers ``local`` and
    ``vault``; this process is that frozen dso, started through ``<tmp>/bin/dso``."""
    root = tmp_path / "opt" / "dso" / "releases" / "1.0"
    executable = root / "dso" / "dso"
    executable.parent.mkdir(parents=True)
    executable.write_bytes(b"frozen")
    executable.chmod(0o755)
    (root / "plugins").mkdir()
    bundle(root / "plugins", "local")
    bundle(root / "plugins", "vault")
    link = tmp_path / "bin" / "dso"
    link.parent.mkdir()
    link.symlink_to(executable)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(link))
    return root


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    directory = tmp_path / "var" / "lib" / "dso" / "plugins"
    directory.mkdir(parents=True)
    return directory


def test_a_frozen_dso_finds_its_release_providers_verified(release: Path, plugins: Path) -> None:
    assert release_plugins_dir() == release / "plugins"
    found = discover(plugins, environ={})
    assert sorted(found.found) == ["local", "vault"]
    local = found.found["local"]
    assert local.origin == "release" and local.verified is True
    assert local.path == release / "plugins" / "dso-provider-local" / "dso-provider-local"
    doc = found.to_json()
    assert doc["release_plugins_dir"] == str(release / "plugins")
    assert doc["providers"][0]["origin"] == "release"
    assert builtin_names() == ["local", "vault"]


def test_find_command_runs_the_release_program_with_its_digest(
    release: Path, plugins: Path
) -> None:
    command = find_command("local", plugins, name="home", environ={})
    program = release / "plugins" / "dso-provider-local" / "dso-provider-local"
    assert command.argv == (str(program),)
    assert command.origin == "release" and command.name == "home"
    assert command.sha256 == hashlib.sha256(program.read_bytes()).hexdigest()


def test_no_source_fallback_in_a_frozen_dso(release: Path, plugins: Path) -> None:
    assert source_command("local") is None
    assert "aws" not in discover(plugins, environ={}).found  # not in this release


def test_the_plugins_directory_wins_over_the_release(release: Path, plugins: Path) -> None:
    mine = bundle(plugins, "local")
    found = discover(plugins, environ={}).found
    assert found["local"].origin == "plugins-dir" and found["local"].path == mine
    assert found["vault"].origin == "release"
    assert find_command("local", plugins, environ={}).argv == (str(mine),)


def test_a_rejected_plugins_dir_program_is_not_replaced_by_the_release_one(
    release: Path, plugins: Path
) -> None:
    mine = bundle(plugins, "local", listed="0" * 64)
    discovery = discover(plugins, environ={})
    assert "local" not in discovery.found
    assert [r.name for r in discovery.rejected] == ["local"]
    assert "checksum mismatch" in discovery.rejected[0].reason
    # find_command defers the hashing to exec time, which refuses the mismatch.
    command = find_command("local", plugins, environ={})
    assert command.argv == (str(mine),) and command.sha256 == "0" * 64


def test_a_tampered_release_program_is_rejected_with_the_reason(
    release: Path, plugins: Path
) -> None:
    program = release / "plugins" / "dso-provider-vault" / "dso-provider-vault"
    program.write_bytes(program.read_bytes() + b"# altered\n")
    discovery = discover(plugins, environ={})
    assert list(discovery.found) == ["local"]
    (rejected,) = discovery.rejected
    assert rejected.path == program and rejected.name == "vault"
    assert rejected.reason.startswith("checksum mismatch")


def test_a_release_without_its_manifest_runs_nothing(release: Path, plugins: Path) -> None:
    (release / "plugins" / MANIFEST_NAME).unlink()
    discovery = discover(plugins, environ={})
    assert not discovery.found
    assert all("no SHA256SUMS manifest" in r.reason for r in discovery.rejected)
    with pytest.raises(ProviderNotFoundError, match="no SHA256SUMS manifest"):
        find_command("local", plugins, environ={})


def test_a_missing_program_names_both_directories(release: Path, plugins: Path) -> None:
    with pytest.raises(ProviderNotFoundError) as caught:
        find_command("vaul", plugins, environ={})
    assert str(plugins) in caught.value.message and str(release / "plugins") in caught.value.message
    assert "did you mean type: vault?" in (caught.value.hint or "")


def test_a_frozen_dso_outside_a_release_has_no_release_providers(
    tmp_path: Path, plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable = tmp_path / "somewhere" / "dso"
    executable.parent.mkdir()
    executable.write_bytes(b"frozen")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))
    assert release_plugins_dir() is None
    assert not discover(plugins, environ={}).found
    with pytest.raises(ProviderNotFoundError, match="no provider program dso-provider-local in"):
        find_command("local", plugins, environ={})


def test_from_source_there_is_no_release(plugins: Path) -> None:
    assert release_plugins_dir() is None
    assert discover(plugins, environ={}).found["local"].origin == "source"


def test_doctor_counts_the_release_providers(
    release: Path, home: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, finding, detail, _ = check(make_context(home), "providers.binaries")
    assert (status, finding) == (Status.OK, "1 provider program(s) found and verified")
    assert str(release / "plugins" / "dso-provider-local" / "dso-provider-local") in detail
    program = release / "plugins" / "dso-provider-local" / "dso-provider-local"
    program.write_bytes(b"altered")
    status, finding, _, _ = check(make_context(home), "providers.binaries")
    assert status is Status.FAIL and "checksum mismatch" in finding
