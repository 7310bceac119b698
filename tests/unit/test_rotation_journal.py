"""The rotation journal (state/rotations.d, rotations.log, rotations.json): schema, atomic durable
writes whose size does not grow with history, concurrency, migration, retention, stale detection."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kernel.errors import StorageError
from kernel.rotation.journal import (
    PRUNE_SLACK,
    RETENTION,
    STALE_AFTER,
    Journal,
    RotationEntry,
)
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


def test_an_unfinished_entry_has_its_own_file_and_a_finished_one_joins_the_history(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    item = entry()
    journal.save(item)
    own = tmp_path / "rotations.d" / "0a0b0c0d.json"
    doc = json.loads(own.read_text())
    assert doc["schema"] == 2
    assert doc["rotation"]["id"] == "0a0b0c0d"
    assert doc["rotation"]["status"] == "in_progress"
    assert own.stat().st_mode & 0o777 == 0o600
    item.finish(RotationStatus.COMPLETED, 1_800_000_002.0)
    journal.save(item)
    assert not own.exists()
    header, line = (tmp_path / "rotations.log").read_bytes().splitlines()
    assert json.loads(header)["schema"] == 2
    assert json.loads(line)["status"] == "completed"
    assert (tmp_path / "rotations.log").stat().st_mode & 0o777 == 0o600
    assert [e.status for e in Journal(tmp_path).entries()] == ["completed"]


def test_illegal_moves_are_refused() -> None:
    item = entry()
    with pytest.raises(ValueError, match="illegal step"):
        item.advance(Step.RENAME_NEW, 1.0)
    item.finish(RotationStatus.COMPLETED, 2.0)
    with pytest.raises(ValueError, match="illegal status"):
        item.finish(RotationStatus.FAILED, 3.0)


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    journal = Journal(tmp_path)
    item = entry("00000001")
    journal.save(item)
    own = tmp_path / "rotations.d" / "00000001.json"
    before = own.read_bytes()

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kernel.atomic_write.os.replace", broken)
    item.advance(Step.CREATE_NEW, 1_800_000_001.0)
    with pytest.raises(StorageError, match="no space left"):
        journal.save(item)
    assert own.read_bytes() == before
    assert [p.name for p in own.parent.iterdir()] == ["00000001.json"]
    (loaded,) = Journal(tmp_path).entries()
    assert loaded.step == "plan"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    def write(prefix: int) -> None:
        journal = Journal(tmp_path)  # one per "process": only the flock serialises them
        for n in range(10):
            item = entry(f"{prefix:04x}{n:04x}")
            journal.save(item)
            if n % 2:
                item.finish(RotationStatus.COMPLETED, 1_800_000_001.0)
                journal.save(item)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = Journal(tmp_path).entries()
    assert len(entries) == 40
    assert sum(e.status == "completed" for e in entries) == 20
    assert len(Journal(tmp_path).needing_recovery()) == 20


def test_retention_drops_only_old_finished_entries(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    old_done = entry("00000001", at=clock.now - RETENTION - PRUNE_SLACK - 10)
    old_done.finish(RotationStatus.COMPLETED, clock.now - RETENTION - PRUNE_SLACK - 5)
    recent_done = entry("00000002", at=clock.now - 100)
    recent_done.finish(RotationStatus.ROLLED_BACK, clock.now - 50)
    old_failed = entry("00000003", at=clock.now - RETENTION - 10)
    old_failed.finish(RotationStatus.FAILED, clock.now - RETENTION - 5)
    old_running = entry("00000004", at=clock.now - RETENTION - 10)
    for item in (old_done, recent_done, old_failed, old_running):
        journal.save(item)
    assert journal.prune() == 1
    assert [e.id for e in journal.entries()] == ["00000003", "00000004", "00000002"]
    assert [e.id for e in Journal(tmp_path).entries()] == ["00000003", "00000004", "00000002"]
    assert journal.prune() == 0


def test_the_history_is_rewritten_only_once_an_entry_is_an_hour_past_retention(
    tmp_path: Path,
) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    done = entry("00000001", at=clock.now - RETENTION - 10)
    done.finish(RotationStatus.COMPLETED, clock.now - RETENTION - 5)
    journal.save(done)
    assert journal.prune() == 0
    assert [e.id for e in journal.entries()] == ["00000001"]
    clock.now += PRUNE_SLACK
    assert journal.prune() == 1
    assert Journal(tmp_path).entries() == []


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


def test_a_corrupt_journal_is_moved_aside(tmp_path: Path, caplog) -> None:
    (tmp_path / "rotations.json").write_text("{not json")
    journal = Journal(tmp_path, clock=Clock())
    assert journal.entries() == []
    assert (tmp_path / "rotations.json.corrupt-1800000000").read_text() == "{not json"
    journal.save(entry())
    assert len(journal.entries()) == 1
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1


def test_a_corrupt_unfinished_entry_is_moved_aside_once(tmp_path: Path, caplog) -> None:
    journal = Journal(tmp_path, clock=Clock())
    journal.save(entry("00000001"))
    journal.save(entry("00000002"))
    (tmp_path / "rotations.d" / "00000001.json").write_text('{"schema": 2, "rota')
    for _ in range(3):
        assert [e.id for e in journal.needing_recovery()] == ["00000002"]
    assert [e.id for e in Journal(tmp_path).entries()] == ["00000002"]
    assert (tmp_path / "rotations.d" / "00000001.json.corrupt-1800000000").exists()
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "00000001.json" in line


def test_a_journal_of_an_unknown_schema_is_moved_aside(tmp_path: Path, caplog) -> None:
    (tmp_path / "rotations.json").write_text('{"schema": 99, "rotations": []}')
    journal = Journal(tmp_path, clock=Clock())
    journal.save(entry())
    assert [e.id for e in journal.entries()] == ["0a0b0c0d"]
    aside = tmp_path / "rotations.json.unknown-schema-1800000000"
    assert json.loads(aside.read_text())["schema"] == 99
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "rotations.json" in line and "99" in line


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
    """A crash, a lost daemon or a stop (SIGTERM) undid the change: recover rolls it out again.
    A failed health gate or a veto stays undone."""
    journal = Journal(tmp_path, clock=Clock())
    cases = {
        "00000001": ("docker", RotationStatus.ROLLED_BACK, None),
        "00000002": ("health_gate", RotationStatus.ROLLED_BACK, None),
        "00000003": ("vetoed", RotationStatus.ROLLED_BACK, None),
        "00000004": ("crash", RotationStatus.RECOVERED, "rolled_back"),
        "00000005": ("crash", RotationStatus.RECOVERED, "forward"),
        "00000006": ("interrupted", RotationStatus.ROLLED_BACK, None),
        "00000007": ("stopped", RotationStatus.ROLLED_BACK, None),
    }
    for rotation_id, (cause, status, action) in cases.items():
        item = entry(rotation_id)
        item.cause = cause
        item.finish(status, 1_800_000_001.0)
        item.recovery = {"action": action} if action else None
        journal.save(item)
    assert [e.id for e in journal.needing_resuming()] == ["00000001", "00000004", "00000007"]
    done = journal.get("00000001")
    assert done is not None
    done.resumed = {"at": 1_800_000_002.0, "status": "completed"}
    journal.save(done)
    assert [e.id for e in journal.needing_resuming()] == ["00000004", "00000007"]


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


def test_a_torn_history_line_is_skipped_and_what_follows_is_kept(tmp_path: Path, caplog) -> None:
    journal = Journal(tmp_path, clock=Clock())
    first = entry("00000001")
    first.finish(RotationStatus.COMPLETED, 1_800_000_001.0)
    journal.save(first)
    with (tmp_path / "rotations.log").open("ab") as log:
        log.write(b'{"id": "00000002", "sta')  # a crash mid-append
    assert [e.id for e in Journal(tmp_path).entries()] == ["00000001"]
    third = entry("00000003")
    third.finish(RotationStatus.ROLLED_BACK, 1_800_000_001.0)
    journal.save(third)
    for reader in (journal, Journal(tmp_path)):
        assert [e.id for e in reader.entries()] == ["00000001", "00000003"]
    logged = [r for r in caplog.records if "unreadable entry" in r.getMessage()]
    assert len(logged) == 1


def finished_doc(n: int, at: float = 1_800_000_000.0) -> dict[str, object]:
    item = entry(f"{n:08x}", at=at)
    item.finish(RotationStatus.COMPLETED, at + 1)
    return item.to_dict()


def schema_1(path: Path, rotations: list[dict[str, object]]) -> None:
    """A journal as dso wrote it before rotations.d: every entry in rotations.json."""
    path.mkdir(parents=True, exist_ok=True)
    doc = {"schema": 1, "rotations": rotations}
    (path / "rotations.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


def bytes_written(monkeypatch, action) -> int:
    """Bytes ``action`` writes to files (every journal write goes through os.write)."""
    import os

    written = [0]
    real = os.write

    def counting(fd: int, data) -> int:
        done = real(fd, data)
        written[0] += done
        return done

    monkeypatch.setattr(os, "write", counting)
    try:
        action()
    finally:
        monkeypatch.setattr(os, "write", real)
    return written[0]


@pytest.mark.parametrize("kept", [0, 2000])
def test_a_step_writes_the_same_bytes_whatever_the_history(
    tmp_path: Path, monkeypatch, kept: int
) -> None:
    """Before, every save rewrote the whole history (about 1 kB per finished rotation kept)."""
    schema_1(tmp_path, [finished_doc(n) for n in range(kept)])
    journal = Journal(tmp_path)
    assert len(journal.entries()) == kept
    item = entry("f0000001")
    journal.save(item)
    item.advance(Step.CREATE_NEW, 1_800_000_001.0)
    step = bytes_written(monkeypatch, lambda: journal.save(item))
    item.finish(RotationStatus.COMPLETED, 1_800_000_002.0)
    finishing = bytes_written(monkeypatch, lambda: journal.save(item))
    assert 0 < step < 2000  # the entry itself, once
    assert 0 < finishing < 4000  # the entry in its file, then one line of the history
    assert len(Journal(tmp_path).entries()) == kept + 1


def test_a_schema_1_journal_is_migrated_and_its_unfinished_entries_recovered(
    tmp_path: Path,
) -> None:
    running = entry("00000002", at=1_800_000_010.0)
    running.advance(Step.CREATE_NEW, 1_800_000_011.0)
    failed = entry("00000003", at=1_800_000_020.0)
    failed.finish(RotationStatus.FAILED, 1_800_000_021.0)
    schema_1(tmp_path, [finished_doc(1), running.to_dict(), failed.to_dict()])
    journal = Journal(tmp_path, clock=Clock())
    assert {e.id for e in journal.needing_recovery()} == {"00000002", "00000003"}
    assert journal.get("00000002") == running
    assert [e.id for e in journal.entries()] == ["00000001", "00000002", "00000003"]
    doc = json.loads((tmp_path / "rotations.json").read_text())
    assert doc["schema"] == 2
    assert [r["id"] for r in doc["rotations"]] == ["00000001"]
    assert sorted(p.name for p in (tmp_path / "rotations.d").iterdir()) == [
        "00000002.json",
        "00000003.json",
    ]


def test_a_migration_interrupted_after_moving_unfinished_entries_keeps_their_news(
    tmp_path: Path,
) -> None:
    """Killed after rotations.d was in place but before rotations.json was rewritten, while
    a rotation went on: the migration run again does not put the older copy back."""
    running = entry("00000002")
    schema_1(tmp_path, [finished_doc(1), running.to_dict()])
    (tmp_path / "rotations.d.migrating").mkdir()  # an even earlier attempt's leftovers
    Journal(tmp_path).needing_recovery()  # migrates
    schema_1(tmp_path, [finished_doc(1), running.to_dict()])  # as if not rewritten yet
    running.advance(Step.CREATE_NEW, 1_800_000_001.0)
    Journal(tmp_path).save(running)
    assert [e.step for e in Journal(tmp_path).entries() if e.id == "00000002"] == ["create_new"]
    assert not (tmp_path / "rotations.d.migrating").exists()


def test_finishing_interrupted_anywhere_leaves_one_finished_entry(tmp_path: Path) -> None:
    journal = Journal(tmp_path, clock=Clock())
    both = entry("00000001")
    journal.save(both)
    alone = entry("00000002")
    journal.save(alone)
    both.finish(RotationStatus.COMPLETED, 1_800_000_001.0)
    alone.finish(RotationStatus.ROLLED_BACK, 1_800_000_001.0)
    finished_file = {"schema": 2, "rotation": both.to_dict()}
    journal.save(both)
    # Killed after the history line, before the file was removed:
    (tmp_path / "rotations.d" / "00000001.json").write_text(json.dumps(finished_file))
    # Killed after the finished file was written, before the history line:
    (tmp_path / "rotations.d" / "00000002.json").write_text(
        json.dumps({"schema": 2, "rotation": alone.to_dict()})
    )
    reader = Journal(tmp_path, clock=Clock())
    assert reader.needing_recovery() == []
    assert [(e.id, e.status) for e in reader.entries()] == [
        ("00000001", "completed"),
        ("00000002", "rolled_back"),
    ]
    assert reader.get("00000002") == alone


def test_an_interrupted_compaction_does_not_bring_pruned_entries_back(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path, clock=clock)
    old = entry("00000001", at=clock.now - RETENTION - PRUNE_SLACK - 10)
    old.finish(RotationStatus.COMPLETED, clock.now - RETENTION - PRUNE_SLACK - 5)
    journal.save(old)
    stale_log = (tmp_path / "rotations.log").read_bytes()
    assert journal.prune() == 1
    (tmp_path / "rotations.log").write_bytes(stale_log)  # killed before the new log was in place
    assert Journal(tmp_path).entries() == []
    later = entry("00000002")
    later.finish(RotationStatus.COMPLETED, clock.now)
    Journal(tmp_path).save(later)
    assert [e.id for e in Journal(tmp_path).entries()] == ["00000002"]
    assert [e.id for e in journal.entries()] == ["00000002"]


def test_a_long_lived_journal_sees_what_other_processes_wrote(tmp_path: Path) -> None:
    clock = Clock()
    agent = Journal(tmp_path, clock=clock)
    assert agent.entries() == []
    other = Journal(tmp_path, clock=clock)  # a CLI process
    first = entry("00000001", at=clock.now - RETENTION - PRUNE_SLACK - 10)
    first.finish(RotationStatus.COMPLETED, clock.now - RETENTION - PRUNE_SLACK - 5)
    other.save(first)
    assert [e.id for e in agent.entries()] == ["00000001"]
    second = entry("00000002")
    other.save(second)
    second.finish(RotationStatus.COMPLETED, clock.now)
    other.save(second)
    assert [e.id for e in agent.entries()] == ["00000001", "00000002"]
    assert other.prune() == 1
    assert [e.id for e in agent.entries()] == ["00000002"]


def test_entries_are_copies(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    item = entry()
    item.finish(RotationStatus.COMPLETED, 1_800_000_001.0)
    journal.save(item)
    (loaded,) = journal.entries()
    loaded.steps.append({"step": "x", "at": 0})
    loaded.versions["DB_PASSWORD"]["to"] = "changed"
    assert journal.entries() == [item]


def test_an_unsafe_rotation_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="safe file name"):
        Journal(tmp_path).save(entry("../x"))
