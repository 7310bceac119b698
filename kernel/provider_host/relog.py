"""A provider's stderr, re-logged under ``dso.provider.<name>`` (go-plugin style).

Providers write one JSON object per line (protocol §9): ``{"time", "level", "logger",
"message", …}``. Each becomes a record at its level on the kernel's logger for that provider,
with the provider's extra keys as context; a line that is not a JSON object is logged as plain
text at ``warning``. Lines are cut at :data:`MAX_LOG_LINE` bytes (the rest of the line is
dropped), so a provider cannot make the kernel buffer without bound.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from typing import Any

#: Longest stderr line re-logged; the rest of a longer line is dropped.
MAX_LOG_LINE = 16 * 1024
#: Last messages kept, for error messages about a provider that died.
STDERR_TAIL = 20

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_LEVEL_NAMES = ((logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.WARNING, "warning"))
_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_OWN_KEYS = frozenset({"time", "level", "logger", "message", "exception"})


def level_for(logger: logging.Logger) -> str:
    """The ``DSO_PROVIDER_LOG_LEVEL`` matching what the kernel logs for this provider, so a
    provider does not format debug lines nobody will see."""
    level = logger.getEffectiveLevel()
    for threshold, name in _LEVEL_NAMES:
        if level <= threshold:
            return name
    return "error"


class StderrRelog:
    """Reads one provider's stderr until end of file and re-logs every line."""

    def __init__(self, logger: logging.Logger, pid: int) -> None:
        self.log = logger
        self.pid = pid
        #: The last messages, newest last.
        self.tail: deque[str] = deque(maxlen=STDERR_TAIL)

    def run(self, fd: int) -> None:
        """Read ``fd`` with ``os.read`` (never a buffered reader) until end of file."""
        pending = bytearray()
        dropping = False
        with contextlib.suppress(OSError):
            while data := os.read(fd, 65536):
                pending += data
                while True:
                    newline = pending.find(b"\n")
                    if newline < 0:
                        if len(pending) > MAX_LOG_LINE:
                            if not dropping:
                                self.line(bytes(pending[:MAX_LOG_LINE]), truncated=True)
                            dropping = True
                            pending.clear()
                        break
                    line = bytes(pending[:newline])
                    del pending[: newline + 1]
                    if dropping:
                        dropping = False
                    elif len(line) > MAX_LOG_LINE:
                        self.line(line[:MAX_LOG_LINE], truncated=True)
                    else:
                        self.line(line)
            if pending and not dropping:
                self.line(bytes(pending))

    def line(self, raw: bytes, *, truncated: bool = False) -> None:
        """Re-log one line."""
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        doc: Any = None
        if text.startswith("{") and not truncated:
            with contextlib.suppress(ValueError):
                doc = json.loads(text)
        if not isinstance(doc, dict):
            message = text + (" …[truncated]" if truncated else "")
            self.tail.append(message)
            self.log.warning("%s", message, extra={"provider_pid": self.pid})
            return
        level = _LEVELS.get(str(doc.get("level", "")).lower(), logging.WARNING)
        message = str(doc.get("message", ""))
        self.tail.append(message)
        if not self.log.isEnabledFor(level):
            return
        if "exception" in doc:
            message = f"{message}\n{doc['exception']}"
        extra: dict[str, Any] = {"provider_pid": self.pid}
        if "logger" in doc:
            extra["provider_logger"] = str(doc["logger"])
        for key, value in doc.items():
            if key not in _OWN_KEYS and key not in _RESERVED and str(key).isidentifier():
                extra.setdefault(key, value)
        self.log.log(level, "%s", message, extra=extra)
