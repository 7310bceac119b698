"""SHA256SUMS parsing and checks of provider executables (tmp dirs, no subprocess)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kernel.errors import ProviderStartError
from kernel.provider_host.verify import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    UNVERIFIED_ENV,
    check,
    ensure_digest,
    parse_manifest,
    read_manifest,
    sha256_file,
    unverified_allowed,
)

DIGEST = "a" * 64


def executable(directory: Path, name: str, content: bytes = b"#!/bin/sh\nexit 0\n") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(0o755)
    return path


def write_manifest(directory: Path, *paths: Path, extra: str = "") -> None:
    lines = [f"{sha256_file(p)}  {p.relative_to(directory).as_posix()}" for p in paths]
    (directory / MANIFEST_NAME).write_text("\n".join(lines) + "\n" + extra)


def test_parse_sha256sum_format_variants() -> None:
    text = (
        f"{DIGEST}  dso-provider-a\n"
        f"{'B' * 64} *dso-provider-b/dso-provider-b\n"
        f"{'c' * 64}  ./dso-provider-c\n"
        "\n# a comment\n"
    )
    manifest = parse_manifest(text, Path("SHA256SUMS"))
    assert manifest.entries == {
        "dso-provider-a": DIGEST,
        "dso-provider-b/dso-provider-b": "b" * 64,
        "dso-provider-c": "c" * 64,
    }
    assert manifest.expected("./dso-provider-a") == DIGEST
    assert manifest.problems == ()


def test_bad_lines_are_skipped_and_reported() -> None:
    text = (
        "not a line\n"
        f"{DIGEST}  /abs/dso-provider-x\n"
        f"{DIGEST}  ../dso-provider-y\n"
        f"{DIGEST}  dso-provider-z\n"
        f"{'d' * 64}  dso-provider-z\n"
        "abc  dso-provider-short\n"
    )
    manifest = parse_manifest(text, Path("SHA256SUMS"))
    assert manifest.entries == {"dso-provider-z": DIGEST}
    assert [p.split(":")[0] for p in manifest.problems] == [
        "line 1",
        "line 2",
        "line 3",
        "line 5",
        "line 6",
    ]
    assert "listed twice" in manifest.problems[3]


def test_read_manifest_absent_and_oversized(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    (tmp_path / MANIFEST_NAME).write_bytes(b"x" * (MAX_MANIFEST_BYTES + 1))
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest.entries == {}
    assert "larger than" in manifest.problems[0]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 10_000
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_check_verified_missing_listing_and_mismatch(tmp_path: Path) -> None:
    good = executable(tmp_path, "dso-provider-good")
    bad = executable(tmp_path, "dso-provider-bad")
    unlisted = executable(tmp_path, "dso-provider-unlisted")
    write_manifest(tmp_path, good, bad)
    bad.write_bytes(b"#!/bin/sh\necho tampered\n")
    manifest = read_manifest(tmp_path)
    verdict = check(good, tmp_path, manifest)
    assert verdict.ok and verdict.verified and verdict.expected == sha256_file(good)
    verdict = check(bad, tmp_path, manifest)
    assert not verdict.ok and verdict.reason is not None
    assert verdict.reason.startswith("checksum mismatch: SHA256SUMS lists")
    verdict = check(unlisted, tmp_path, manifest)
    assert verdict.reason == f"not listed in {tmp_path / MANIFEST_NAME}"
    # Without hashing now, a tampered file passes discovery; the exec-time check catches it.
    verdict = check(bad, tmp_path, manifest, hash_now=False)
    assert verdict.ok and verdict.expected is not None
    with pytest.raises(ProviderStartError, match=r"checksum mismatch.*refusing to run it"):
        ensure_digest(bad, verdict.expected, "bad")


def test_no_manifest_rejects_unless_opted_out(tmp_path: Path) -> None:
    path = executable(tmp_path, "dso-provider-x")
    verdict = check(path, tmp_path, None)
    assert verdict.reason is not None
    assert f"no SHA256SUMS manifest in {tmp_path}" in verdict.reason
    assert f"{UNVERIFIED_ENV}=1" in verdict.reason
    verdict = check(path, tmp_path, None, allow_unverified=True)
    assert verdict.ok and verdict.verified is False and verdict.expected is None


@pytest.mark.parametrize(
    ("value", "allowed"), [("1", True), ("true", True), ("", False), ("0", False), ("no", False)]
)
def test_opt_out_variable(value: str, allowed: bool) -> None:
    assert unverified_allowed({UNVERIFIED_ENV: value}) is allowed
    assert unverified_allowed({}) is False


def test_onedir_bundles_hash_only_the_named_executable(tmp_path: Path) -> None:
    exe = executable(tmp_path, "dso-provider-big/dso-provider-big")
    library = tmp_path / "dso-provider-big" / "_internal" / "libpython.so"
    library.parent.mkdir()
    library.write_bytes(b"library v1")
    write_manifest(tmp_path, exe)
    library.write_bytes(b"library v2")
    assert check(exe, tmp_path, read_manifest(tmp_path)).ok


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ProviderStartError, match="cannot read"):
        ensure_digest(tmp_path / "gone", DIGEST, "gone")
