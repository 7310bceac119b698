"""Discovery of provider programs in a plugins directory and from source (tmp dirs; nothing is
executed: ``--describe`` is replaced by a function)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ProtocolError, ProviderNotFoundError
from kernel.paths import local_layout
from kernel.provider_host import ProviderCommand
from kernel.provider_host.discovery import (
    PLUGINS_DIR_ENV,
    discover,
    find_command,
    plugins_dir,
    source_command,
    source_names,
)
from kernel.provider_host.verify import MANIFEST_NAME, UNVERIFIED_ENV, sha256_file

SCRIPT = b"#!/bin/sh\nexit 0\n"


def add(directory: Path, relative: str, *, mode: int = 0o755, listed: bool = True) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SCRIPT + relative.encode())
    path.chmod(mode)
    if listed:
        with (directory / MANIFEST_NAME).open("a") as manifest:
            manifest.write(f"{sha256_file(path)}  {relative}\n")
    return path


def describer(**overrides: Any) -> Any:
    def describe(command: ProviderCommand) -> Mapping[str, Any]:
        name = Path(command.argv[-1]).name.removeprefix("dso-provider-")
        if command.origin == "source":
            name = command.argv[-1].removeprefix("providers.")
        doc = {
            "name": name,
            "version": "1.2.3",
            "protocol_versions": [1],
            "capabilities": ["get", "versions"],
            "core_version": "0.1.0",
        }
        override = overrides.get(name)
        if isinstance(override, Exception):
            raise override
        doc.update(override or {})
        return doc

    return describe


def test_plugins_dir_from_layout_or_environment(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "home")
    assert plugins_dir(layout, {}) == tmp_path / "home" / "plugins"
    assert plugins_dir(layout, {PLUGINS_DIR_ENV: str(tmp_path / "p")}) == tmp_path / "p"


def test_executables_and_onedir_bundles_are_found_and_verified(tmp_path: Path) -> None:
    single = add(tmp_path, "dso-provider-vault")
    bundle = add(tmp_path, "dso-provider-aws/dso-provider-aws")
    (tmp_path / "README").write_text("not a provider")
    found = discover(tmp_path, environ={}, include_source=False, describe=describer())
    assert list(found.found) == ["aws", "vault"]
    assert found.rejected == ()
    vault = found.found["vault"]
    assert vault.origin == "plugins-dir" and vault.verified is True
    assert vault.command.argv == (str(single),)
    assert vault.command.sha256 == sha256_file(single)
    assert found.found["aws"].command.argv == (str(bundle),)
    doc = vault.to_json()
    assert doc["version"] == "1.2.3" and doc["protocol"] == 1
    assert doc["capabilities"] == ["get", "versions"]


def test_every_rejection_has_a_reason(tmp_path: Path) -> None:
    add(tmp_path, "dso-provider-Bad")
    add(tmp_path, "dso-provider-noexec", mode=0o644)
    add(tmp_path, "dso-provider-unlisted", listed=False)
    tampered = add(tmp_path, "dso-provider-tampered")
    tampered.write_bytes(SCRIPT + b"# changed\n")
    (tmp_path / "dso-provider-empty").mkdir()
    add(tmp_path, "dso-provider-liar")
    add(tmp_path, "dso-provider-future")
    add(tmp_path, "dso-provider-broken")
    describe = describer(
        liar={"name": "other"},
        future={"protocol_versions": [2]},
        broken=ProtocolError("--describe exited with status 1: boom"),
    )
    found = discover(tmp_path, environ={}, include_source=False, describe=describe)
    assert found.found == {}
    reasons = {r.path.name: r.reason for r in found.rejected}
    assert reasons["dso-provider-Bad"].startswith("bad name 'Bad'")
    assert reasons["dso-provider-noexec"] == "not executable (chmod +x it)"
    assert reasons["dso-provider-unlisted"].startswith("not listed in")
    assert reasons["dso-provider-tampered"].startswith("checksum mismatch")
    assert reasons["dso-provider-empty"].startswith("onedir bundle without its executable")
    assert reasons["dso-provider-liar"] == "--describe names it 'other', not 'liar'"
    assert reasons["dso-provider-future"] == "speaks protocol 2; this dso speaks 1"
    assert reasons["dso-provider-broken"] == "--describe exited with status 1: boom"
    doc = found.to_json()
    assert {r["name"] for r in doc["rejected"]} >= {"noexec", "tampered", None}


def test_no_manifest_rejects_everything_unless_opted_out(tmp_path: Path) -> None:
    add(tmp_path, "dso-provider-vault", listed=False)
    found = discover(tmp_path, environ={}, include_source=False)
    assert found.found == {}
    assert UNVERIFIED_ENV in found.rejected[0].reason
    found = discover(tmp_path, environ={UNVERIFIED_ENV: "1"}, include_source=False)
    assert found.found["vault"].verified is False
    assert found.found["vault"].command.sha256 is None
    assert found.to_json()["unverified_allowed"] is True


def test_source_mode_for_dso_own_providers(tmp_path: Path) -> None:
    names = source_names()
    assert "local" in names and "sdk" not in names
    command = source_command("local")
    assert command is not None
    assert command.argv == (sys.executable, "-m", "providers.local")
    assert command.origin == "source"
    assert dict(command.env_set)["PYTHONPATH"] == str(Path(__file__).resolve().parents[2])
    assert source_command("nope") is None
    found = discover(tmp_path, environ={})
    assert found.found["local"].verified is None


def test_plugins_dir_wins_over_source_and_a_rejected_one_is_not_replaced(tmp_path: Path) -> None:
    add(tmp_path, "dso-provider-local")
    assert discover(tmp_path, environ={}).found["local"].origin == "plugins-dir"
    other = tmp_path / "other"
    add(other, "dso-provider-local", listed=False)
    (other / MANIFEST_NAME).write_text("")
    found = discover(other, environ={})
    assert "local" not in found.found
    assert found.rejected[0].name == "local"


def test_find_command(tmp_path: Path) -> None:
    path = add(tmp_path, "dso-provider-vault")
    command = find_command("vault", tmp_path, name="prod", env_allow=("VAULT_TOKEN",), environ={})
    assert command == ProviderCommand(
        "prod", (str(path),), "plugins-dir", ("VAULT_TOKEN",), (), sha256_file(path)
    )
    assert find_command("local", tmp_path, environ={}).origin == "source"
    with pytest.raises(ProviderNotFoundError, match="no provider program dso-provider-azurex"):
        find_command("azurex", tmp_path, environ={})
    add(tmp_path, "dso-provider-aws", listed=False)
    with pytest.raises(ProviderNotFoundError, match="cannot be used: not listed in"):
        find_command("aws", tmp_path, environ={})


def test_missing_plugins_dir_is_empty(tmp_path: Path) -> None:
    found = discover(tmp_path / "absent", environ={}, include_source=False)
    assert (found.found, found.rejected, found.manifest) == ({}, (), None)


def test_command_environment_is_filtered() -> None:
    command = ProviderCommand(
        "x", ("x",), "path", env_allow=("VAULT_TOKEN",), env_set=(("PYTHONPATH", "/src"),)
    )
    parent = {"PATH": "/bin", "HOME": "/h", "VAULT_TOKEN": "t", "AWS_SECRET": "s", "X": "1"}
    env = command.environment(parent, "debug")
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        "VAULT_TOKEN": "t",
        "PYTHONPATH": "/src",
        "DSO_PROVIDER_MAGIC_COOKIE": "dso-provider:09e68b7faafef46dea06992037bf5d3b",
        "DSO_PROVIDER_PROTOCOL_VERSIONS": "1",
        "DSO_PROVIDER_LOG_LEVEL": "debug",
    }
