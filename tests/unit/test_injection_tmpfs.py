"""File delivery on a real tmpfs (/dev/shm): atomic ..data swaps, modes, owners, refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import kernel.injection.atomic_dir as atomic_dir
from kernel.errors import StorageError
from kernel.injection.atomic_dir import DATA, Owner, current_files, publish
from kernel.injection.filenames import file_name, is_safe_file_name
from kernel.injection.tmpfs import (
    TMPFS_MAGIC,
    SecretsDir,
    default_base,
    filesystem_magic,
    filesystem_type,
    home_key,
)
from kernel.paths import agent_layout, local_layout
from kernel.secret_value import SecretValue

ME = Owner(os.geteuid(), os.getegid())
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_publish_lays_out_data_link_versions_and_per_key_links(shm: Path) -> None:
    target = shm / "web"
    version = publish(
        target, {"DB_PASSWORD": SecretValue("CANARY-1"), "TOKEN": SecretValue("t")}, ME
    )
    assert version.parent == target and version.name.startswith("..20")
    assert os.readlink(target / DATA) == version.name
    assert os.readlink(target / "DB_PASSWORD") == "..data/DB_PASSWORD"
    assert (target / "DB_PASSWORD").read_bytes() == b"CANARY-1"
    assert mode(target) == 0o700 and mode(version) == 0o700
    assert mode(version / "DB_PASSWORD") == 0o400
    assert sorted(os.listdir(target)) == sorted([DATA, version.name, "DB_PASSWORD", "TOKEN"])


def test_an_update_swaps_every_key_at_once_and_drops_the_old_version(
    shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = shm / "web"
    old = publish(
        target, {"A": SecretValue("a1"), "B": SecretValue("b1"), "GONE": SecretValue("g")}, ME
    )
    seen_before_swap: list[dict[str, bytes]] = []
    real_replace = os.replace

    def spy(src: object, dst: object) -> None:
        if Path(str(dst)).name == DATA:
            seen_before_swap.append(current_files(target))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic_dir.os, "replace", spy)
    new = publish(target, {"A": SecretValue("a2"), "B": SecretValue("b2")}, ME)
    # A reader looking just before the rename sees the complete old set, after it the new one.
    assert seen_before_swap == [{"A": b"a1", "B": b"b1", "GONE": b"g"}]
    assert current_files(target) == {"A": b"a2", "B": b"b2"}
    assert (target / "A").read_bytes() == b"a2"
    # The old version stays RETIRED_GRACE s for readers still in it (test_atomic_dir_grace.py).
    assert old.exists() and new.exists()
    assert not (target / "GONE").is_symlink()
    assert sorted(os.listdir(target)) == sorted([DATA, old.name, new.name, "A", "B"])


def test_a_failed_write_leaves_the_published_version_alone(
    shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = shm / "web"
    publish(target, {"A": SecretValue("a1")}, ME)

    def broken(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_dir, "_write", broken)
    with pytest.raises(StorageError, match="No space left"):
        publish(target, {"A": SecretValue("a2")}, ME)
    assert current_files(target) == {"A": b"a1"}
    assert len([n for n in os.listdir(target) if n.startswith("..20")]) == 1


def test_unsafe_file_names_are_refused(shm: Path) -> None:
    for name in ["..data", "../x", "a/b", ".hidden", ""]:
        with pytest.raises(ValueError, match="unsafe"):
            publish(shm / "t", {name: SecretValue("x")}, ME)


@as_root
def test_files_and_directories_belong_to_the_service_user(shm: Path) -> None:
    target = shm / "worker"
    version = publish(target, {"TOKEN": SecretValue("x")}, Owner(1000, 1001))
    for path in (target, version, version / "TOKEN"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (1000, 1001), path
    assert mode(version / "TOKEN") == 0o400


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("DB_PASSWORD", "DB_PASSWORD"),
        ("POSTGRES_PASSWORD_FILE", "POSTGRES_PASSWORD_FILE"),
        ("a.b-c", "a.b-c"),
        ("A:B", "A_B"),
        ("päss word", "p_ss_word"),
        (".env", "_env"),
        ("..data", "_.data"),
    ],
)
def test_file_names_from_variable_names(variable: str, expected: str) -> None:
    assert file_name(variable) == expected
    assert is_safe_file_name(expected)


def test_too_long_variable_names_have_no_file_name() -> None:
    with pytest.raises(ValueError, match="longer than 255"):
        file_name("A" * 256)


# -- the base directory -------------------------------------------------------------------


def test_dev_shm_is_tmpfs_and_tmp_path_is_not(tmp_path: Path) -> None:
    assert filesystem_magic(Path("/dev/shm")) == TMPFS_MAGIC
    assert filesystem_type(Path("/dev/shm")) == "tmpfs"
    assert filesystem_magic(tmp_path) != TMPFS_MAGIC


def test_a_base_on_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        SecretsDir(tmp_path / "secrets").prepare()
    assert "not a tmpfs" in str(info.value)
    assert filesystem_type(tmp_path) in str(info.value)


def test_prepare_creates_a_private_base_and_never_changes_an_existing_one(shm: Path) -> None:
    base = shm / "dso" / "secrets"
    SecretsDir(base).prepare()
    assert mode(base) == 0o700 and mode(base.parent) == 0o700
    # Readable by others, writable by no one else: used as it is, never chmod-ed.
    base.chmod(0o755)
    SecretsDir(base).prepare()
    assert mode(base) == 0o755
    base.chmod(0o775)
    with pytest.raises(StorageError, match="is writable by others"):
        SecretsDir(base).prepare()
    assert mode(base) == 0o775


def test_a_symlinked_or_shared_base_is_refused(shm: Path) -> None:
    real = shm / "real"
    real.mkdir(mode=0o700)
    (shm / "link").symlink_to(real)
    if os.geteuid() == 0:
        os.lchown(shm / "link", 1000, 1000)
    with pytest.raises(StorageError, match=r"symlink|belongs to uid"):
        SecretsDir(shm / "link").prepare()
    shared = shm / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "secrets").mkdir(mode=0o700)
    if os.geteuid() == 0:
        # Owned by root and world-writable without the sticky bit: still refused below.
        os.chown(shared, 1000, 1000)
    with pytest.raises(StorageError, match=r"writable by others|belongs to uid"):
        SecretsDir(shared / "secrets").prepare()


def test_default_base_follows_env_mode_and_xdg(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "home")
    key = home_key(tmp_path / "home")
    assert len(key) == 12
    assert default_base(layout, env={"DSO_SECRETS_DIR": "/x/y"}) == Path("/x/y")
    assert default_base(agent_layout(), env={}) == Path("/run/dso/secrets")
    assert default_base(layout, env={"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        f"/run/user/7/dso/{key}/secrets"
    )
    assert default_base(layout, env={}) == Path(f"/dev/shm/dso-{os.geteuid()}/{key}/secrets")


def test_project_and_service_names_cannot_escape(shm: Path) -> None:
    secrets_dir = SecretsDir(shm)
    for project in ["..", "A", "a/b", ""]:
        with pytest.raises(ValueError):
            secrets_dir.project_dir(project)
    for service in ["..", ".", "a/b"]:
        with pytest.raises(ValueError):
            secrets_dir.service_dir("shop", service)


def test_write_remove_and_stale_cleanup_respect_locks(shm: Path) -> None:
    secrets_dir = SecretsDir(shm / "secrets")
    secrets_dir.prepare()
    for project in ("shop", "old", "busy"):
        secrets_dir.write_service(project, "web", {"A": SecretValue("x")}, ME)
    assert secrets_dir.projects() == ["busy", "old", "shop"]
    assert secrets_dir.idle_for("shop", now=os.stat(shm).st_mtime + 1000) > 900
    with secrets_dir.locked("busy"):
        removed = secrets_dir.remove_stale(["old", "busy", "shop"], active={"shop"})
    assert removed == ["old"]
    assert secrets_dir.projects() == ["busy", "shop"]
    assert secrets_dir.remove_project("shop") is True
    assert secrets_dir.remove_project("shop") is False
    assert secrets_dir.projects() == ["busy"]
