"""Log lines: levels, JSON, and syslog priority prefixes when stderr is the journal."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile

import pytest

from kernel.log import configure, get_logger, stderr_is_journal, syslog_priority


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_syslog_priorities_match_journalctl_p(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_journal_lines_carry_priority_prefix() -> None:
    stream = io.StringIO()
    configure("debug", stream=stream, journal=True)
    log = get_logger("agent")
    log.error("Rotation failed: health check timeout")
    log.info("Agent started")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("<3>[ERROR] dso.agent: Rotation failed")
    assert lines[1].startswith("<6>[INFO] dso.agent: Agent started")


def test_plain_terminal_lines_have_no_prefix() -> None:
    stream = io.StringIO()
    configure("info", stream=stream, journal=False)
    get_logger("x").warning("careful", extra={"trace_id": "t-1"})
    assert stream.getvalue() == "[WARNING] dso.x: careful trace_id=t-1\n"


def test_level_filters() -> None:
    stream = io.StringIO()
    configure("error", stream=stream, journal=False)
    get_logger("x").warning("hidden")
    assert stream.getvalue() == ""


def test_json_format_with_context() -> None:
    stream = io.StringIO()
    configure("info", fmt="json", stream=stream, journal=True)
    get_logger("rotation").info("swap", extra={"trace_id": "abc"})
    line = stream.getvalue().strip()
    assert line.startswith("<6>{")
    doc = json.loads(line[3:])
    assert doc["level"] == "info" and doc["message"] == "swap" and doc["trace_id"] == "abc"


def test_journal_detection_compares_device_and_inode(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryFile("w") as stream, tempfile.TemporaryFile("w") as other:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal(stream)
        assert not stderr_is_journal(other)
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not stderr_is_journal(stream)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not stderr_is_journal(stream)
