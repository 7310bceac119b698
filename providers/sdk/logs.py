"""Provider logs: one JSON object per line on stderr, which the kernel re-logs under the
provider's name.

Each line has ``time`` (unix seconds), ``level``, ``logger`` and ``message``, plus any
``extra=`` fields and ``exception`` (a traceback). Third-party loggers stay at ``warning`` or
above whatever the level: HTTP client libraries log request and response bodies at debug, and
those bodies carry secret values.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO, Any

from kernel.protocol.handshake import LOG_LEVEL_KEY

#: Logger tree of providers and the SDK: ``get_logger("vault")`` → ``providers.vault``.
ROOT_LOGGER = "providers"
LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "info"

_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JSONLineFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS:
                doc[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def get_logger(name: str) -> logging.Logger:
    """A logger under the provider tree, e.g. ``get_logger("vault")`` → ``providers.vault``."""
    if name == ROOT_LOGGER or name.startswith(ROOT_LOGGER + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{ROOT_LOGGER}.{name}")


def level_from_env(environ: dict[str, str] | None = None) -> str:
    """The level the kernel asked for in :data:`LOG_LEVEL_KEY`, or the default."""
    env = os.environ if environ is None else environ
    level = env.get(LOG_LEVEL_KEY, DEFAULT_LEVEL).strip().lower()
    return level if level in LEVELS else DEFAULT_LEVEL


def configure_logging(level: str = DEFAULT_LEVEL, stream: IO[str] | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as JSON lines; replaces other handlers."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(ROOT_LOGGER).setLevel(level.upper())
    logging.captureWarnings(True)
