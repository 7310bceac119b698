"""Secret files during a rotation, on a real tmpfs: the new container's own directory, the old
one left alone, undo, and the removal of directories no container mounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kernel.injection.atomic_dir import Owner, current_files, publish
from kernel.rotation.files import FileDelivery, SecretFiles, discard_unmounted, sweep
from kernel.secret_value import SecretValue

ME = Owner(os.geteuid(), os.getegid())


def shared(shm: Path) -> SecretFiles:
    directory = shm / "web"
    publish(directory, {"A": SecretValue("a1"), "B": SecretValue("b1")}, ME)
    return SecretFiles(directory, "/run/secrets/dso")


class Mounting:
    """A Docker client whose containers bind-mount ``sources``."""

    def __init__(self, *sources: Path) -> None:
        self.api = self
        self.sources = sources

    def containers(self, all: bool) -> list[dict[str, Any]]:
        mounts = [{"Type": "bind", "Source": str(s)} for s in self.sources]
        return [{"Id": "x", "Mounts": mounts}]


def test_rotation_directories_are_siblings_named_after_the_rotation(shm: Path) -> None:
    files = SecretFiles(shm / "web@1a2b3c4d", "/run/secrets/dso")
    assert files.base_name == "web"
    assert files.rotation_dir("9f8e7d6c") == shm / "web@9f8e7d6c"


def test_the_new_container_gets_its_own_directory_and_the_old_one_is_untouched(
    shm: Path,
) -> None:
    old = shared(shm)
    delivery = FileDelivery(old, {"A": SecretValue("a2")}, "1a2b3c4d", in_place=False)

    assert delivery.prepare() == {"/run/secrets/dso": str(shm / "web@1a2b3c4d")}
    assert current_files(shm / "web@1a2b3c4d") == {}  # exists before the container is created
    delivery.deliver()

    assert current_files(shm / "web@1a2b3c4d") == {"A": b"a2", "B": b"b1"}
    assert current_files(old.directory) == {"A": b"a1", "B": b"b1"}
    assert delivery.undo(keep_new=False) is False
    assert not (shm / "web@1a2b3c4d").exists()
    assert current_files(old.directory) == {"A": b"a1", "B": b"b1"}


def test_reload_switches_in_place_and_undo_restores(shm: Path) -> None:
    old = shared(shm)
    delivery = FileDelivery(old, {"B": SecretValue("b2")}, "1a2b3c4d", in_place=True)
    assert delivery.prepare() == {} and delivery.new_dir is None
    delivery.deliver()
    assert current_files(old.directory) == {"A": b"a1", "B": b"b2"}
    assert delivery.undo(keep_new=False) is True
    assert current_files(old.directory) == {"A": b"a1", "B": b"b1"}


def test_only_unmounted_rotation_directories_are_removed(shm: Path) -> None:
    old = shared(shm)
    for name in ("web@1a2b3c4d", "web@2b3c4d5e", "worker@3c4d5e6f"):
        publish(shm / name, {"A": SecretValue("x")}, ME)
    client = Mounting(shm / "web@2b3c4d5e")

    assert discard_unmounted(client, [old.directory, shm / "web@2b3c4d5e"]) == []  # type: ignore[arg-type]
    assert sweep(client, shm, "web") == [shm / "web@1a2b3c4d"]  # type: ignore[arg-type]
    assert sorted(p.name for p in shm.iterdir()) == ["web", "web@2b3c4d5e", "worker@3c4d5e6f"]
