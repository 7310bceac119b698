"""The version a ``..data`` swap replaced stays for readers still in it, for RETIRED_GRACE seconds
and no longer; at most the current and one previous version exist (real tmpfs, /dev/shm)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import kernel.injection.atomic_dir as atomic_dir
from kernel.injection.atomic_dir import (
    DATA,
    RETIRED_GRACE,
    Owner,
    current_files,
    publish,
    remove_retired,
)
from kernel.rotation.files import FileDelivery, SecretFiles
from kernel.secret_value import SecretValue

ME = Owner(os.geteuid(), os.getegid())


def pair(version: int) -> dict[str, SecretValue]:
    return {"USER": SecretValue(f"v{version}-user"), "PASS": SecretValue(f"v{version}-pass")}


def versions(target: Path) -> list[str]:
    return sorted(
        e.name
        for e in os.scandir(target)
        if e.name.startswith("..") and e.is_dir(follow_symlinks=False)
    )


def test_the_grace_is_a_few_seconds() -> None:
    # Long enough for a descheduled reader, short enough for a reload rotation to wait it out.
    assert 1.0 <= RETIRED_GRACE <= 10.0


def test_a_reader_that_resolved_data_before_a_swap_still_opens_its_files(shm: Path) -> None:
    target = shm / "web"
    publish(target, pair(1), ME)
    resolved = target / os.readlink(target / DATA)  # a reader resolves ..data once...

    publish(target, pair(2), ME)  # ...a swap happens before it opens its files...

    # ...and it still reads one consistent, complete old pair.
    assert (resolved / "USER").read_bytes() == b"v1-user"
    assert (resolved / "PASS").read_bytes() == b"v1-pass"
    assert current_files(target) == {"USER": b"v2-user", "PASS": b"v2-pass"}


def test_the_previous_version_is_kept_within_the_grace_and_removed_after(shm: Path) -> None:
    target = shm / "web"
    first = publish(target, pair(1), ME)
    second = publish(target, pair(2), ME)
    assert versions(target) == sorted([first.name, second.name])

    swapped = os.lstat(target / DATA).st_mtime
    assert remove_retired(target, now=swapped + RETIRED_GRACE - 0.5) == []
    assert first.exists()

    assert remove_retired(target, now=swapped + RETIRED_GRACE + 0.1) == [first]
    assert versions(target) == [second.name]
    assert current_files(target) == {"USER": b"v2-user", "PASS": b"v2-pass"}


def test_never_more_than_the_current_and_one_previous_version(shm: Path) -> None:
    target = shm / "web"
    published = [publish(target, pair(1), ME)]
    for version in range(2, 7):
        published.append(publish(target, pair(version), ME))
        # The one ..data named before this swap stays; every older one went at the swap.
        assert versions(target) == sorted(p.name for p in published[-2:])
    assert not any(p.exists() for p in published[:-2])


def test_waiting_sleeps_out_the_rest_of_the_grace_then_removes(shm: Path) -> None:
    target = shm / "web"
    first = publish(target, pair(1), ME)
    publish(target, pair(2), ME)
    started = time.monotonic()
    assert remove_retired(target, grace=0.3, wait=True) == [first]
    assert 0.2 <= time.monotonic() - started < 2.0
    assert remove_retired(target, grace=0) == []  # nothing left to remove


def test_grace_zero_removes_every_retired_version_at_once(shm: Path) -> None:
    target = shm / "web"
    first = publish(target, pair(1), ME)
    second = publish(target, pair(2), ME)
    assert remove_retired(target, grace=0) == [first]
    assert versions(target) == [second.name]


def test_a_version_written_after_the_swap_is_not_taken_for_a_retired_one(shm: Path) -> None:
    target = shm / "web"
    publish(target, pair(1), ME)
    current = publish(target, pair(2), ME)
    in_progress = target / "..2099_01_01_00_00_00.another"  # a concurrent writer's, unfinished
    in_progress.mkdir()
    swapped = os.lstat(target / DATA).st_mtime
    os.utime(in_progress, (swapped + 1, swapped + 1))
    removed = remove_retired(target, grace=0)
    assert len(removed) == 1 and in_progress.exists() and current.exists()


def test_reload_removes_the_replaced_values_after_the_grace_and_undo_still_works(
    shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic_dir, "RETIRED_GRACE", 0.2)
    target = shm / "web"
    original = publish(target, pair(1), ME)
    files = SecretFiles(target, "/run/secrets/dso")

    delivery = FileDelivery(files, {"PASS": SecretValue("v2-pass")}, "1a2b3c4d", in_place=True)
    delivery.deliver()
    assert original.exists()  # a reader may still be in it
    delivery.retire_replaced()
    assert not original.exists()
    assert len(versions(target)) == 1
    assert current_files(target) == {"USER": b"v1-user", "PASS": b"v2-pass"}

    rolled_back = FileDelivery(files, {"PASS": SecretValue("v3-pass")}, "2b3c4d5e", in_place=True)
    rolled_back.deliver()
    assert rolled_back.undo(keep_new=False) is True
    rolled_back.retire_replaced()
    assert current_files(target) == {"USER": b"v1-user", "PASS": b"v2-pass"}
    assert len(versions(target)) == 1  # the rejected v3 is gone from the tmpfs


def test_a_new_container_directory_holds_only_its_version(shm: Path) -> None:
    old = SecretFiles(shm / "web", "/run/secrets/dso")
    publish(old.directory, pair(1), ME)
    delivery = FileDelivery(old, {"PASS": SecretValue("v2-pass")}, "1a2b3c4d", in_place=False)
    delivery.prepare()
    delivery.deliver()
    assert delivery.new_dir is not None
    assert len(versions(delivery.new_dir)) == 1  # the empty one of prepare() went at once
    assert current_files(delivery.new_dir) == {"USER": b"v1-user", "PASS": b"v2-pass"}


def test_publishing_the_same_files_again_swaps_nothing_and_waits_for_nothing(shm: Path) -> None:
    """``up`` with unchanged secrets must not retire a version (and then wait out its grace)."""
    target = shm / "web"
    first = publish(target, pair(1), ME)
    link = os.lstat(target / DATA)

    again = publish(target, pair(1), ME)

    assert again == first and versions(target) == [first.name]
    assert os.lstat(target / DATA).st_ino == link.st_ino  # no swap
    started = time.monotonic()
    assert remove_retired(target, wait=True) == []
    assert time.monotonic() - started < RETIRED_GRACE / 4
    # A changed value, or a file fewer, is a real update.
    assert publish(target, pair(2), ME) != first
    assert current_files(target) == {"USER": b"v2-user", "PASS": b"v2-pass"}
    publish(target, {"USER": SecretValue("v2-user")}, ME)
    assert current_files(target) == {"USER": b"v2-user"}
    assert not (target / "PASS").is_symlink()
