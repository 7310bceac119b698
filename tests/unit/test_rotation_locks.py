"""One flock per target: exclusion, bounded waits, refusal messages, contention records."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kernel.errors import RotationBusyError
from kernel.rotation.locks import TargetLocks


def test_second_holder_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    locks = TargetLocks(tmp_path)
    with locks.hold("container-web", wait=0, note="trace abc"):
        # flock is per open file description: a second open contends like another process.
        with (
            pytest.raises(RotationBusyError) as caught,
            TargetLocks(tmp_path).hold("container-web", wait=0.05),
        ):
            pass
        assert locks.is_held("container-web")
    message = str(caught.value)
    assert "another rotation of container-web is in progress" in message
    assert "trace abc" in message and "nothing was changed" in message
    assert not locks.is_held("container-web")


def test_other_targets_do_not_contend(tmp_path: Path) -> None:
    locks = TargetLocks(tmp_path)
    with locks.hold("container-web", wait=0), locks.hold("container-db", wait=0) as got:
        assert not got.contended


def test_a_waiter_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    waiter = TargetLocks(
        tmp_path, contention_threshold=0.05, on_contention=lambda t, w: seen.append((t, w))
    )
    held = threading.Event()

    def holder() -> None:
        with TargetLocks(tmp_path).hold("container-web", wait=0):
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    with waiter.hold("container-web", wait=5) as got:
        assert got.contended and 0.1 < got.waited < 5
        assert got.to_dict()["contended"] is True
    thread.join()
    assert seen and seen[0][0] == "container-web" and seen[0][1] == pytest.approx(got.waited)


def test_an_uncontended_acquisition_is_not_contention(tmp_path: Path) -> None:
    seen: list[object] = []
    locks = TargetLocks(tmp_path, on_contention=lambda *a: seen.append(a))
    with locks.hold("container-web", wait=1) as got:
        assert not got.contended and got.waited < 1
    assert seen == []


def test_unsafe_characters_never_leave_the_directory(tmp_path: Path) -> None:
    path = TargetLocks(tmp_path).path("../../etc/passwd")
    assert path.parent == tmp_path
