"""Logging setup: text or JSON lines on stderr, syslog priority prefixes under journald.

When stderr is the journal (systemd sets ``JOURNAL_STREAM`` to its ``dev:inode``), every line
starts with ``<N>`` so ``journalctl -p err`` filters by level. Messages never carry secret
values: pass :class:`~kernel.secret_value.SecretValue` objects and they print masked.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

LEVELS = ("debug", "info", "warning", "error")

# syslog priorities (sd-daemon(3)): err=3, warning=4, info=6, debug=7.
_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

#: Attributes every LogRecord has; anything else was passed through ``extra=`` and is context.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def syslog_priority(levelno: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _SYSLOG_PRIORITY[threshold]
    return _SYSLOG_PRIORITY[logging.DEBUG]


def stderr_is_journal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default stderr) is the journald stream systemd connected."""
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    stream = stream if stream is not None else sys.stderr
    try:
        dev, ino = (int(part) for part in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message key=value…``, optionally with a syslog ``<N>`` prefix."""

    def __init__(self, *, journal: bool = False, timestamps: bool = False) -> None:
        super().__init__()
        self.journal = journal
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.journal:
            parts.append(f"<{syslog_priority(record.levelno)}>")
        if self.timestamps:
            parts.append(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)) + " ")
        parts.append(f"[{record.levelname}] {record.name}: {record.getMessage()}")
        ctx = _context(record)
        if ctx:
            parts.append(" " + " ".join(f"{k}={v}" for k, v in sorted(ctx.items())))
        if record.exc_info:
            parts.append("\n" + self.formatException(record.exc_info))
        return "".join(parts)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra=`` context."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: str(v) for k, v in _context(record).items()})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        line = json.dumps(doc, ensure_ascii=False)
        if self.journal:
            return f"<{syslog_priority(record.levelno)}>{line}"
        return line


def configure(
    level: str = "warning",
    *,
    fmt: str = "text",
    stream: IO[str] | None = None,
    journal: bool | None = None,
) -> logging.Handler:
    """Install one stderr handler on the ``dso`` logger tree and return it."""
    stream = stream if stream is not None else sys.stderr
    if journal is None:
        journal = stderr_is_journal(stream)
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JSONFormatter(journal=journal))
    else:
        handler.setFormatter(TextFormatter(journal=journal))
    root = logging.getLogger("dso")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    return handler


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``dso`` tree: ``get_logger("vault")`` → ``dso.vault``."""
    return logging.getLogger(f"dso.{name}" if not name.startswith("dso") else name)
