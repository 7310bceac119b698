"""The agent's records as journald entries: priorities, identifier, DSO_* fields, masking, and
the fall back to stderr (no systemd, journald refusing, cysystemd missing).

The wire itself (libsystemd's sd_journal_sendv into a socket) is tested with the real agent in
tests/integration/test_agent_notify.py; here the sender is a list that keeps what it is given.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import kernel.log
from kernel.journald import JournaldHandler, field_name, journal_fields
from kernel.log import TextFormatter, configure, get_logger, under_systemd
from kernel.secret_value import SecretValue


@pytest.fixture(autouse=True)
def _restore_dso_logger() -> Iterator[None]:
    logger = logging.getLogger("dso")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers[:] = saved[2]


@pytest.fixture
def journal_socket() -> Iterator[Path]:
    """A real AF_UNIX datagram socket standing where journald's would be."""
    directory = Path(tempfile.mkdtemp(prefix="dso-j-"))
    path = directory / "socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield path
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        directory.rmdir()


def record(level: int, msg: str, name: str = "dso.agent", **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord(
        {"name": name, "levelno": level, "levelname": logging.getLevelName(level), "msg": msg}
    )
    # extra= context, as Logger.makeRecord sets it
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


@pytest.mark.parametrize(
    ("level", "priority", "shown_by_p_err", "shown_by_p_warning"),
    [
        (logging.DEBUG, "7", False, False),
        (logging.INFO, "6", False, False),
        (logging.WARNING, "4", False, True),
        (logging.ERROR, "3", True, True),
        (logging.CRITICAL, "2", True, True),
    ],
)
def test_levels_map_to_the_priorities_journalctl_p_filters_on(
    level: int, priority: str, shown_by_p_err: bool, shown_by_p_warning: bool
) -> None:
    fields = journal_fields(record(level, "x"), "dso-agent", "x")
    assert fields["PRIORITY"] == priority
    # `journalctl -p err` shows PRIORITY 0..3, `-p warning` 0..4.
    assert (int(fields["PRIORITY"]) <= 3) is shown_by_p_err
    assert (int(fields["PRIORITY"]) <= 4) is shown_by_p_warning


def test_an_entry_carries_the_identifier_the_message_and_the_rotation_context() -> None:
    rec = record(
        logging.INFO,
        "Rotation complete: dso://app/db",
        trace_id="4bf92f35",
        service="web",
        project="shop",
        container="shop-web-1",
        target="service-shop.web",
    )
    fields = journal_fields(rec, "dso-agent", "[INFO] dso.agent: Rotation complete")
    assert fields["SYSLOG_IDENTIFIER"] == "dso-agent"
    assert fields["MESSAGE"] == "[INFO] dso.agent: Rotation complete"
    assert fields["SYSLOG_FACILITY"] == "3"
    assert fields["DSO_LOGGER"] == "dso.agent"
    assert fields["DSO_TRACE_ID"] == "4bf92f35"
    assert fields["DSO_SERVICE"] == "web"
    assert fields["DSO_PROJECT"] == "shop"
    assert fields["DSO_CONTAINER"] == "shop-web-1"
    assert fields["DSO_TARGET"] == "service-shop.web"
    assert fields["CODE_LINE"].isdigit() and "CODE_FILE" in fields and "CODE_FUNC" in fields
    for name in fields:  # journald's rule for field names
        assert name[0] != "_" and not name[0].isdigit() and len(name) <= 64
        assert all(c.isupper() or c.isdigit() or c == "_" for c in name), name


def test_a_provider_s_relogged_lines_name_the_provider() -> None:
    fields = journal_fields(record(logging.WARNING, "slow", name="dso.provider.vault"), "i", "m")
    assert fields["DSO_PROVIDER"] == "vault"
    explicit = record(logging.INFO, "x", provider="aws")
    assert journal_fields(explicit, "i", "m")["DSO_PROVIDER"] == "aws"


def test_context_values_are_masked_and_names_made_valid(canary: str) -> None:
    rec = record(logging.INFO, "x", value=SecretValue(canary))
    for key, value in {"provider-pid": 42, "weird key!": "v", "none": None}.items():
        setattr(rec, key, value)
    fields = journal_fields(rec, "i", "m")
    assert canary not in repr(fields)
    assert fields["DSO_VALUE"] == "********"
    assert fields["DSO_PROVIDER_PID"] == "42"
    assert fields["DSO_WEIRD_KEY_"] == "v"
    assert "DSO_NONE" not in fields
    assert field_name("x" * 100) == ("DSO_" + "X" * 100)[:64]


def test_the_handler_sends_one_entry_per_record_with_the_formatted_message(
    canary: str,
) -> None:
    sent: list[Mapping[str, str]] = []
    fallback = logging.StreamHandler(io.StringIO())

    def send(fields: Mapping[str, str]) -> int:
        sent.append(dict(fields))
        return 0

    handler = JournaldHandler("dso-agent", send, fallback=fallback)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("dso")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    get_logger("rotation").error(
        "Rotation failed: %s", "health gate", extra={"trace_id": "t1", "value": SecretValue(canary)}
    )
    (entry,) = sent
    assert entry["MESSAGE"].startswith("[ERROR] dso.rotation: Rotation failed: health gate")
    assert "trace_id=t1" in entry["MESSAGE"]
    assert entry["PRIORITY"] == "3" and entry["DSO_TRACE_ID"] == "t1"
    assert canary not in json.dumps(sent)
    assert fallback.stream.getvalue() == ""


def test_entries_journald_refuses_go_to_stderr_and_the_failure_is_said_once() -> None:
    stream = io.StringIO()
    fallback = logging.StreamHandler(stream)
    fallback.setFormatter(TextFormatter(journal=True))
    handler = JournaldHandler("dso-agent", lambda fields: -111, fallback=fallback)  # ECONNREFUSED
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("dso")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    get_logger("agent").error("first")
    get_logger("agent").info("second")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("<4>[WARNING] dso.log: journald refused a log entry (")
    assert os.strerror(111) in lines[0]
    assert lines[1:] == ["<3>[ERROR] dso.agent: first", "<6>[INFO] dso.agent: second"]


def test_journald_is_used_only_with_its_socket_and_under_systemd(
    journal_socket: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = journal_socket.parent / "nothing"
    plain = tmp_path / "socket"
    plain.write_text("")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    with tempfile.TemporaryFile("w") as stream:
        assert not under_systemd(stream, environ={}, socket=journal_socket)
        assert under_systemd(stream, environ={"INVOCATION_ID": "abc"}, socket=journal_socket)
        assert not under_systemd(stream, environ={"INVOCATION_ID": "abc"}, socket=missing)
        # A plain file where the socket should be is not journald.
        assert not under_systemd(stream, environ={"INVOCATION_ID": "x"}, socket=plain)
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_systemd(stream, environ={}, socket=journal_socket)
        assert not under_systemd(stream, environ={}, socket=missing)


def test_configure_picks_journald_under_systemd_and_stderr_otherwise(
    journal_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel.log, "JOURNAL_SOCKET", journal_socket)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    stream = io.StringIO()
    assert not isinstance(configure("info", stream=stream, journald="dso-agent"), JournaldHandler)
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    handler = configure("info", stream=stream, journald="dso-agent", fmt="json")
    assert isinstance(handler, JournaldHandler)
    assert handler.identifier == "dso-agent"
    # The CLI (no identifier) keeps stderr even under systemd.
    assert not isinstance(configure("info", stream=stream), JournaldHandler)
    assert stream.getvalue() == ""


def test_without_cysystemd_the_agent_logs_to_stderr_and_says_so_once(
    journal_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel.log, "JOURNAL_SOCKET", journal_socket)
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    monkeypatch.setitem(sys.modules, "cysystemd", None)  # import cysystemd → ImportError
    stream = io.StringIO()
    handler = configure("info", stream=stream, journald="dso-agent")
    assert not isinstance(handler, JournaldHandler)
    get_logger("agent").info("Agent started")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[WARNING] dso: journald: cysystemd cannot be imported (")
    assert lines[0].endswith("): logging to stderr instead")
    assert lines[1] == "[INFO] dso.agent: Agent started"
