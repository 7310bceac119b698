"""The local provider's snapshot: decrypted once while vault.enc is unchanged, re-read after
every kind of change (rename by dso, in-place rewrite, same size and same timestamps, delete)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kernel.errors import VaultNotFoundError
from kernel.secret_value import SecretValue
from kernel.vault import KeySource, Vault, create_key_file
from providers.local.snapshot import FileIdentity, VaultSnapshot


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    keys = KeySource(tmp_path / "vault.key")
    create_key_file(keys.key_file)
    vault = Vault.create(tmp_path / "vault.enc", keys)
    vault.set_many({"app/a": SecretValue(b"one"), "app/b": SecretValue(b"two")})
    return vault


def values(snapshot: VaultSnapshot) -> dict[str, bytes]:
    return {name: entry.value.reveal() for name, entry in snapshot.entries().items()}


def test_an_unchanged_file_is_decrypted_once(vault: Vault) -> None:
    snapshot = VaultSnapshot(vault)
    for _ in range(5):
        assert values(snapshot) == {"app/a": b"one", "app/b": b"two"}
        assert snapshot.versions(["app/a", "app/b", "nope"]) == {
            "app/a": 1,
            "app/b": 1,
            "nope": None,
        }
    assert snapshot.reads == 1


def test_a_write_by_dso_replaces_the_file_and_is_seen_at_the_next_call(vault: Vault) -> None:
    snapshot = VaultSnapshot(vault)
    values(snapshot)
    # Same size, twice in a row well within one timestamp tick: the inode tells them apart.
    vault.set("app/a", SecretValue(b"uno"))
    assert values(snapshot)["app/a"] == b"uno"
    vault.set("app/a", SecretValue(b"ein"))
    assert values(snapshot)["app/a"] == b"ein"
    assert snapshot.versions(["app/a"]) == {"app/a": 3}
    assert snapshot.reads == 3


def test_a_replaced_inode_cannot_be_reused_while_the_snapshot_holds_it(vault: Vault) -> None:
    snapshot = VaultSnapshot(vault)
    values(snapshot)
    held = snapshot._identity
    assert held is not None
    for i in range(20):  # many replacements: none may get the inode the snapshot read
        vault.set("app/a", SecretValue(f"v{i:03}".encode()))
        assert os.stat(vault.path).st_ino != held.ino
    assert values(snapshot)["app/a"] == b"v019"


def test_an_in_place_rewrite_of_the_same_size_and_timestamps_is_seen(
    vault: Vault, tmp_path: Path
) -> None:
    """A backup copied over the file (same inode) whose size matches and whose timestamps fall
    in the same tick: only the header's fresh nonce differs, and it is compared."""
    old_image = vault.path.read_bytes()
    vault.set("app/a", SecretValue(b"ONE"))  # same size as b"one"
    snapshot = VaultSnapshot(vault)
    assert values(snapshot)["app/a"] == b"ONE"
    with open(vault.path, "r+b") as f:  # in place: same inode
        f.write(old_image)
    assert len(old_image) == vault.path.stat().st_size
    # Pretend the timestamps did not move (one coarse tick): the identity matches exactly.
    snapshot._identity = FileIdentity.of(os.stat(vault.path))
    assert values(snapshot)["app/a"] == b"one"
    assert snapshot.reads == 2


def test_a_deleted_vault_fails_and_a_new_one_is_read(vault: Vault) -> None:
    snapshot = VaultSnapshot(vault)
    values(snapshot)
    image = vault.path.read_bytes()
    vault.path.unlink()
    with pytest.raises(VaultNotFoundError):
        snapshot.entries()
    vault.path.write_bytes(image)
    assert values(snapshot) == {"app/a": b"one", "app/b": b"two"}


def test_deleted_names_are_absent_and_close_forgets_everything(vault: Vault) -> None:
    snapshot = VaultSnapshot(vault)
    vault.delete("app/b")
    assert values(snapshot) == {"app/a": b"one"}
    assert snapshot.versions(["app/b"]) == {"app/b": None}
    snapshot.close()
    assert snapshot._fd is None and snapshot._entries == {}
    assert values(snapshot) == {"app/a": b"one"}  # usable again: reads afresh


def test_concurrent_callers_see_whole_snapshots(vault: Vault) -> None:
    """Readers on several threads while a writer replaces the file: every batch is one
    consistent version (both names moved together in one transaction)."""
    snapshot = VaultSnapshot(vault)
    stop = threading.Event()
    seen: list[tuple[bytes, bytes]] = []

    def read() -> None:
        while not stop.is_set():
            current = values(snapshot)
            seen.append((current["app/a"], current["app/b"]))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(30):
        tag = f"{i:02}".encode()
        vault.set_many({"app/a": SecretValue(b"a" + tag), "app/b": SecretValue(b"b" + tag)})
    stop.set()
    for thread in readers:
        thread.join()
    assert values(snapshot) == {"app/a": b"a29", "app/b": b"b29"}
    assert all(a[1:] == b[1:] or (a, b) == (b"one", b"two") for a, b in seen)
