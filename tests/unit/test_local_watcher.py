"""providers.local.watcher in-process (threads, no subprocess): inotify on the directory, the
stat-polling fallback, and a clean stop."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.atomic_write import atomic_write
from providers.local.watcher import FileWatcher, InotifyUnavailable, WatchMode

WITHIN = 2.0


class Calls:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def wait(self, timeout: float = WITHIN) -> bool:
        fired = self.event.wait(timeout)
        self.event.clear()
        return fired


@pytest.fixture
def watchers() -> Iterator[list[FileWatcher]]:
    started: list[FileWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()
        assert not watcher._thread.is_alive()


@pytest.mark.parametrize("mode", [WatchMode.INOTIFY, WatchMode.POLL])
def test_a_replaced_file_is_noticed_and_a_sibling_is_not(
    tmp_path: Path, mode: WatchMode, watchers: list[FileWatcher]
) -> None:
    vault = tmp_path / "vault.enc"
    atomic_write(vault, b"one")
    calls = Calls()
    watcher = FileWatcher(vault, calls, mode=mode, poll_interval=0.05)
    watchers.append(watcher)
    assert watcher.mode is mode
    atomic_write(tmp_path / "other.file", b"x")
    (tmp_path / "vault.enc.lock").touch()
    assert not calls.wait(0.3)
    atomic_write(vault, b"two")  # rename over the file, as every vault write does
    assert calls.wait()
    vault.unlink()
    assert calls.wait()


def test_auto_falls_back_to_polling_when_the_directory_is_missing(
    tmp_path: Path, watchers: list[FileWatcher]
) -> None:
    vault = tmp_path / "later" / "vault.enc"
    calls = Calls()
    watcher = FileWatcher(vault, calls, mode=WatchMode.AUTO, poll_interval=0.05)
    watchers.append(watcher)
    assert watcher.mode is WatchMode.POLL
    vault.parent.mkdir()
    atomic_write(vault, b"one")
    assert calls.wait()


def test_inotify_mode_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InotifyUnavailable):
        FileWatcher(tmp_path / "missing" / "vault.enc", Calls(), mode=WatchMode.INOTIFY)


def test_a_deleted_directory_switches_to_polling(
    tmp_path: Path, watchers: list[FileWatcher]
) -> None:
    directory = tmp_path / "home"
    directory.mkdir()
    vault = directory / "vault.enc"
    atomic_write(vault, b"one")
    calls = Calls()
    watcher = FileWatcher(vault, calls, mode=WatchMode.AUTO, poll_interval=0.05)
    watchers.append(watcher)
    assert watcher.mode is WatchMode.INOTIFY
    shutil.rmtree(directory)
    assert calls.wait()
    directory.mkdir()
    atomic_write(vault, b"two")
    assert calls.wait()
    assert watcher.mode is WatchMode.POLL


def test_stop_is_idempotent_and_releases_descriptors(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    watcher = FileWatcher(tmp_path / "vault.enc", Calls(), mode=WatchMode.INOTIFY)
    watcher.stop()
    watcher.stop()
    assert not watcher._thread.is_alive()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_failing_callback_does_not_kill_the_watcher(
    tmp_path: Path, watchers: list[FileWatcher]
) -> None:
    vault = tmp_path / "vault.enc"
    seen = Calls()

    def callback() -> None:
        seen()
        raise RuntimeError("boom")

    watchers.append(FileWatcher(vault, callback, mode=WatchMode.INOTIFY))
    atomic_write(vault, b"one")
    assert seen.wait()
    atomic_write(vault, b"two")
    assert seen.wait()
