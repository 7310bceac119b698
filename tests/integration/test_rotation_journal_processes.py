"""The rotation journal under real processes: two writers lose nothing; SIGKILL at any moment
leaves a journal that reads, with every acknowledged step and every finished entry.

No docker needed, but real subprocesses.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernel.rotation.journal import Journal
from kernel.rotation.states import RotationStatus
from tests.conftest import REPO

pytestmark = pytest.mark.integration

STEPS = ["create_new", "deliver_files", "start_new", "health_gate", "attach_aliases"]

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kernel.rotation.journal import Journal, RotationEntry
    from kernel.rotation.states import RotationStatus, Step

    state, prefix, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    journal = Journal(state)
    while go and not Path(go).exists():  # start together, so the writers really overlap
        time.sleep(0.001)
    for n in range(count):
        entry = RotationEntry(
            id=f"{prefix}{n:04x}", trace_id="f" * 32, target=f"web{prefix}", strategy="rolling",
            started_at=time.time(), updated_at=time.time(),
        )
        journal.save(entry)
        print(entry.id, "plan", flush=True)
        for step in sys.argv[5].split(","):
            entry.advance(Step(step), time.time())
            journal.save(entry)
            print(entry.id, step, flush=True)
        entry.finish(RotationStatus.COMPLETED, time.time())
        journal.save(entry)
        print(entry.id, "completed", flush=True)
    """
)


def writer(state: Path, prefix: str, count: int, go: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(state),
            prefix,
            str(count),
            str(go or ""),
            ",".join(STEPS),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    go = tmp_path / "go"
    writers = [writer(tmp_path / "state", prefix, 8, go) for prefix in ("aaaa", "bbbb")]
    time.sleep(0.5)
    go.touch()
    for process in writers:
        process.communicate(timeout=60)
        assert process.returncode == 0
    entries = Journal(tmp_path / "state").entries()
    assert len(entries) == 16
    assert {e.status for e in entries} == {"completed"}
    assert all(len(e.steps) == len(STEPS) for e in entries)


def test_sigkill_at_any_moment_leaves_every_acknowledged_step(tmp_path: Path, caplog) -> None:
    state = tmp_path / "state"
    order = ["plan", *STEPS, "completed"]
    rng = random.Random(7)
    for round_ in range(6):
        process = writer(state, f"{round_:04x}", 1000)
        assert process.stdout is not None
        acknowledged: dict[str, str] = {}
        for _ in range(rng.randrange(3, 40)):
            rotation_id, step = process.stdout.readline().split()
            acknowledged[rotation_id] = step
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        # What the killed writer still wrote after its last acknowledgement may be there too.
        journal = Journal(state)
        found = {e.id: e for e in journal.entries()}
        for rotation_id, step in acknowledged.items():
            entry = found[rotation_id]
            reached = "completed" if entry.status == "completed" else entry.step
            assert order.index(reached) >= order.index(step), (rotation_id, step, entry)
        unfinished = [e for e in found.values() if e.status != RotationStatus.COMPLETED]
        assert {e.id for e in journal.needing_recovery()} == {e.id for e in unfinished}
        assert len(unfinished) <= round_ + 1  # at most one per killed writer
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
