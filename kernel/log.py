"""Logging setup: text or JSON lines on stderr, or journald's native protocol for the agent.

On a terminal: ``[LEVEL] logger: message key=value…`` (or one JSON object per line). When the
agent runs under systemd (:func:`under_systemd`), each record is one journal entry with its
syslog priority and ``DSO_*`` fields (:mod:`kernel.journald`); when that is not possible,
stderr lines start with ``<N>`` while stderr is the journal (systemd sets ``JOURNAL_STREAM`` to
its ``dev:inode``), so ``journalctl -p err`` filters by level either way. Messages never carry
secret values: pass :class:`~kernel.secret_value.SecretValue` objects and they print masked
(in ``extra=`` context too).
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import stat
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kernel.secret_value import MASK, SecretValue

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


#: journald's socket for the native protocol (libsystemd's fixed path).
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def under_systemd(
    stream: IO[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    socket: Path | None = None,
) -> bool:
    """True when journald's native protocol is the way to log: its socket exists and stderr is
    the journal stream, or systemd started this process (``INVOCATION_ID``) with stderr
    elsewhere (``StandardError=file:…``)."""
    env = os.environ if environ is None else environ
    path = JOURNAL_SOCKET if socket is None else socket
    try:
        if not stat.S_ISSOCK(path.stat().st_mode):
            return False
    except OSError:
        return False
    return stderr_is_journal(stream) or bool(env.get("INVOCATION_ID"))


def context_value(value: object) -> str:
    """A context value as text; a :class:`SecretValue` only ever as its mask."""
    if isinstance(value, SecretValue):
        return MASK
    return str(value)


def context(record: logging.LogRecord) -> dict[str, Any]:
    """What was passed through ``extra=`` (the record's own attributes left out)."""
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
        ctx = context(record)
        if ctx:
            parts.append(" " + " ".join(f"{k}={context_value(v)}" for k, v in sorted(ctx.items())))
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
        doc.update({k: context_value(v) for k, v in context(record).items()})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        line = json.dumps(doc, ensure_ascii=False)
        if self.journal:
            return f"<{syslog_priority(record.levelno)}>{line}"
        return line


def formatter(fmt: str, *, journal: bool = False, timestamps: bool = False) -> logging.Formatter:
    """The formatter of ``logging.format`` (``text`` or ``json``)."""
    if fmt == "json":
        return JSONFormatter(journal=journal)
    return TextFormatter(journal=journal, timestamps=timestamps)


def configure(
    level: str = "warning",
    *,
    fmt: str = "text",
    stream: IO[str] | None = None,
    journal: bool | None = None,
    journald: str | None = None,
) -> logging.Handler:
    """Install one handler on the ``dso`` logger tree and return it.

    ``journald``: the ``SYSLOG_IDENTIFIER`` to log under through journald's native protocol
    when :func:`under_systemd` (the agent passes ``dso-agent``); stderr stays the fallback, for
    records journald refuses and when ``cysystemd`` cannot be imported (said once). ``None``
    (the CLI): stderr only.
    """
    stream = stream if stream is not None else sys.stderr
    if journal is None:
        journal = stderr_is_journal(stream)
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt, journal=journal))
    unavailable = None
    if journald is not None and under_systemd(stream):
        from kernel.journald import JournaldHandler

        try:
            handler = JournaldHandler.create(journald, formatter(fmt), fallback=handler)
        except ImportError as exc:
            unavailable = exc
    root = logging.getLogger("dso")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    if unavailable is not None:
        root.warning(
            "journald: cysystemd cannot be imported (%s): logging to stderr instead", unavailable
        )
    return handler


class RotatingLogFile(logging.handlers.RotatingFileHandler):
    """``logging.file``: appends, and when a line would grow the file past ``max_bytes``,
    renames it ``<path>.1`` (older copies shift up to ``.<backups>``) and starts a new one.
    The file is created with ``mode`` and an existing one is brought back to it."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int, mode: int = 0o640) -> None:
        self.file_mode = mode
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, self.file_mode)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != self.file_mode:
                os.fchmod(fd, self.file_mode)
        except OSError:
            pass  # not ours to change: written as it is
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def log_file(
    path: Path, *, max_bytes: int, backups: int, fmt: str = "text", mode: int = 0o640
) -> RotatingLogFile:
    """A :class:`RotatingLogFile` at ``path`` (its directory created when missing: ``mode``
    plus the search bits, 0750 for 0640, whatever the umask), lines with timestamps."""
    directory_mode = mode | ((mode & 0o440) >> 2)
    try:
        path.parent.mkdir(parents=True, mode=directory_mode)
    except FileExistsError:
        pass
    else:
        path.parent.chmod(directory_mode)  # the unit's UMask=0077 would leave 0700
    handler = RotatingLogFile(path, max_bytes=max_bytes, backups=backups, mode=mode)
    handler.setFormatter(formatter(fmt, timestamps=True))
    return handler


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``dso`` tree: ``get_logger("vault")`` → ``dso.vault``."""
    return logging.getLogger(f"dso.{name}" if not name.startswith("dso") else name)
