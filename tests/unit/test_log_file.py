"""``logging.file``: size-based rotation, file and directory modes, and its configuration keys."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.config import check_config, load_config
from kernel.config.model import LoggingConfig
from kernel.log import RotatingLogFile, get_logger, log_file


@pytest.fixture(autouse=True)
def _restore_dso_logger() -> Iterator[None]:
    logger = logging.getLogger("dso")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    try:
        yield
    finally:
        for handler in logger.handlers:
            if handler not in saved[2]:
                handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers[:] = saved[2]


def use(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("dso")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return get_logger("agent")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_rotates_by_size_and_keeps_the_configured_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "agent.log"
    handler = log_file(path, max_bytes=4096, backups=2, mode=0o640)
    log = use(handler)
    line = "x" * 200
    for n in range(200):  # ~43 KB: ten times the limit
        log.info("line %03d %s", n, line)
    handler.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["agent.log", "agent.log.1", "agent.log.2"]
    for name in names:
        assert (path.parent / name).stat().st_size <= 4096
        assert mode(path.parent / name) == 0o640
    # The newest lines are in agent.log, the ones just before in .1: nothing lost in between.
    newest = path.read_text().splitlines()
    previous = (path.parent / "agent.log.1").read_text().splitlines()
    assert "line 199 " in newest[-1]
    first_new = int(newest[0].split("line ")[1][:3])
    last_previous = int(previous[-1].split("line ")[1][:3])
    assert first_new == last_previous + 1
    assert newest[0][:4].isdigit() and "[INFO] dso.agent: line" in newest[0]  # timestamps


def test_the_directory_is_created_0750_and_a_loose_existing_file_tightened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var-log-dso" / "agent.log"
    old = os.umask(0o077)  # the unit's UMask
    try:
        log_file(path, max_bytes=1 << 20, backups=3, mode=0o640).close()
    finally:
        os.umask(old)
    assert mode(path.parent) == 0o750
    assert mode(path) == 0o640
    path.chmod(0o666)
    log_file(path, max_bytes=1 << 20, backups=3, mode=0o600).close()
    assert mode(path) == 0o600
    private = tmp_path / "home" / "logs" / "dso.log"
    log_file(private, max_bytes=1 << 20, backups=3, mode=0o600).close()
    assert mode(private.parent) == 0o700


def test_rotated_copies_keep_the_file_s_mode(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    handler = RotatingLogFile(path, max_bytes=4096, backups=1, mode=0o600)
    log = use(handler)
    for _ in range(100):
        log.info("y" * 100)
    handler.close()
    assert mode(path) == 0o600 and mode(tmp_path / "agent.log.1") == 0o600


def test_json_lines_in_the_file(tmp_path: Path) -> None:
    import json

    path = tmp_path / "agent.log"
    handler = log_file(path, max_bytes=1 << 20, backups=1, fmt="json")
    use(handler).warning("careful", extra={"trace_id": "t9"})
    handler.close()
    doc = json.loads(path.read_text())
    assert doc["message"] == "careful" and doc["trace_id"] == "t9" and doc["level"] == "warning"


def test_configuration_keys_and_defaults(tmp_path: Path) -> None:
    assert LoggingConfig().max_size == 10 * 1024 * 1024
    assert LoggingConfig().backups == 3
    config = tmp_path / "dso.yaml"
    config.write_text(
        "version: 1\nlogging:\n  file: /var/log/dso/agent.log\n  max_size: 64Ki\n  backups: 5\n"
    )
    config.chmod(0o600)
    settings = load_config(config, candidates=[], env={}).config.logging
    assert settings.file == Path("/var/log/dso/agent.log")
    assert (settings.max_size, settings.backups) == (64 * 1024, 5)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("max_size: 100", "logging.max_size"), ("backups: 0", "logging.backups")],
)
def test_too_small_values_are_refused_at_their_line(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "dso.yaml"
    config.write_text(f"version: 1\nlogging:\n  {text}\n")
    config.chmod(0o600)
    (error,) = check_config(config, candidates=[], env={}).errors
    assert (error.line, error.key) == (3, needle)
