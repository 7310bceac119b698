"""A provider's stderr lines re-logged under ``dso.provider.<name>`` (an os.pipe, no process)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from kernel.provider_host.relog import MAX_LOG_LINE, StderrRelog, level_for
from kernel.provider_host.settings import wire_settings
from kernel.secret_value import SecretValue

NAME = "dso.provider.vault"


def relog(data: bytes) -> StderrRelog:
    reader = StderrRelog(logging.getLogger(NAME), pid=4242)
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)
        os.close(write_fd)
        reader.run(read_fd)
    finally:
        os.close(read_fd)
    return reader


def line(**doc: object) -> bytes:
    return json.dumps(doc).encode() + b"\n"


def test_json_lines_keep_their_level_and_context(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=NAME)
    data = (
        line(level="debug", logger="providers.vault", message="token renewed", ttl=3600)
        + line(level="error", message="boom", exception="Traceback ...")
        + line(level="critical", message="bad", message_id=1, levelname="x")
    )
    relog(data)
    records = [r for r in caplog.records if r.name == NAME]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "token renewed"),
        (logging.ERROR, "boom\nTraceback ..."),
        (logging.CRITICAL, "bad"),
    ]
    first = records[0]
    assert first.__dict__["ttl"] == 3600
    assert first.__dict__["provider_logger"] == "providers.vault"
    assert first.__dict__["provider_pid"] == 4242
    assert records[2].levelname == "CRITICAL"  # a provider key cannot overwrite a record field


def test_plain_text_is_a_warning_and_long_lines_are_cut(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=NAME)
    long = b"y" * (MAX_LOG_LINE * 3)
    reader = relog(b"hello from print\n" + long + b"\nafter\n{not json\nno newline at end")
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == NAME]
    assert messages[0] == (logging.WARNING, "hello from print")
    assert messages[1][1].endswith("…[truncated]")
    assert len(messages[1][1]) < MAX_LOG_LINE + 20
    assert [m for _, m in messages[2:]] == ["after", "{not json", "no newline at end"]
    assert list(reader.tail)[-1] == "no newline at end"


def test_unknown_level_is_a_warning_and_filtered_levels_cost_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=NAME)
    relog(line(level="loud", message="m1") + line(level="debug", message="m2"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == NAME] == [
        (logging.WARNING, "m1")
    ]


def test_provider_log_level_follows_the_kernel_logger() -> None:
    logger = logging.getLogger("dso.provider.level-test")
    for level, name in [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
    ]:
        logger.setLevel(level)
        assert level_for(logger) == name
    logger.setLevel(logging.NOTSET)


def test_settings_become_plain_msgpack_types() -> None:
    from pathlib import Path
    from types import MappingProxyType

    settings = MappingProxyType(
        {
            "address": "https://bao:8200",
            "auth": MappingProxyType({"token": SecretValue("s.abc"), "raw": SecretValue(b"\xff")}),
            "mounts": ("a", "b"),
            "ca": Path("/etc/ca.pem"),
            "retries": 3,
            "tls": True,
            "none": None,
        }
    )
    assert wire_settings(settings) == {
        "address": "https://bao:8200",
        "auth": {"token": "s.abc", "raw": b"\xff"},
        "mounts": ["a", "b"],
        "ca": "/etc/ca.pem",
        "retries": 3,
        "tls": True,
        "none": None,
    }
    with pytest.raises(TypeError, match="object"):
        wire_settings({"x": object()})
