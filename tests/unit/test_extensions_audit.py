"""The built-in audit log: line shape, permissions, rotation, and never a secret value."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from kernel.errors import StorageError
from kernel.extensions.builtin.audit import KEEP, AuditLog
from kernel.secret_value import SecretValue
from tests.unit.extensions_support import TRACE_ID, capture_logs, facade_with, make_event


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_line_per_event_with_who_what_when_why_outcome(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    extensions = facade_with(("audit", AuditLog(path)))
    event = make_event(trigger="watch", actor="uid=1000(alice)")
    extensions.planned(event)
    extensions.started(event.evolve(step="create"))
    assert extensions.before_swap(event.evolve(step="swap")) is None  # a decision: not logged
    extensions.after_swap(event.evolve(step="swap", new_container="new456"))
    extensions.completed(event.evolve(step="done", new_container="new456"))
    found = lines(path)
    assert [d["event"] for d in found] == [
        "rotation_planned",
        "rotation_started",
        "after_swap",
        "rotation_completed",
    ]
    assert [d["outcome"] for d in found] == ["planned", "in_progress", "swapped", "completed"]
    last = found[-1]
    assert last["trace_id"] == TRACE_ID
    assert last["why"] == "watch"
    assert last["who"] == {
        "uid": os.getuid(),
        "user": last["who"]["user"],  # type: ignore[index]
        "pid": os.getpid(),
        "host": last["who"]["host"],  # type: ignore[index]
        "actor": "uid=1000(alice)",
    }
    assert last["target"] == "web" and last["strategy"] == "rolling"
    assert last["old_container"] == "old123" and last["new_container"] == "new456"
    assert last["versions"] == {"dso://vault/app/db#password": "7"}
    assert last["fingerprints"] == {"dso://vault/app/db#password": "sha256:1f0c2a9b"}
    assert str(last["time"]).endswith("Z")
    assert found[0]["time"] == "2023-11-14T22:13:21.500Z"


def test_failures_rollbacks_and_vetoes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    extensions = facade_with(("audit", AuditLog(path)))
    event = make_event()
    extensions.failed(event.evolve(step="health", error="health check failed: exit 1"))
    extensions.rolled_back(event.evolve(error="health check failed: exit 1"))
    extensions.rolled_back(event.evolve(vetoed_by="freeze", error="change freeze"))
    found = lines(path)
    assert [d["outcome"] for d in found] == ["failed", "rolled_back", "vetoed"]
    assert found[0]["step"] == "health"
    assert found[2]["vetoed_by"] == "freeze"


def test_the_file_is_private_and_no_secret_value_reaches_it(tmp_path: Path, canary: str) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    audit = AuditLog(path)
    with pytest.raises(TypeError):
        make_event(error=SecretValue(canary))  # type: ignore[arg-type]
    event = make_event(fingerprints={"dso://vault/app/db#password": "sha256:ab12"})
    facade_with(("audit", audit)).completed(event)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert canary not in path.read_text()


def test_a_loose_existing_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    AuditLog(path).record("rotation_completed", make_event())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_file_is_rotated_at_its_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, max_size=1500)
    for _ in range(20):
        audit.record("rotation_completed", make_event())
    copies = sorted(p.name for p in tmp_path.iterdir())
    assert copies == ["audit.jsonl", *(f"audit.jsonl.{i}" for i in range(1, KEEP + 1))]
    for copy in tmp_path.iterdir():
        assert copy.stat().st_size <= 1500
        assert all(d["event"] == "rotation_completed" for d in lines(copy))


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers = [AuditLog(path) for _ in range(4)]  # separate objects: separate file handles

    def write(audit: AuditLog) -> None:
        for _ in range(25):
            audit.record("rotation_started", make_event())

    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines(path)) == 100


def test_a_write_failure_is_a_storage_error_isolated_by_the_facade(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    audit = AuditLog(blocker / "audit.jsonl")
    with pytest.raises(StorageError, match="could not append to the audit log"):
        audit.record("rotation_completed", make_event())
    with capture_logs() as logs:
        facade_with(("audit", audit)).completed(make_event())
    assert logs.matching("extension 'audit' raised in dso_rotation_completed")
