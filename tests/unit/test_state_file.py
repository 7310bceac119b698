"""kernel/state.py: schema-versioned state files, atomic writes, snapshot, unusable files aside."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import StorageError
from kernel.state import StateFile

NOW = 1_800_000_000.0


def state(path: Path, **kwargs: Any) -> StateFile:
    return StateFile(path, schema=2, clock=lambda: NOW, **kwargs)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_write_then_read_a_schema_versioned_private_document(tmp_path: Path) -> None:
    path = tmp_path / "state" / "runtime.json"
    state(path).write({"pid": 42, "mode": "local"})
    assert json.loads(path.read_text()) == {"schema": 2, "pid": 42, "mode": "local"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert state(path).read() == {"pid": 42, "mode": "local"}
    assert StateFile(tmp_path / "absent.json", schema=1).read() == {}


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "containers.json"
    state(path).write({"containers": {"a": 1}})
    before = path.read_bytes()

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kernel.atomic_write.os.replace", broken)
    writer = state(path)
    with pytest.raises(StorageError, match=r"containers\.json: no space left"):
        writer.write({"containers": {}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["containers.json"]
    assert writer.read() == {"containers": {"a": 1}}


def test_a_corrupt_file_is_moved_aside_with_one_error_line(tmp_path: Path, caplog) -> None:
    path = tmp_path / "runtime.json"
    path.write_text('{"schema": 2, "pid": 4')  # cut short
    file = state(path)
    assert file.read() == {}
    assert file.read() == {}
    assert state(path).read() == {}
    assert (tmp_path / "runtime.json.corrupt-1800000000").read_text() == '{"schema": 2, "pid": 4'
    assert not path.exists()
    (line,) = errors(caplog)
    assert str(path) in line and "runtime.json.corrupt-1800000000" in line
    file.write({"pid": 5})
    assert state(path).read() == {"pid": 5}


@pytest.mark.parametrize("content", ['{"schema": 3, "pid": 1}', '{"pid": 1}', '{"schema": 1}'])
def test_an_unknown_schema_is_moved_aside(tmp_path: Path, caplog, content: str) -> None:
    path = tmp_path / "containers.json"
    path.write_text(content)
    assert state(path).read() == {}
    assert (tmp_path / "containers.json.unknown-schema-1800000000").read_text() == content
    (line,) = errors(caplog)
    assert str(path) in line and "schema" in line


def test_an_older_schema_is_migrated_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "runtime.json"
    path.write_text('{"schema": 1, "process": 7}')

    def migrate(schema: int, body: dict[str, Any]) -> dict[str, Any]:
        assert schema == 1
        return {"pid": body["process"]}

    assert state(path, migrate=migrate).read() == {"pid": 7}
    assert json.loads(path.read_text()) == {"schema": 2, "pid": 7}


def test_the_snapshot_is_not_reread_while_unchanged(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "runtime.json"
    mine, other = state(path), state(path)
    mine.write({"n": 1})
    parsed: list[bytes] = []
    real = json.loads
    monkeypatch.setattr("kernel.state.json.loads", lambda raw: parsed.append(raw) or real(raw))
    first = mine.snapshot()
    assert mine.snapshot() is first and first == {"n": 1}
    assert parsed == []  # this process wrote last: nothing to parse
    assert other.snapshot() == {"n": 1}
    assert other.snapshot() == {"n": 1}
    assert len(parsed) == 1  # read once, then kept
    other.write({"n": 2})  # "another process" writes: the first one sees it
    assert mine.snapshot() == {"n": 2}
    assert len(parsed) == 2


def test_read_returns_a_copy_the_caller_may_change(tmp_path: Path) -> None:
    file = state(tmp_path / "containers.json")
    file.write({"containers": {"a": {"refs": ["x"]}}})
    copy = file.read()
    copy["containers"]["a"]["refs"].append("y")
    assert file.read() == {"containers": {"a": {"refs": ["x"]}}}


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runtime.json"

    def bump() -> None:
        file = state(path)  # one object per "process": only the flock serialises them
        for _ in range(10):
            file.update(lambda doc: {**doc, "n": doc.get("n", 0) + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state(path).read() == {"n": 40}
