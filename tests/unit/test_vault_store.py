"""The Vault API: round trips, versions that never repeat, transactions, locks and full disks."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import kernel.atomic_write
from kernel.errors import (
    ExitCode,
    InvalidSecretNameError,
    InvalidSecretValueError,
    SecretNotFoundError,
    StorageError,
    VaultBusyError,
    VaultExistsError,
    VaultNotFoundError,
)
from kernel.secret_value import SecretValue
from kernel.vault import ChangeKind, KeySource, Vault, create_key_file, format_timestamp
from kernel.vault.files import lock_path


@pytest.fixture
def keys(tmp_path: Path) -> KeySource:
    source = KeySource(tmp_path / "vault.key")
    create_key_file(source.key_file)
    return source


@pytest.fixture
def vault(tmp_path: Path, keys: KeySource) -> Vault:
    return Vault.create(tmp_path / "vault.enc", keys)


def test_a_new_vault_is_empty_private_and_reopens(vault: Vault, keys: KeySource) -> None:
    assert vault.list() == []
    assert stat.S_IMODE(vault.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(lock_path(vault.path).stat().st_mode) == 0o600
    assert Vault.open(vault.path, keys).list() == []


def test_round_trip_of_text_and_binary_values(vault: Vault, keys: KeySource) -> None:
    values = {"app/db_password": SecretValue("pä55 word\n"), "bin": SecretValue(bytes(range(256)))}
    for name, value in values.items():
        assert vault.set(name, value) == 1
    reopened = Vault.open(vault.path, keys)
    for name, value in values.items():
        entry = reopened.get(name)
        assert entry.value == value
        assert entry.version == 1
        assert entry.info.size == len(value)


def test_versions_increase_and_never_repeat_after_delete(vault: Vault) -> None:
    seen = [vault.set("app/x", SecretValue("one")), vault.set("app/x", SecretValue("two"))]
    assert vault.delete("app/x") == 2
    assert vault.versions(["app/x"]) == {"app/x": None}
    seen.append(vault.set("app/x", SecretValue("one")))  # same bytes as version 1
    seen.append(vault.set("app/x", SecretValue("three")))
    assert seen == [1, 2, 3, 4]
    vault.delete("app/x")
    assert vault.set("app/x", SecretValue("four")) == 5


def test_setting_the_same_value_creates_no_version(vault: Vault) -> None:
    vault.set("a", SecretValue("v"))
    before = vault.path.read_bytes()
    (change,) = vault.set_many({"a": SecretValue("v")})
    assert (change.kind, change.version) == (ChangeKind.UNCHANGED, 1)
    assert vault.path.read_bytes() == before, "an unchanged value must not rewrite the file"


def test_timestamps_created_stays_updated_moves(vault: Vault) -> None:
    start = datetime.now(UTC)
    vault.set("a", SecretValue("1"))
    first = vault.get("a")
    vault.set("a", SecretValue("2"))
    second = vault.get("a")
    assert start <= first.created <= first.updated <= datetime.now(UTC)
    assert second.created == first.created
    assert second.updated >= first.updated
    assert format_timestamp(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    assert second.info.to_json() == {
        "name": "a",
        "version": 2,
        "created": format_timestamp(first.created),
        "updated": format_timestamp(second.updated),
        "size": 1,
    }


def test_list_is_sorted_hides_deleted_names_and_never_holds_values(vault: Vault) -> None:
    for name in ("b", "a/z", "a/b", "gone"):
        vault.set(name, SecretValue("value-" + name))
    vault.delete("gone")
    infos = vault.list()
    assert [i.name for i in infos] == ["a/b", "a/z", "b"]
    assert all(not hasattr(info, "value") for info in infos)


def test_versions_answers_every_name_asked(vault: Vault) -> None:
    vault.set("a", SecretValue("1"))
    vault.set("a", SecretValue("2"))
    vault.set("b", SecretValue("1"))
    assert vault.versions(["a", "b", "missing"]) == {"a": 2, "b": 1, "missing": None}
    with pytest.raises(InvalidSecretNameError):
        vault.versions(["a", "../etc"])


def test_get_and_delete_of_a_missing_name(vault: Vault) -> None:
    with pytest.raises(SecretNotFoundError, match="no secret named 'nope' in the local vault"):
        vault.get("nope")
    with pytest.raises(SecretNotFoundError) as info:
        vault.delete("nope")
    assert info.value.exit_code == ExitCode.SECRET
    vault.set("x", SecretValue("1"))
    vault.delete("x")
    with pytest.raises(SecretNotFoundError):
        vault.get("x")
    with pytest.raises(SecretNotFoundError):
        vault.delete("x")


def test_set_many_is_all_or_nothing(vault: Vault) -> None:
    vault.set("keep", SecretValue("old"))
    before = vault.path.read_bytes()
    with pytest.raises(InvalidSecretValueError, match="the value of 'c' is empty"):
        vault.set_many({"a": SecretValue("1"), "keep": SecretValue("new"), "c": SecretValue("")})
    with pytest.raises(InvalidSecretNameError):
        vault.set_many({"a": SecretValue("1"), "bad name": SecretValue("2")})
    assert vault.path.read_bytes() == before
    changes = vault.set_many({"a": SecretValue("1"), "keep": SecretValue("new")})
    assert [(c.name, c.kind, c.version) for c in changes] == [
        ("a", ChangeKind.CREATED, 1),
        ("keep", ChangeKind.UPDATED, 2),
    ]


def test_a_dry_run_reports_without_writing(vault: Vault) -> None:
    vault.set("a", SecretValue("1"))
    vault.set("gone", SecretValue("1"))
    vault.delete("gone")
    before = vault.path.read_bytes()
    changes = vault.set_many(
        {"a": SecretValue("2"), "b": SecretValue("1"), "gone": SecretValue("x")}, dry_run=True
    )
    assert [(c.kind, c.version) for c in changes] == [
        (ChangeKind.UPDATED, 2),
        (ChangeKind.CREATED, 1),
        (ChangeKind.CREATED, 2),
    ]
    assert vault.path.read_bytes() == before


def test_two_handles_on_one_file_see_each_other(vault: Vault, keys: KeySource) -> None:
    other = Vault.open(vault.path, keys)
    vault.set("a", SecretValue("1"))
    assert other.get("a").value == SecretValue("1")
    other.set("a", SecretValue("2"))
    assert vault.get("a").version == 2


def test_create_never_replaces_a_vault(vault: Vault, keys: KeySource) -> None:
    vault.set("a", SecretValue("1"))
    before = vault.path.read_bytes()
    with pytest.raises(VaultExistsError, match="a vault already exists at") as info:
        Vault.create(vault.path, keys)
    assert info.value.exit_code == ExitCode.VAULT
    assert vault.path.read_bytes() == before


def test_opening_a_missing_vault_points_at_init(tmp_path: Path, keys: KeySource) -> None:
    with pytest.raises(VaultNotFoundError) as info:
        Vault.open(tmp_path / "vault.enc", keys)
    assert str(info.value) == (
        f"no vault at {tmp_path / 'vault.enc'}\n  hint: create one with `docker dso init`"
    )
    assert not lock_path(tmp_path / "vault.enc").exists(), "a failed open leaves no litter"


def test_a_vault_removed_after_open_is_not_recreated(vault: Vault) -> None:
    vault.path.unlink()
    with pytest.raises(VaultNotFoundError):
        vault.set("a", SecretValue("1"))
    assert not vault.path.exists()


class _NoSpaceOS:
    """``os`` for kernel.atomic_write, except that every write finds the disk full."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def write(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_raises_storage_error_and_keeps_the_vault(
    vault: Vault, keys: KeySource, monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    vault.set("app/a", SecretValue("old"))
    before = vault.path.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(kernel.atomic_write, "os", _NoSpaceOS())
        with pytest.raises(StorageError) as info:
            vault.set("app/a", SecretValue(canary))
        with pytest.raises(StorageError):
            vault.delete("app/a")
    message = str(info.value)
    assert "no space left on device; the previous file is unchanged" in message
    assert canary not in message
    assert info.value.exit_code == ExitCode.STORAGE
    assert vault.path.read_bytes() == before
    assert [p.name for p in vault.path.parent.iterdir() if ".tmp-" in p.name] == []
    assert Vault.open(vault.path, keys).get("app/a").value == SecretValue("old")


def test_a_held_lock_makes_writers_wait_then_give_up(tmp_path: Path, keys: KeySource) -> None:
    vault = Vault.create(tmp_path / "vault.enc", keys, lock_timeout=0.2)
    vault.set("a", SecretValue("1"))
    fd = os.open(lock_path(vault.path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # another reader: writers wait, readers do not
        assert vault.get("a").version == 1
        with pytest.raises(VaultBusyError, match=r"held the vault lock .* for more than 0.2 s"):
            vault.set("a", SecretValue("2"))
        fcntl.flock(fd, fcntl.LOCK_EX)  # another writer: everyone waits
        with pytest.raises(VaultBusyError) as info:
            vault.get("a")
        assert info.value.exit_code == ExitCode.VAULT
    finally:
        os.close(fd)
    assert vault.set("a", SecretValue("2")) == 2


def test_a_recreated_vault_is_reopened_with_its_new_key(tmp_path: Path) -> None:
    """A handle notices a vault re-created with a new salt and derives the key again."""
    from kernel.vault import KdfParams

    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    cheap = {"iterations": 1, "lanes": 1, "memory_kib": 8}
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=KdfParams.argon2id(**cheap))
    vault.path.rename(tmp_path / "old.enc")
    Vault.create(vault.path, keys, kdf=KdfParams.argon2id(**cheap)).set("a", SecretValue("1"))
    assert vault.get("a").value == SecretValue("1")


def test_repr_of_a_vault_and_an_entry_show_no_value(vault: Vault, canary: str) -> None:
    vault.set("a", SecretValue(canary))
    assert canary not in repr(vault)
    assert canary not in repr(vault.get("a"))
    assert canary not in repr(vault.list())
