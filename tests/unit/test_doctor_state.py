"""The doctor's state checks on real files: state files, rotations awaiting review, orphan
``_dso_`` containers (a fake container listing) and stale rotation locks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kernel.doctor import Status
from kernel.labels import OWNER_LABEL
from kernel.paths import Layout
from kernel.rotation.journal import Journal, RotationEntry
from kernel.rotation.locks import TargetLocks
from kernel.rotation.states import RotationStatus
from tests.unit.doctor_support import FakeDocker, check, container, home, make_context

__all__ = ["home"]
NOW = time.time()


def _entry(rotation_id: str, status: str, *, target: str = "web", at: float = NOW) -> RotationEntry:
    return RotationEntry(
        id=rotation_id,
        trace_id="f" * 32,
        target=target,
        strategy="rolling",
        status=status,
        steps=[{"step": "plan", "at": at}],
        lock_key=f"container:{target}",
        references={"DB_PASSWORD": "dso://app/db"},
        started_at=at,
        updated_at=at,
        error="health check timed out" if status != "in_progress" else None,
    )


def _journal(layout: Layout, *entries: RotationEntry) -> Journal:
    journal = Journal(layout.state)
    for entry in entries:
        journal.save(entry)
    return journal


# -- state.files --------------------------------------------------------------------------------


def test_valid_state_files_pass(home: Layout) -> None:
    (home.state / "runtime.json").write_text(json.dumps({"schema": 1, "pid": 1}))
    _journal(home, _entry("0a0b0c0d", "in_progress"))
    status, finding, detail, _ = check(make_context(home), "state.files")
    assert (status, finding) == (Status.OK, "2 state file(s) parse"), detail


def test_a_corrupt_state_file_fails_naming_it_and_is_left_where_it_is(home: Layout) -> None:
    bad = home.state / "containers.json"
    bad.write_text('{"schema": 1, "containers": {')
    status, finding, _, fix = check(make_context(home), "state.files")
    assert status is Status.FAIL
    assert finding.startswith(f"{bad} is not valid JSON")
    assert f"mv {bad} {bad}.bad" in fix
    assert bad.read_text() == '{"schema": 1, "containers": {'  # not moved aside by the doctor
    assert [p.name for p in home.state.iterdir()] == ["containers.json"]


def test_a_newer_schema_fails(home: Layout) -> None:
    (home.state / "runtime.json").write_text(json.dumps({"schema": 99}))
    status, finding, _, _ = check(make_context(home), "state.files")
    assert status is Status.FAIL
    assert "has schema 99; this dso reads schema 1" in finding


def test_a_corrupt_journal_entry_fails_and_rotations_review_is_not_checked(home: Layout) -> None:
    _journal(home, _entry("0a0b0c0d", "in_progress"))
    entry = home.state / "rotations.d" / "0a0b0c0d.json"
    entry.write_text("garbage")
    ctx = make_context(home)
    status, finding, _, _ = check(ctx, "state.files")
    assert status is Status.FAIL and finding.startswith(f"{entry} is not valid JSON")
    status, finding, _, _ = check(ctx, "rotations.review")
    assert status is Status.WARN
    assert finding == "not checked: the rotation journal has unreadable files (see state.files)"
    assert entry.read_text() == "garbage"


def test_files_moved_aside_earlier_are_a_warning(home: Layout) -> None:
    aside = home.state / "containers.json.corrupt-1700000000"
    aside.write_text("{")
    status, finding, _, fix = check(make_context(home), "state.files")
    assert status is Status.WARN
    assert finding == "1 state file(s) moved aside earlier: containers.json.corrupt-1700000000"
    assert f"rm {aside}" in fix


def test_unreadable_log_lines_are_a_warning_and_a_torn_last_line_is_not(home: Layout) -> None:
    log = home.state / "rotations.log"
    log.write_bytes(b'{"log": "g", "schema": 2}\n{"id": "x"}\n')
    log.write_bytes(log.read_bytes() + b'{"id": "y", "sta')  # an append cut by a crash
    assert check(make_context(home), "state.files")[0] is Status.OK
    log.write_bytes(b'{"log": "g", "schema": 2}\nnot json\n{"id": "x"}\n')
    status, finding, _, _ = check(make_context(home), "state.files")
    assert status is Status.WARN
    assert "1 line(s) that are not JSON (first: line 2)" in finding


# -- rotations.review ---------------------------------------------------------------------------


def test_no_journal_and_finished_rotations_need_no_review(home: Layout) -> None:
    assert check(make_context(home), "rotations.review")[:2] == (
        Status.OK,
        "no rotation journal yet",
    )
    done = _entry("0a0b0c0d", "in_progress")
    _journal(home, done)
    done.finish(RotationStatus.COMPLETED, NOW)
    _journal(home, done)
    assert check(make_context(home), "rotations.review")[:2] == (
        Status.OK,
        "no rotation awaits review",
    )


def test_failed_and_stale_rotations_await_review(home: Layout) -> None:
    _journal(home, _entry("0a0b0c0d", "failed", target="web"))
    status, finding, detail, fix = check(make_context(home), "rotations.review")
    assert status is Status.WARN
    assert finding.startswith("1 rotation(s) await review: web (rotation 0a0b0c0d")
    assert "health check timed out" in finding
    assert "docker dso recover" in fix
    _journal(home, _entry("1a1b1c1d", "in_progress", target="api", at=NOW - 25 * 3600))
    status, finding, detail, _ = check(make_context(home), "rotations.review")
    assert "api (rotation 1a1b1c1d" in detail and "no progress for 24 h" in detail


def test_a_critical_error_fails(home: Layout) -> None:
    broken = _entry("0a0b0c0d", "critical_error")
    broken.recovery = {"action": "adopted", "reason": "only the new container was left"}
    _journal(home, broken)
    status, finding, _, _ = check(make_context(home), "rotations.review")
    assert status is Status.FAIL
    assert "recover could not converge it: only the new container was left" in finding


def test_an_unfinished_rotation_is_in_progress_while_its_lock_is_held(home: Layout) -> None:
    _journal(home, _entry("0a0b0c0d", "in_progress"))
    locks = TargetLocks(home.locks)
    with locks.hold("container:web", wait=0):
        status, finding, _, _ = check(make_context(home), "rotations.review")
        assert (status, finding) == (
            Status.OK,
            "1 rotation(s) in progress, none awaiting review",
        )
    status, finding, _, fix = check(make_context(home), "rotations.review")
    assert status is Status.WARN
    assert "interrupted (no process holds its lock)" in finding
    assert "recovers them when it starts" in fix


# -- containers.orphans -------------------------------------------------------------------------


def test_orphans_are_named_and_an_only_copy_fails(home: Layout) -> None:
    owner = Journal(home.state).owner
    ours = {OWNER_LABEL: owner}
    listing = [
        container("web"),
        container("web_dso_backup_0a0b0c0d", ours),
        container("api_dso_new_1a1b1c1d", ours),
        container("db_dso_new_2a2b2c2d", {OWNER_LABEL: "someone-else"}),
    ]
    status, finding, detail, fix = check(
        make_context(home, docker=FakeDocker(listing)), "containers.orphans"
    )
    assert status is Status.FAIL
    assert finding == (
        "1 service(s) left only as a rotation's container: api_dso_new_1a1b1c1d "
        "(no container is named api)"
    )
    assert "orphan: web_dso_backup_0a0b0c0d (web exists)" in detail
    assert "another dso installation's: db_dso_new_2a2b2c2d (owner someone-else)" in detail
    assert "docker dso recover" in fix
    status, finding, _, _ = check(
        make_context(home, docker=FakeDocker(listing[:2] + listing[3:])), "containers.orphans"
    )
    assert (status, finding) == (
        Status.WARN,
        "1 orphan container(s): web_dso_backup_0a0b0c0d (web exists)",
    )


def test_containers_of_a_rotation_in_progress_and_unlabelled_ones(home: Layout) -> None:
    owner = Journal(home.state).owner
    _journal(home, _entry("0a0b0c0d", "in_progress"))
    listing = [container("web"), container("web_dso_new_0a0b0c0d", {OWNER_LABEL: owner})]
    with TargetLocks(home.locks).hold("container:web", wait=0):
        status, finding, _, _ = check(
            make_context(home, docker=FakeDocker(listing)), "containers.orphans"
        )
    assert (status, finding) == (
        Status.OK,
        "no orphan (1 container(s) of rotations in progress)",
    )
    status, finding, _, _ = check(
        make_context(home, docker=FakeDocker([container("x_dso_new_3a3b3c3d")])),
        "containers.orphans",
    )
    assert status is Status.WARN
    assert finding == "1 _dso_ container(s) no dso installation claims: x_dso_new_3a3b3c3d"


def test_orphans_are_not_checked_without_docker(home: Layout) -> None:
    def down() -> tuple[str, dict[str, object]]:
        from kernel.errors import DockerUnavailableError

        raise DockerUnavailableError("no daemon")

    status, finding, _, _ = check(make_context(home, daemon_version=down), "containers.orphans")
    assert (status, finding) == (
        Status.WARN,
        "not checked: Docker is not reachable (see docker.reachable)",
    )


# -- locks.stale ----------------------------------------------------------------------------------


def _note(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def test_a_lock_held_for_hours_or_by_a_vanished_pid_is_stale(home: Layout) -> None:
    locks = TargetLocks(home.locks)
    assert check(make_context(home), "locks.stale")[:2] == (Status.OK, "no rotation lock is held")
    with locks.hold("service:shop/web", wait=0) as held:
        status, finding, _, _ = check(make_context(home), "locks.stale")
        assert (status, finding) == (Status.OK, "no stale lock (1 held by rotations in progress)")
        _note(held.path, f"pid {os.getpid()} since 2020-01-01T00:00:00Z trace abc")
        status, finding, _, fix = check(make_context(home), "locks.stale")
        assert status is Status.WARN
        assert finding.startswith(f"1 rotation lock(s) held too long: {held.path}: pid")
        assert "held for" in finding and "kill PID" in fix
        _note(held.path, "pid 999999999 since 2020-01-01T00:00:00Z")
        status, finding, _, _ = check(make_context(home), "locks.stale")
        assert "pid 999999999, which took it, is gone" in finding
    # Released: a lock file stays (never deleted), and is not held.
    assert check(make_context(home), "locks.stale")[0] is Status.OK
