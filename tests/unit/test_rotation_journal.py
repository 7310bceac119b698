"""state/rotations.json: schema, atomic durable writes, concurrency, retention, stale detection."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kernel.errors import StorageError
from kernel.rotation.journal import RETENTION, STALE_AFTER, Journal, RotationEntry
from kernel.rotation.states import RotationStatus, Step


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(rotation_id: str = "0a0b0c0d", *, at: float = 1_800_000_000.0) -> RotationEntry:
    return RotationEntry(
        id=rotation_id,
        trace_id="f" * 32,
        target="web",
        strategy="rolling",
        steps=[{"step": "plan", "at": at}],
        old_id="a" * 64,
        references={"DB_PASSWORD": "dso://app/db"},
        versions={"DB_PASSWORD": {"from": "local:1", "to": "local:2"}},
        started_at=at,
        updated_at=at,
    )


def test_save_writes_a_schema_versioned_document(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.save(entry())
    doc = json.loads((tmp_path / "rotations.json").read_text())
    assert doc["schema"] == 1
    assert doc["rotations"][0]["id"] == "0a0b0c0d"
    assert doc["rotations"][0]["status"] == "in_progress"
    assert (tmp_path / "rotations.json").stat().st_mode & 0o777 == 0o600


def test_save_replaces_by_id_and_round_trips(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    item = entry()
    journal.save(item)
    item.advance(Step.CREATE_NEW, 1_800_000_001.0)
    item.new_id = "b" * 64
    journal.save(item)
    (loaded,) = journal.entries()
    assert loaded == item
    assert [s["step"] for s in loaded.steps] == ["plan", "create_new"]


def test_illegal_moves_are_refused() -> None:
    item = entry()
    with pytest.raises(ValueError, match="illegal step"):
        item.advance(Step.RENAME_NEW, 1.0)
    item.finish(RotationStatus.COMPLETED, 2.0)
    with pytest.raises(ValueError, match="illegal status"):
        item.finish(RotationStatus.FAILED, 3.0)


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    journal = Journal(tmp_path)
    journal.save(entry("00000001"))
    before = (tmp_path / "rotations.json").read_bytes()

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kernel.atomic_write.os.replace", broken)
    with pytest.raises(StorageError, match="no space left"):
        journal.save(entry("00000002"))
    assert (tmp_path / "rotations.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rotations")] == []


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    def write(prefix: int) -> None:
        journal = Journal(tmp_path)  # one per "process": only the flock serialises them
        for n in range(10):
            journal.save(entry(f"{prefix:04x}{n:04x}"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(Journal(tmp_path).entries()) == 40


def test_retention_drops_only_old_finished_entries(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    old_done = entry("00000001", at=clock.now - RETENTION - 10)
    old_done.finish(RotationStatus.COMPLETED, clock.now - RETENTION - 5)
    recent_done = entry("00000002", at=clock.now - 100)
    recent_done.finish(RotationStatus.ROLLED_BACK, clock.now - 50)
    old_failed = entry("00000003", at=clock.now - RETENTION - 10)
    old_failed.finish(RotationStatus.FAILED, clock.now - RETENTION - 5)
    old_running = entry("00000004", at=clock.now - RETENTION - 10)
    for item in (old_done, recent_done, old_failed, old_running):
        journal.save(item)
    assert journal.prune() == 1
    assert [e.id for e in journal.entries()] == ["00000002", "00000003", "00000004"]


def test_stale_detection(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    journal.save(entry("00000001", at=clock.now - STALE_AFTER - 1))
    journal.save(entry("00000002", at=clock.now - STALE_AFTER + 60))
    done = entry("00000003", at=clock.now - STALE_AFTER - 1)
    done.finish(RotationStatus.COMPLETED, clock.now - STALE_AFTER)
    journal.save(done)
    assert [e.id for e in journal.stale()] == ["00000001"]
    assert {e.id for e in journal.needing_recovery()} == {"00000001", "00000002"}


def test_a_corrupt_journal_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "rotations.json").write_text("{not json")
    journal = Journal(tmp_path, clock=Clock())
    assert journal.entries() == []
    assert (tmp_path / "rotations.json.corrupt-1800000000").read_text() == "{not json"
    journal.save(entry())
    assert len(journal.entries()) == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rotations.json").write_text('{"schema": 99, "rotations": []}')
    with pytest.raises(StorageError, match="schema 99"):
        Journal(tmp_path).save(entry())
    assert json.loads((tmp_path / "rotations.json").read_text())["schema"] == 99


def test_step_times_and_health_confirmation() -> None:
    item = entry(at=100.0)
    for n, step in enumerate(
        [Step.CREATE_NEW, Step.DELIVER_FILES, Step.START_NEW, Step.HEALTH_GATE], 1
    ):
        item.advance(step, 100.0 + n)
    assert not item.health_confirmed
    item.advance(Step.ATTACH_ALIASES, 110.0)
    assert item.health_confirmed
    item.advance(Step.RENAME_OLD, 110.5)
    item.finish(RotationStatus.FAILED, 111.0)
    times = item.step_times()
    assert times["plan"] == 1.0
    assert times["health_gate"] == 6.0
    assert times["attach_aliases"] == 0.5
    assert times["rename_old"] == 0.5


def test_only_interrupted_rollbacks_need_resuming(tmp_path: Path) -> None:
    """A crash or a lost daemon undid the change: recover rolls it out again. A failed health
    gate or a veto stays undone."""
    journal = Journal(tmp_path, clock=Clock())
    cases = {
        "00000001": ("docker", RotationStatus.ROLLED_BACK, None),
        "00000002": ("health_gate", RotationStatus.ROLLED_BACK, None),
        "00000003": ("vetoed", RotationStatus.ROLLED_BACK, None),
        "00000004": ("crash", RotationStatus.RECOVERED, "rolled_back"),
        "00000005": ("crash", RotationStatus.RECOVERED, "forward"),
        "00000006": ("interrupted", RotationStatus.ROLLED_BACK, None),
    }
    for rotation_id, (cause, status, action) in cases.items():
        item = entry(rotation_id)
        item.cause = cause
        item.finish(status, 1_800_000_001.0)
        item.recovery = {"action": action} if action else None
        journal.save(item)
    assert [e.id for e in journal.needing_resuming()] == ["00000001", "00000004"]
    done = journal.get("00000001")
    assert done is not None
    done.resumed = {"at": 1_800_000_002.0, "status": "completed"}
    journal.save(done)
    assert [e.id for e in journal.needing_resuming()] == ["00000004"]


def test_an_unreadable_entry_is_logged_once(tmp_path: Path, caplog) -> None:
    good = entry().to_dict()
    (tmp_path / "rotations.json").write_text(
        json.dumps({"schema": 1, "rotations": [{"id": "broken"}, good]})
    )
    journal = Journal(tmp_path, clock=Clock())
    for _ in range(4):
        assert [e.id for e in journal.entries()] == ["0a0b0c0d"]
    assert [e.id for e in Journal(tmp_path).entries()] == ["0a0b0c0d"]
    logged = [r for r in caplog.records if "unreadable entry" in r.getMessage()]
    assert len(logged) == 1
