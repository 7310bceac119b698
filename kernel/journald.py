"""The agent's log records as journald entries, through journald's native protocol.

Each record becomes one entry with these fields, so ``journalctl -u dso-agent -p err`` shows
errors only and ``journalctl -u dso-agent DSO_TRACE_ID=<id>`` follows one rotation:

- ``MESSAGE``: the line the stderr handler would have written (``[LEVEL] logger: message
  key=value…``, or the JSON object with ``logging.format: json``), traceback included;
- ``PRIORITY``: the syslog priority of the level (:func:`kernel.log.syslog_priority`);
- ``SYSLOG_IDENTIFIER`` (``dso-agent``), ``SYSLOG_FACILITY`` (3, daemon), ``CODE_FILE``,
  ``CODE_LINE``, ``CODE_FUNC``, ``DSO_LOGGER``, ``DSO_THREAD``;
- ``DSO_<KEY>`` for every ``extra=`` key (``trace_id`` → ``DSO_TRACE_ID``; also ``service``,
  ``project``, ``container``, ``provider``, ``rotation``, ``target``…), values as text and
  :class:`~kernel.secret_value.SecretValue` only as its mask; ``DSO_PROVIDER`` also for the
  re-logged lines of a provider (logger ``dso.provider.<name>``).

The library: ``cysystemd`` (its ``journal.send`` is libsystemd's ``sd_journal_sendv``). It
installs from a manylinux wheel that bundles libsystemd, and PyInstaller 6 freezes it with those
libraries (checked here: a frozen probe sent READY=1 and journal entries). ``systemd-python``
does not install here: it builds from source against libsystemd's headers ("Cannot find
libsystemd or libsystemd-journal" without libsystemd-dev).

libsystemd drops an entry silently when journald's socket does not exist, so
:func:`kernel.log.under_systemd` checks the socket before this handler is chosen; an entry
journald refuses (``send`` returns a negative errno, or raises) goes to the stderr handler
instead, and the first such failure is said there once.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Mapping

from kernel.log import context, context_value, syslog_priority

#: Sends one entry's fields; returns 0 or a negative errno (libsystemd's convention).
Sender = Callable[[Mapping[str, str]], int]

#: syslog facility "daemon".
FACILITY_DAEMON = 3
#: Prefix of the fields dso adds.
PREFIX = "DSO_"
_NOT_FIELD = re.compile(r"[^A-Z0-9_]")
#: journald refuses field names longer than this.
_MAX_FIELD_NAME = 64
_PROVIDER_LOGGER = "dso.provider."


def field_name(key: str) -> str:
    """``trace_id`` → ``DSO_TRACE_ID``: upper case, anything else than A-Z, 0-9 and ``_``
    replaced by ``_``, cut to journald's 64 characters."""
    return (PREFIX + _NOT_FIELD.sub("_", key.upper()))[:_MAX_FIELD_NAME]


def journal_fields(record: logging.LogRecord, identifier: str, message: str) -> dict[str, str]:
    """The fields of ``record``'s journal entry (``message``: the formatted line)."""
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(syslog_priority(record.levelno)),
        "SYSLOG_IDENTIFIER": identifier,
        "SYSLOG_FACILITY": str(FACILITY_DAEMON),
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
        "CODE_FUNC": record.funcName,
        field_name("logger"): record.name,
        field_name("thread"): record.threadName or "",
    }
    if record.name.startswith(_PROVIDER_LOGGER):
        fields[field_name("provider")] = record.name.removeprefix(_PROVIDER_LOGGER)
    for key, value in context(record).items():
        if value is not None:
            fields[field_name(key)] = context_value(value)
    return fields


def cysystemd_sender() -> Sender:
    """``cysystemd.journal.send`` with the fields as keyword arguments (ImportError when the
    library or its bundled libsystemd is missing)."""
    from cysystemd import journal

    def send(fields: Mapping[str, str]) -> int:
        return int(journal.send(**fields))

    return send


class JournaldHandler(logging.Handler):
    """Writes each record as one journald entry; stderr (``fallback``) when journald refuses."""

    def __init__(self, identifier: str, send: Sender, *, fallback: logging.Handler) -> None:
        super().__init__()
        self.identifier = identifier
        self.send = send
        self.fallback = fallback
        self._said_failure = False

    @classmethod
    def create(
        cls, identifier: str, formatter: logging.Formatter, *, fallback: logging.Handler
    ) -> JournaldHandler:
        """A handler on cysystemd (ImportError without it) formatting MESSAGE with
        ``formatter``."""
        handler = cls(identifier, cysystemd_sender(), fallback=fallback)
        handler.setFormatter(formatter)
        return handler

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = journal_fields(record, self.identifier, self.format(record))
        except Exception:
            self.handleError(record)
            return
        try:
            code = self.send(fields)
        except (OSError, ValueError, TypeError) as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if code >= 0:
                return
            problem = os.strerror(-code) if -code in errno.errorcode else f"error {code}"
        if not self._said_failure:
            self._said_failure = True
            note = logging.makeLogRecord(
                {
                    "name": "dso.log",
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "msg": "journald refused a log entry (%s): it and any other refused one go "
                    "to stderr",
                    "args": (problem,),
                }
            )
            self.fallback.handle(note)
        self.fallback.handle(record)

    def close(self) -> None:
        self.fallback.close()
        super().close()
