"""The journal's history as a long-lived reader keeps it (kernel/rotation/history.py): summaries
with the documents packed, the compacted file read and written one entry at a time, and what
10,000-odd finished rotations cost in memory."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.rotation import history
from kernel.rotation.journal import SCHEMA, Journal, RotationEntry, summary_of
from kernel.rotation.states import RotationStatus

STEPS = ["plan", "create_new", "deliver_files", "start_new", "health_gate", "attach_aliases"]


def finished(n: int, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
    """A finished rolling rotation as the engine journals it (about 1.3 kB of JSON)."""
    at = time.time() - 86400 + n if at is None else at
    doc: dict[str, Any] = {
        "id": f"{n:012x}",
        "trace_id": f"{n:032x}",
        "target": f"shop-web-{n % 4 + 1}",
        "strategy": "rolling",
        "strategy_reason": "auto: no fixed host ports",
        "status": "completed",
        "step": STEPS[-1],
        "steps": [{"step": s, "at": at + i} for i, s in enumerate(STEPS)],
        "old_id": f"{n:064x}",
        "old_name": f"shop-web-{n % 4 + 1}",
        "new_id": f"{n + 1:064x}",
        "new_name": f"shop-web-{n % 4 + 1}_dso_new_{n:08x}",
        "lock_key": "service-shop.web",
        "references": {"DB_PASSWORD": "dso://shop/db"},
        "versions": {"DB_PASSWORD": {"from": "local:1", "to": "local:2"}},
        "started_at": at,
        "updated_at": at + 6,
        "finished_at": at + 6,
        "health": {
            "healthy": True,
            "probe": "running for 2s",
            "reason": "passed",
            "attempts": 1,
            "elapsed": 2.0,
            "last_exit_code": None,
            "last_output": "",
        },
        "lock": {"waited": 0.0, "contended": False},
        "pid": 4711,
        "host": "build-1",
        **fields,
    }
    return RotationEntry.from_dict(doc).to_dict()


def seed_log(state: Path, docs: list[dict[str, Any]]) -> None:
    """A journal whose finished entries are all in rotations.log (as Journal.save leaves them)."""
    journal = Journal(state)
    journal.save(RotationEntry.from_dict(docs[0]))
    with (state / "rotations.log").open("ab") as log:
        for doc in docs[1:]:
            log.write(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def seed_compacted(state: Path, docs: list[dict[str, Any]]) -> None:
    """A journal whose finished entries are all in rotations.json (as a compaction leaves
    them)."""
    (state / "rotations.d").mkdir(parents=True)
    body = {"log": "0123456789abcdef", "rotations": docs, "schema": SCHEMA}
    (state / "rotations.json").write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")


# -- the compacted file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "docs",
    [
        [],
        [finished(1)],
        [finished(1), finished(2, error='a "quoted"\nline — ünïcode', references={})],
    ],
)
def test_dump_writes_what_json_dumps_writes(docs: list[dict[str, Any]]) -> None:
    body = {"log": "0123456789abcdef", "rotations": docs, "schema": SCHEMA}
    expected = json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"

    chunks = list(history.dump("0123456789abcdef", iter(docs), schema=SCHEMA))

    assert b"".join(chunks) == expected


def trickle(text: str, size: int) -> Callable[[int], str]:
    """A file's ``read`` that gives at most ``size`` characters at a time (``0``: all asked)."""
    source = io.StringIO(text)
    return lambda n: source.read(min(n, size) if size else n)


@pytest.mark.parametrize("size", [0, 1, 7])
@pytest.mark.parametrize(
    "text",
    [
        '{"schema": 2, "log": "g", "rotations": [{"id": "a"}, {"id": "b"}], "x": [1, {}]}',
        '\n\t{ "rotations" : [ ] , "schema":2 }\r\n',
        "{}",
        '{"rotations": null, "schema": 12345}',
        '{"schema": 2, "log": "g", "log": "h"}',
        '{"rotations": [12345, -1.5e10, "x\\"y", true, null, [1, [2]]], "schema": 2}',
        json.dumps({"log": "g", "rotations": [finished(n) for n in range(3)]}, indent=1),
    ],
)
def test_scan_reads_what_json_loads_reads(text: str, size: int) -> None:
    """Read whole, or a character or seven at a time: values cut by a read's end, numbers
    too, come out whole."""
    items: list[tuple[int, object]] = []

    def item(index: int, value: object, source: str) -> None:
        assert json.loads(source) == value
        items.append((index, value))

    members = history.scan(trickle(text, size), item)

    expected = json.loads(text)
    rotations = expected.pop("rotations", None)
    if isinstance(rotations, list):
        assert items == list(enumerate(rotations))
    else:
        assert items == [] and members.pop("rotations", None) == rotations
    assert members == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"schema": 2',
        '{"schema": 2}}',
        '{"schema": 2} x',
        '{"schema" 2}',
        '{"rotations": [{"id": "a"} {"id": "b"}]}',
        '{"rotations": [{"id": "a"},]}',
        '{"rotations": [{"id": "a"}',
        '{"rotations": [], "rotations": []}',
        "{1: 2}",
    ],
)
def test_scan_refuses_what_is_not_one_json_object(text: str) -> None:
    for size in (0, 1):
        with pytest.raises(ValueError):
            history.scan(trickle(text, size), lambda index, item, source: None)


# -- summaries ------------------------------------------------------------------------------


def test_a_summary_keeps_what_readers_filter_on_and_gives_the_whole_document_back() -> None:
    doc = finished(7, lock={"waited": 2.5, "contended": True}, extra_key="kept as it was")
    doc["health"].update(healthy=False, elapsed=31.0)
    entry = RotationEntry.from_dict(doc)
    entry.cause = "docker"
    entry.status = RotationStatus.ROLLED_BACK.value

    summary = summary_of(entry, {**doc, "cause": "docker", "status": "rolled_back"})

    assert (summary.id, summary.status, summary.trace_id) == (
        "000000000007",
        "rolled_back",
        f"{7:032x}",
    )
    assert (summary.target, summary.lock_key) == ("shop-web-4", "service-shop.web")
    assert summary.new_name == "shop-web-4_dso_new_00000007"
    assert summary.started_at == doc["started_at"] and summary.finished_at == doc["finished_at"]
    assert summary.contended and not summary.healthy and summary.gate_seconds == 31.0
    assert summary.resumable  # rolled back because the daemon was lost: to roll out again
    assert summary.document() == {**doc, "cause": "docker", "status": "rolled_back"}
    assert len(summary.packed) < len(json.dumps(doc)) / 2


def test_a_summary_of_an_entry_without_gate_lock_or_end() -> None:
    entry = RotationEntry(id="r1", trace_id="t", target="web", strategy="restart", started_at=5)

    summary = summary_of(entry)

    assert summary.gate_seconds is None and not summary.healthy and not summary.contended
    assert summary.finished_at == 0.0 and summary.started_at == 5.0 and not summary.resumable
    assert RotationEntry.from_dict(summary.document()) == entry


# -- what the history costs -------------------------------------------------------------------

ENTRIES = 3000


@pytest.mark.parametrize("layout", ["log", "compacted"])
def test_a_long_history_costs_a_few_hundred_bytes_an_entry(tmp_path: Path, layout: str) -> None:
    """An agent read 10,000 finished rotations as parsed JSON: 6 kB of objects an entry kept
    for its life (60 MB), twice that at its start, and a compaction held the whole file and
    another parsed copy (CPython and glibc keep such peaks as RSS)."""
    expired = 10
    now = time.time()
    docs = [finished(n, at=now - 9 * 86400 + n if n < expired else None) for n in range(ENTRIES)]
    (seed_log if layout == "log" else seed_compacted)(tmp_path, docs)
    journal = Journal(tmp_path)

    tracemalloc.start()
    try:
        summaries = journal.summaries()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pruned = journal.prune()  # rewrites rotations.json with the other entries
        compacted, compaction_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(summaries) == ENTRIES and pruned == expired
    assert summaries[-1].document() == docs[-1]
    assert [e.id for e in Journal(tmp_path).entries()] == [d["id"] for d in docs[expired:]]
    print(
        f"{layout}: {held / ENTRIES:.0f} bytes an entry held, {peak / ENTRIES:.0f} at the "
        f"peak, {(compaction_peak - held) / ENTRIES:.0f} more while compacting"
    )
    assert held / ENTRIES < 1500
    assert peak / ENTRIES < 1500  # the files are read a chunk or a line at a time
    assert compacted / ENTRIES < 1500
    assert (compaction_peak - held) / ENTRIES < 500  # written a chunk at a time


def test_a_compaction_writes_the_history_as_before_and_keeps_what_it_knows(
    tmp_path: Path,
) -> None:
    now = time.time()
    old = [finished(n, at=now - 9 * 86400 + n) for n in range(3)]
    kept = [finished(n, at=now - 3600 + n) for n in range(3, 8)]
    seed_log(tmp_path, old + kept)
    journal = Journal(tmp_path)

    assert journal.prune() == 3

    body = json.loads((tmp_path / "rotations.json").read_text())
    assert body["rotations"] == kept and body["schema"] == SCHEMA
    expected = json.dumps(body, indent=1, sort_keys=True) + "\n"
    assert (tmp_path / "rotations.json").read_text() == expected
    assert [s.id for s in journal.summaries()] == [d["id"] for d in kept]
    # A new process (a CLI) appends after reading only the generation, then reads it all.
    other = Journal(tmp_path)
    later = RotationEntry.from_dict(finished(9, at=now))
    other.save(later)
    for reader in (other, journal, Journal(tmp_path)):
        assert [e.id for e in reader.entries()] == [d["id"] for d in kept] + [later.id]


def test_a_hand_edited_history_is_read_as_json_is(tmp_path: Path, caplog) -> None:
    """Another layout, a key dso does not know, an entry that is not one: read, the bad one
    logged once and skipped."""
    docs = [finished(1), {"id": "broken"}, finished(2)]
    (tmp_path / "rotations.d").mkdir(parents=True)
    (tmp_path / "rotations.json").write_text(
        json.dumps({"schema": 2, "note": "by hand", "rotations": docs, "log": "g"})
    )

    for reader in (Journal(tmp_path), Journal(tmp_path)):
        assert [e.id for e in reader.entries()] == [docs[0]["id"], docs[2]["id"]]
    logged = [r for r in caplog.records if "unreadable entry" in r.getMessage()]
    assert len(logged) == 1
