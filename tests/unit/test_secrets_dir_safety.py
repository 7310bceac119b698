"""The secrets directory is checked, never repaired: dso changes no directory it did not create,
and follows no symlink planted under the base (issue 9, items 2, 3 and 7).

Bases live in private directories on /dev/shm; "a disk" is ``tmp_path`` (not a tmpfs here).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import kernel.injection.atomic_dir as atomic_dir
from kernel.errors import ExitCode, StorageError
from kernel.injection.atomic_dir import Owner, current_files, publish
from kernel.injection.tmpfs import TMPFS_MAGIC, SecretsDir, default_base, filesystem_magic
from kernel.paths import local_layout
from kernel.rotation.files import FileDelivery, SecretFiles
from kernel.secret_value import SecretValue

ME = Owner(os.geteuid(), os.getegid())
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    """A directory on the work disk, where a secret must never land."""
    assert filesystem_magic(tmp_path) != TMPFS_MAGIC
    path = tmp_path / "on-disk"
    path.mkdir()
    return path


# -- item 2: an existing base is checked, never chmod-ed or chown-ed ------------------------


@pytest.mark.parametrize("bits", [0o770, 0o707, 0o777, 0o720])
def test_a_base_writable_by_others_is_refused_and_left_as_it_was(shm: Path, bits: int) -> None:
    base = shm / "secrets"
    base.mkdir()
    base.chmod(bits)
    for call in (SecretsDir(base).prepare, SecretsDir(base).check):
        with pytest.raises(StorageError, match=r"is writable by others") as info:
            call()
        assert info.value.exit_code == ExitCode.STORAGE
        assert str(base) in info.value.message
        assert mode(base) == bits
    assert os.listdir(base) == []


def test_a_sticky_base_such_as_dev_shm_itself_is_refused(shm: Path) -> None:
    base = shm / "shared"
    base.mkdir()
    base.chmod(0o1777)
    with pytest.raises(StorageError, match="is sticky") as info:
        SecretsDir(base).prepare()
    assert mode(base) == 0o1777
    # The hint names a directory dso creates itself, not /dev/shm.
    assert info.value.hint is not None and "/dev/shm/dso-$(id -u)" in info.value.hint
    base.chmod(0o1700)  # sticky alone, even private
    with pytest.raises(StorageError, match="is sticky"):
        SecretsDir(base).prepare()
    assert mode(base) == 0o1700
    with pytest.raises(StorageError, match="is sticky"):
        SecretsDir(Path("/dev/shm")).check()


def test_a_symlinked_base_is_refused_even_when_it_is_ours(shm: Path) -> None:
    real = shm / "real"
    real.mkdir(mode=0o700)
    (shm / "link").symlink_to(real)
    with pytest.raises(StorageError, match="is a symlink"):
        SecretsDir(shm / "link").prepare()
    with pytest.raises(StorageError, match="is a symlink"):
        SecretsDir(shm / "link").check()
    assert os.listdir(real) == []


@as_root
def test_a_base_of_another_user_is_refused_and_keeps_its_owner(shm: Path) -> None:
    base = shm / "theirs"
    base.mkdir(mode=0o700)
    os.chown(base, NOBODY, NOBODY)
    with pytest.raises(StorageError, match=f"belongs to uid {NOBODY}, not to dso's uid 0"):
        SecretsDir(base).prepare()
    st = os.lstat(base)
    assert (st.st_uid, st.st_gid, mode(base)) == (NOBODY, NOBODY, 0o700)


def test_a_directory_above_the_base_that_others_can_write_is_refused(shm: Path) -> None:
    above = shm / "open"
    above.mkdir()
    above.chmod(0o777)  # not sticky: anyone could rename our base away and plant another
    with pytest.raises(StorageError, match=f"{above}: it is writable by others"):
        SecretsDir(above / "secrets").prepare()
    assert not (above / "secrets").exists() and mode(above) == 0o777


def test_check_creates_nothing_and_accepts_a_base_dso_would_create(shm: Path) -> None:
    base = shm / "dso-1" / "abc" / "secrets"
    SecretsDir(base).check()
    assert not (shm / "dso-1").exists()
    SecretsDir(base).prepare()
    assert mode(base) == 0o700 and mode(shm / "dso-1") == 0o700


# -- item 3: nothing under the base is followed ---------------------------------------------


def test_a_symlinked_project_dir_is_refused_and_nothing_lands_on_disk(
    shm: Path, disk: Path
) -> None:
    secrets_dir = SecretsDir(shm / "secrets")
    secrets_dir.prepare()
    (shm / "secrets" / "shop").symlink_to(disk)
    with pytest.raises(StorageError, match="shop: it is a symlink") as info:
        secrets_dir.write_service("shop", "web", {"TOKEN": SecretValue("x" * 1024)}, ME)
    assert info.value.exit_code == ExitCode.STORAGE
    assert files_under(disk) == []


def test_a_symlinked_service_dir_is_refused_and_nothing_lands_on_disk(
    shm: Path, disk: Path
) -> None:
    secrets_dir = SecretsDir(shm / "secrets")
    secrets_dir.prepare()
    secrets_dir.write_service("shop", "web", {"TOKEN": SecretValue("one")}, ME)
    (shm / "secrets" / "shop" / "worker").symlink_to(disk)
    with pytest.raises(StorageError, match="worker: it is a symlink"):
        secrets_dir.write_service("shop", "worker", {"TOKEN": SecretValue("two")}, ME)
    assert files_under(disk) == []
    # A service directory swapped for a symlink after the first up: refused just the same.
    web = shm / "secrets" / "shop" / "web"
    web.rename(shm / "secrets" / "shop" / "web.old")
    web.symlink_to(disk)
    with pytest.raises(StorageError, match="web: it is a symlink"):
        secrets_dir.write_service("shop", "web", {"TOKEN": SecretValue("three")}, ME)
    assert files_under(disk) == []


def test_a_rotation_dir_planted_as_a_symlink_is_refused(shm: Path, disk: Path) -> None:
    project = shm / "shop"
    project.mkdir(mode=0o700)
    publish(project / "web", {"A": SecretValue("a1")}, ME)
    (project / "web@1a2b3c4d").symlink_to(disk)
    delivery = FileDelivery(
        SecretFiles(project / "web", "/run/secrets/dso"),
        {"A": SecretValue("a2")},
        "1a2b3c4d",
        in_place=False,
    )
    with pytest.raises(StorageError, match=r"web@1a2b3c4d: it is a symlink"):
        delivery.prepare()
    assert files_under(disk) == []


def test_a_version_dir_swapped_for_a_symlink_is_refused(
    shm: Path, disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service dir belongs to the container's user, who could swap the fresh version
    directory for a symlink to a disk between its creation and the writes."""
    real_mkdtemp = atomic_dir.tempfile.mkdtemp

    def swapped(prefix: str, dir: Path) -> str:
        made = real_mkdtemp(prefix=prefix, dir=dir)
        os.rmdir(made)
        os.symlink(disk, made)
        return made

    monkeypatch.setattr(atomic_dir.tempfile, "mkdtemp", swapped)
    with pytest.raises(StorageError, match="it is a symlink"):
        publish(shm / "web", {"A": SecretValue("x")}, ME)
    assert files_under(disk) == []
    assert current_files(shm / "web") == {}


@as_root
def test_a_project_dir_of_another_user_is_refused(shm: Path) -> None:
    secrets_dir = SecretsDir(shm / "secrets")
    secrets_dir.prepare()
    planted = shm / "secrets" / "shop"
    planted.mkdir(mode=0o700)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(StorageError, match=f"belongs to uid {NOBODY}"):
        secrets_dir.write_service("shop", "web", {"A": SecretValue("x")}, ME)
    assert os.listdir(planted) == []
    assert os.lstat(planted).st_uid == NOBODY


def test_a_service_target_on_a_disk_is_refused(disk: Path) -> None:
    """Bytes are written only where statfs says tmpfs (checked on the directory written)."""
    disk.chmod(0o700)
    with pytest.raises(StorageError, match="is not on a tmpfs"):
        publish(disk / "web", {"A": SecretValue("x")}, ME)
    assert files_under(disk) == ["web"]  # the empty directory, no file


def test_a_planted_lock_symlink_is_refused(shm: Path, disk: Path) -> None:
    secrets_dir = SecretsDir(shm / "secrets")
    secrets_dir.prepare()
    (shm / "secrets" / ".shop.lock").symlink_to(disk / "lock")
    with pytest.raises(StorageError, match="lock"), secrets_dir.locked("shop"):
        pass
    assert files_under(disk) == []


def test_remove_project_says_what_it_really_removed(shm: Path, disk: Path) -> None:
    secrets_dir = SecretsDir(shm / "secrets")
    secrets_dir.prepare()
    assert secrets_dir.remove_project("shop") is False
    secrets_dir.write_service("shop", "web", {"A": SecretValue("x")}, ME)
    assert secrets_dir.remove_project("shop") is True
    assert not (shm / "secrets" / "shop").exists()
    (disk / "keep").write_text("not dso's")
    (shm / "secrets" / "shop").symlink_to(disk)
    with pytest.raises(StorageError, match=r"it is a symlink.*nothing was removed"):
        secrets_dir.remove_project("shop")
    assert (shm / "secrets" / "shop").is_symlink()
    assert (disk / "keep").read_text() == "not dso's"


# -- item 7: one base per dso home -------------------------------------------------------------


def test_two_homes_of_one_user_get_different_bases(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for env in ({}, {"XDG_RUNTIME_DIR": "/run/user/7"}):
        base_one = default_base(local_layout(one), env=env)
        base_two = default_base(local_layout(two), env=env)
        assert base_one != base_two
        assert base_one.name == base_two.name == "secrets"
    # The same home reached through a symlink is the same home.
    one.mkdir()
    (tmp_path / "alias").symlink_to(one)
    assert default_base(local_layout(tmp_path / "alias"), env={}) == default_base(
        local_layout(one), env={}
    )
    # DSO_SECRETS_DIR still names the base itself.
    env = {"DSO_SECRETS_DIR": "/dev/shm/mine"}
    assert default_base(local_layout(one), env=env) == default_base(local_layout(two), env=env)


@as_root
def test_directories_and_symlinks_above_the_base_must_be_dsos_or_roots(shm: Path) -> None:
    theirs = shm / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(StorageError, match=f"{theirs}: it is a directory that belongs to uid"):
        SecretsDir(theirs / "secrets").prepare()
    assert not (theirs / "secrets").exists()
    # A symlink of another user above the base: it could be pointed anywhere.
    safe = shm / "safe"
    safe.mkdir(mode=0o700)
    (shm / "their-link").symlink_to(safe)
    os.lchown(shm / "their-link", NOBODY, NOBODY)
    with pytest.raises(StorageError, match="is a symlink that belongs to uid"):
        SecretsDir(shm / "their-link" / "secrets").prepare()
    # dso's own symlink is followed, and where it leads is checked too.
    (shm / "my-link").symlink_to(safe)
    SecretsDir(shm / "my-link" / "secrets").prepare()
    assert mode(safe / "secrets") == 0o700
    open_dir = shm / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    (shm / "to-open").symlink_to(open_dir)
    with pytest.raises(StorageError, match=f"{open_dir}: it is writable by others"):
        SecretsDir(shm / "to-open" / "secrets").prepare()
    assert not (open_dir / "secrets").exists()
