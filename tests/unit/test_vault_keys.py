"""Keys: the key file's permissions and size, passphrases, and the KDF named by the header."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kernel.errors import ExitCode, VaultKeyError
from kernel.secret_value import SecretValue
from kernel.vault import PASSPHRASE_ENV, KdfId, KdfParams, KeySource, Vault, create_key_file
from kernel.vault import keys as keys_module
from kernel.vault.keys import KEY_SIZE, derive_key, read_key_file

CHEAP_ARGON2 = {"iterations": 1, "lanes": 1, "memory_kib": 8}
CHEAP_SCRYPT = {"log2_n": 10, "r": 8, "p": 1}


def test_a_new_key_file_is_32_random_private_bytes(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    key = create_key_file(path)
    assert len(key) == KEY_SIZE
    assert path.read_bytes() == key.reveal()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert create_key_file(tmp_path / "other.key") != key


def test_an_existing_key_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    create_key_file(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        create_key_file(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vault.key"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o602])
def test_a_key_file_others_can_access_is_refused_with_a_chmod_hint(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "vault.key"
    create_key_file(path)
    path.chmod(mode)
    with pytest.raises(VaultKeyError) as info:
        read_key_file(path)
    message = str(info.value)
    assert f"accessible by group or others (mode {mode:04o})" in message
    assert f"hint: chmod 600 {path}" in message
    assert info.value.exit_code == ExitCode.VAULT


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_file_of_the_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "vault.key"
    path.write_bytes(os.urandom(size))
    path.chmod(0o600)
    with pytest.raises(VaultKeyError, match=f"is {size} bytes; a key is 32 bytes"):
        read_key_file(path)


def test_a_missing_key_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError, match=r"vault key file .* is missing") as info:
        read_key_file(tmp_path / "vault.key")
    assert "restore it from your backup" in str(info.value)


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    (tmp_path / "vault.key").mkdir(mode=0o700)
    with pytest.raises(VaultKeyError, match="is not a regular file"):
        read_key_file(tmp_path / "vault.key")


def test_the_passphrase_comes_from_the_environment(tmp_path: Path) -> None:
    unset = KeySource.from_env(tmp_path / "k", environ={})
    assert unset.passphrase is None and not unset.has_passphrase
    given = KeySource.from_env(tmp_path / "k", environ={PASSPHRASE_ENV: "correct horse"})
    assert given.passphrase == SecretValue("correct horse")
    assert "correct horse" not in repr(given)


def test_the_vault_opens_with_its_passphrase_and_not_with_another(tmp_path: Path) -> None:
    right = KeySource(tmp_path / "none", SecretValue("correct horse"))
    vault = Vault.create(tmp_path / "vault.enc", right, kdf=KdfParams.argon2id(**CHEAP_ARGON2))
    vault.set("a", SecretValue("b"))
    assert Vault.open(vault.path, right).get("a").value == SecretValue("b")
    before = vault.path.read_bytes()
    wrong = KeySource(tmp_path / "none", SecretValue("battery staple"))
    with pytest.raises(VaultKeyError, match="wrong key or passphrase") as info:
        Vault.open(vault.path, wrong)
    assert "battery" not in str(info.value)
    assert vault.path.read_bytes() == before


def test_a_passphrase_vault_without_the_variable_names_it(tmp_path: Path) -> None:
    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=KdfParams.argon2id(**CHEAP_ARGON2))
    with pytest.raises(VaultKeyError) as info:
        Vault.open(vault.path, KeySource(tmp_path / "none"))
    message = str(info.value)
    assert "is protected by a passphrase (argon2id (t=1, p=1, m=8 KiB))" in message
    assert "DSO_VAULT_PASSPHRASE is not set" in message
    assert "hint: read -rs DSO_VAULT_PASSPHRASE" in message


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError, match="DSO_VAULT_PASSPHRASE is set but empty"):
        Vault.create(tmp_path / "vault.enc", KeySource(tmp_path / "none", SecretValue("")))
    assert not (tmp_path / "vault.enc").exists()


def test_the_header_not_the_environment_decides_the_key(tmp_path: Path) -> None:
    """A key-file vault opens with its key file even when a passphrase is also set."""
    key_file = tmp_path / "vault.key"
    create_key_file(key_file)
    Vault.create(tmp_path / "vault.enc", KeySource(key_file)).set("a", SecretValue("b"))
    both = KeySource(key_file, SecretValue("unrelated"))
    assert Vault.open(tmp_path / "vault.enc", both).kdf.kdf is KdfId.KEY_FILE


def test_a_key_file_vault_with_another_key_is_refused(tmp_path: Path) -> None:
    create_key_file(tmp_path / "a.key")
    create_key_file(tmp_path / "b.key")
    Vault.create(tmp_path / "vault.enc", KeySource(tmp_path / "a.key"))
    with pytest.raises(VaultKeyError, match="wrong key or passphrase, or the file was modified"):
        Vault.open(tmp_path / "vault.enc", KeySource(tmp_path / "b.key"))


def test_default_passphrase_kdf_is_argon2id_with_rfc9106_parameters() -> None:
    assert keys_module.argon2id_available(), "the installed cryptography should have Argon2id"
    kdf = KdfParams.for_passphrase()
    assert kdf.kdf is KdfId.ARGON2ID
    assert kdf.params == (3, 4, 65536)
    assert kdf.describe() == "argon2id (t=3, p=4, m=64 MiB)"
    assert len(kdf.salt) == 16 and kdf.salt != KdfParams.for_passphrase().salt


def test_scrypt_is_the_fallback_without_argon2id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys_module, "argon2id_available", lambda: False)
    kdf = KdfParams.for_passphrase()
    assert kdf.kdf is KdfId.SCRYPT and kdf.params == (17, 8, 1)
    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=KdfParams.scrypt(**CHEAP_SCRYPT))
    vault.set("a", SecretValue("b"))
    assert Vault.open(vault.path, keys).get("a").value == SecretValue("b")
    assert vault.path.read_bytes()[10] == KdfId.SCRYPT


def test_an_argon2id_vault_needs_argon2id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=KdfParams.argon2id(**CHEAP_ARGON2))
    monkeypatch.setattr(keys_module, "argon2id_available", lambda: False)
    with pytest.raises(VaultKeyError, match="uses argon2id, which the installed OpenSSL"):
        Vault.open(vault.path, keys)


def test_derivation_is_deterministic_per_salt() -> None:
    kdf = KdfParams.argon2id(**CHEAP_ARGON2)
    one = derive_key(kdf, SecretValue("pw"))
    assert one == derive_key(kdf, SecretValue("pw"))
    assert one != derive_key(KdfParams.argon2id(**CHEAP_ARGON2), SecretValue("pw"))
    assert len(one) == KEY_SIZE
