"""The vault.enc format: header layout, tamper detection, truncation, and the documented reader."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from kernel.errors import VaultCorruptError, VaultKeyError
from kernel.secret_value import SecretValue
from kernel.vault import KdfParams, KeySource, Vault, create_key_file
from kernel.vault.format import (
    HEADER_SIZE,
    MAGIC,
    TAG_SIZE,
    Record,
    decode_records,
    encode_records,
    parse_header,
)
from kernel.vault.keys import KdfId

DOC = Path(__file__).resolve().parents[2] / "docs" / "local-vault.md"
CHEAP_ARGON2 = {"iterations": 1, "lanes": 1, "memory_kib": 8}


@pytest.fixture
def keys(tmp_path: Path) -> KeySource:
    source = KeySource(tmp_path / "vault.key")
    create_key_file(source.key_file)
    return source


@pytest.fixture
def vault(tmp_path: Path, keys: KeySource) -> Vault:
    vault = Vault.create(tmp_path / "vault.enc", keys)
    vault.set("app/db_password", SecretValue("hunter2"))
    vault.set("app/api_token", SecretValue(b"\x00\xff binary"))
    vault.delete("app/api_token")
    return vault


def test_header_layout_matches_the_documented_offsets(vault: Vault) -> None:
    data = vault.path.read_bytes()
    assert HEADER_SIZE == 60
    assert data[0:8] == MAGIC == b"DSOVAULT"
    assert struct.unpack(">H", data[8:10]) == (1,)
    assert data[10] == KdfId.KEY_FILE == 1
    assert data[11] == 0
    assert data[12:24] == bytes(12)
    assert data[24:40] == bytes(16)
    (body_length,) = struct.unpack(">Q", data[52:60])
    assert body_length == len(data) - 60


def test_passphrase_header_carries_the_kdf_parameters(tmp_path: Path) -> None:
    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    kdf = KdfParams.argon2id(iterations=2, lanes=1, memory_kib=16)
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=kdf)
    data = vault.path.read_bytes()
    assert data[10] == KdfId.ARGON2ID
    assert struct.unpack(">III", data[12:24]) == (2, 1, 16)
    assert data[24:40] == kdf.salt != bytes(16)


def test_every_write_uses_a_fresh_nonce(vault: Vault) -> None:
    nonces = set()
    for index in range(5):
        vault.set("app/n", SecretValue(f"value-{index}"))
        nonces.add(vault.path.read_bytes()[40:52])
    assert len(nonces) == 5


def test_values_are_not_stored_in_clear(vault: Vault) -> None:
    assert b"hunter2" not in vault.path.read_bytes()
    assert b"app/db_password" not in vault.path.read_bytes()


def expected_error(offset: int) -> type[Exception]:
    """Which error flipping one bit at ``offset`` of a key-file vault must raise."""
    if offset < 24 or 52 <= offset < 60:  # magic, version, kdf, reserved, params, body length
        return VaultCorruptError
    return VaultKeyError  # salt, nonce (authenticated), ciphertext, tag


def test_flipping_any_byte_is_detected_and_nothing_is_written(
    vault: Vault, keys: KeySource
) -> None:
    original = vault.path.read_bytes()
    for offset in range(len(original)):
        tampered = bytearray(original)
        tampered[offset] ^= 0x01
        vault.path.write_bytes(bytes(tampered))
        with pytest.raises(expected_error(offset)):
            Vault.open(vault.path, keys)
        with pytest.raises(expected_error(offset)):
            vault.set("app/other", SecretValue("x"))
        assert vault.path.read_bytes() == bytes(tampered), f"offset {offset} was rewritten"
    vault.path.write_bytes(original)
    assert Vault.open(vault.path, keys).get("app/db_password").value == SecretValue("hunter2")


@pytest.mark.parametrize("offset", [10, 12, 15, 16, 19, 20, 22, 23, 30, 45, 55, 61, -1])
def test_tampering_with_a_passphrase_vault_is_detected(tmp_path: Path, offset: int) -> None:
    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=KdfParams.argon2id(**CHEAP_ARGON2))
    vault.set("a", SecretValue("b"))
    tampered = bytearray(vault.path.read_bytes())
    tampered[offset] ^= 0xFF
    vault.path.write_bytes(bytes(tampered))
    with pytest.raises((VaultKeyError, VaultCorruptError)):
        Vault.open(vault.path, keys)
    assert vault.path.read_bytes() == bytes(tampered)


@pytest.mark.parametrize("keep", [0, 3, 8, 9, 30, 59, 60, 75, -16, -1])
def test_a_truncated_file_is_corrupt_and_left_alone(
    vault: Vault, keys: KeySource, keep: int
) -> None:
    data = vault.path.read_bytes()[:keep]
    vault.path.write_bytes(data)
    with pytest.raises(VaultCorruptError, match="truncated"):
        Vault.open(vault.path, keys)
    with pytest.raises(VaultCorruptError):
        vault.delete("app/db_password")
    assert vault.path.read_bytes() == data


def test_trailing_bytes_are_corrupt(vault: Vault, keys: KeySource) -> None:
    vault.path.write_bytes(vault.path.read_bytes() + b"\x00")
    with pytest.raises(VaultCorruptError, match="1 unexpected trailing bytes"):
        Vault.open(vault.path, keys)


def test_a_file_that_is_not_a_vault_says_so(tmp_path: Path, keys: KeySource) -> None:
    path = tmp_path / "vault.enc"
    path.write_bytes(b"version: 1\nproviders: {}\n" * 4)
    with pytest.raises(VaultCorruptError, match=r"is not a dso vault \(bad magic\)"):
        Vault.open(path, keys)


def test_an_unknown_format_version_asks_for_an_upgrade(vault: Vault, keys: KeySource) -> None:
    data = bytearray(vault.path.read_bytes())
    data[8:10] = struct.pack(">H", 2)
    vault.path.write_bytes(bytes(data))
    with pytest.raises(VaultCorruptError) as info:
        Vault.open(vault.path, keys)
    assert "uses vault format version 2; this dso reads version 1" in str(info.value)
    assert "upgrade dso" in str(info.value)


def test_absurd_kdf_parameters_are_refused_before_deriving(tmp_path: Path) -> None:
    keys = KeySource(tmp_path / "none", SecretValue("pw"))
    vault = Vault.create(tmp_path / "vault.enc", keys, kdf=KdfParams.argon2id(**CHEAP_ARGON2))
    data = bytearray(vault.path.read_bytes())
    data[20:24] = struct.pack(">I", 2**31)  # 2 TiB of memory
    vault.path.write_bytes(bytes(data))
    with pytest.raises(VaultCorruptError, match="KDF parameters out of range"):
        Vault.open(vault.path, keys)


def test_plaintext_round_trip_keeps_tombstones_and_binary_values() -> None:
    records = [
        Record("b", 3, -5, 7, SecretValue(b"\x00\n\xff")),
        Record("a/x", 9, 1, 2, None),
    ]
    encoded = encode_records(records)
    decoded = decode_records(encoded)
    assert list(decoded) == ["a/x", "b"]  # sorted on disk
    assert decoded["a/x"] == records[1]
    assert decoded["b"].value == SecretValue(b"\x00\n\xff")
    assert (decoded["b"].version, decoded["b"].created_us, decoded["b"].updated_us) == (3, -5, 7)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x01",  # a record announced, none present
        b"\x00\x00\x00\x00\x00",  # trailing byte
        b"\x00\x00\x00\x01\x00\x01a\x02" + bytes(28),  # unknown flag
        b"\x00\x00\x00\x01\x00\x01a\x00" + bytes(24) + b"\x00\x00\x00\x09x",  # value too short
    ],
)
def test_malformed_plaintext_is_rejected(data: bytes) -> None:
    with pytest.raises((ValueError, struct.error)):
        decode_records(data)


def test_parse_header_reports_an_impossible_body_length(vault: Vault) -> None:
    data = bytearray(vault.path.read_bytes()[:HEADER_SIZE])
    data[52:60] = struct.pack(">Q", TAG_SIZE - 1)
    with pytest.raises(VaultCorruptError, match="impossible body length"):
        parse_header(bytes(data), vault.path)


def test_the_reference_reader_in_the_docs_reads_a_real_vault(vault: Vault, keys: KeySource) -> None:
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block, "docs/local-vault.md lost its reference reader"
    namespace: dict[str, object] = {}
    exec(block.group(1), namespace)  # our own documentation
    read_vault = namespace["read_vault"]
    assert callable(read_vault)
    result = read_vault(vault.path.read_bytes(), keys.key_file.read_bytes())
    assert result == {"app/db_password": (1, b"hunter2"), "app/api_token": (1, None)}
