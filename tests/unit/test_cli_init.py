"""`docker dso init`: the layout, the key, the empty vault, config.yaml — and never clobbering."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kernel.cli.init import CONFIG_TEMPLATE
from kernel.vault import KdfId, KeySource, Vault
from tests.conftest import RunDso

CONFIG = """\
# dso configuration (local mode). Every key: docs/configuration.md
version: 1
default_provider: local
providers:
  local:
    type: local
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_init_creates_the_layout_key_vault_and_config(run_dso: RunDso, dso_home: Path) -> None:
    result = run_dso("init")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    for name in ("", "state", "cache", "logs", "plugins", "locks"):
        assert mode(dso_home / name) == 0o700, name
        assert f"created {dso_home / name}".rstrip("/") in result.stderr
    for name in ("vault.key", "vault.enc", "config.yaml"):
        assert mode(dso_home / name) == 0o600, name
    assert len((dso_home / "vault.key").read_bytes()) == 32
    assert (dso_home / "config.yaml").read_text() == CONFIG == CONFIG_TEMPLATE
    assert "back it up" in result.stderr
    assert "AES-256-GCM, key file" in result.stderr
    vault = Vault.open(dso_home / "vault.enc", KeySource(dso_home / "vault.key"))
    assert vault.list() == []
    assert vault.kdf.kdf is KdfId.KEY_FILE


def test_init_json_lists_the_created_paths(run_dso: RunDso, dso_home: Path) -> None:
    doc = json.loads(run_dso("init", "--json").stdout)
    assert doc["created"] == [
        str(dso_home / name) for name in ("", "state", "cache", "logs", "plugins", "locks")
    ] + [str(dso_home / "vault.key"), str(dso_home / "vault.enc"), str(dso_home / "config.yaml")]
    assert doc["kept"] == []
    assert doc["key"] == "key-file"


def test_init_refuses_to_clobber_a_vault_and_touches_nothing(
    run_dso: RunDso, dso_home: Path
) -> None:
    run_dso("init")
    run_dso("secret", "set", "a", input="v")
    before = snapshot(dso_home)
    result = run_dso("init")
    assert result.exit_code == 4
    assert f"dso: error: a vault already exists at {dso_home / 'vault.enc'}" in result.stderr
    assert "nothing was changed" in result.stderr
    assert snapshot(dso_home) == before


def test_init_keeps_an_existing_config_and_key_file(run_dso: RunDso, dso_home: Path) -> None:
    run_dso("init")
    key = (dso_home / "vault.key").read_bytes()
    (dso_home / "vault.enc").unlink()
    (dso_home / "config.yaml").write_text("version: 1\n# mine\n")
    result = run_dso("init", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["created"] == [str(dso_home / "vault.enc")]
    assert doc["kept"] == [str(dso_home / "vault.key"), str(dso_home / "config.yaml")]
    assert (dso_home / "vault.key").read_bytes() == key
    assert (dso_home / "config.yaml").read_text() == "version: 1\n# mine\n"


def test_init_refuses_a_key_file_others_can_read(run_dso: RunDso, dso_home: Path) -> None:
    dso_home.mkdir(mode=0o700)
    key = dso_home / "vault.key"
    key.write_bytes(bytes(32))
    key.chmod(0o644)
    result = run_dso("init")
    assert result.exit_code == 4
    assert f"hint: chmod 600 {key}" in result.stderr
    assert not (dso_home / "vault.enc").exists()


def test_init_with_a_passphrase_writes_no_key_file(run_dso: RunDso, dso_home: Path) -> None:
    env = {"DSO_VAULT_PASSPHRASE": "correct horse battery"}
    result = run_dso("init", "--json", env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["key"], doc["kdf"]) == ("passphrase", "argon2id (t=3, p=4, m=64 MiB)")
    assert not (dso_home / "vault.key").exists()
    assert (dso_home / "vault.enc").read_bytes()[10] == KdfId.ARGON2ID
    assert "correct horse" not in result.output


def test_init_refuses_an_empty_passphrase_before_creating_anything(
    run_dso: RunDso, dso_home: Path
) -> None:
    result = run_dso("init", env={"DSO_VAULT_PASSPHRASE": ""})
    assert result.exit_code == 4
    assert "DSO_VAULT_PASSPHRASE is set but empty" in result.stderr
    assert not dso_home.exists()


def test_init_warns_about_an_open_home(run_dso: RunDso, dso_home: Path) -> None:
    dso_home.mkdir(mode=0o755)
    dso_home.chmod(0o755)
    result = run_dso("init")
    assert result.exit_code == 0
    assert f"warning: {dso_home} is accessible by group or others (mode 0755)" in result.stderr


def test_init_on_a_full_disk_leaves_no_key_behind(
    run_dso: RunDso, dso_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel.errors import StorageError
    from kernel.vault import files

    def no_space(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        raise StorageError(f"could not create {path}: no space left on device")

    real = files.write_new_file
    monkeypatch.setattr(files, "write_new_file", no_space)
    monkeypatch.setattr("kernel.vault.keys.write_new_file", real)
    monkeypatch.setattr("kernel.vault.store.write_new_file", no_space)
    result = run_dso("init")
    assert result.exit_code == 8
    assert "no space left on device" in result.stderr
    assert not (dso_home / "vault.key").exists()
    assert not (dso_home / "vault.enc").exists()


def test_init_help_has_examples(run_dso: RunDso) -> None:
    result = run_dso("init", "--help")
    assert "Examples:\n    docker dso init" in result.stdout
