"""``journalctl`` for the dso-agent unit: the command line of ``docker dso system logs`` and the
entries ``system status`` and a failed start show.

:func:`journal_argv` builds ``journalctl -u dso-agent`` from ``system logs``' options:
``--since 1h`` becomes ``--since -1h`` (:func:`time_spec`), ``-p error`` becomes ``-p err``
(:func:`priority`), ``--trace ID`` the field match ``DSO_TRACE_ID=ID`` (:func:`trace_match`).
:func:`read_journal` reads entries as JSON; :func:`invocation_matches` narrows them to given runs
of the unit (``_SYSTEMD_INVOCATION_ID``). A user outside the groups that may read the system
journal gets :attr:`JournalRead.readable` false and journalctl's reason, never an exception.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kernel.errors import UsageError
from kernel.system.command import run_captured
from kernel.system.unit import UNIT_NAME

__all__ = [
    "JOURNAL_GROUPS_HINT",
    "JOURNAL_OUTPUTS",
    "PRIORITIES",
    "JournalEntry",
    "JournalRead",
    "field_match",
    "invocation_matches",
    "journal_allowed",
    "journal_argv",
    "parse_journal_json",
    "priority",
    "read_journal",
    "time_spec",
    "trace_match",
]

#: Seconds a ``journalctl`` read may take.
READ_TIMEOUT = 10.0
#: journald's priorities, most severe first (``-p err`` shows 0 to 3).
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
#: Names people and Python's logging use for them.
_PRIORITY_ALIASES = {
    "emergency": "emerg",
    "panic": "emerg",
    "critical": "crit",
    "error": "err",
    "warn": "warning",
}
#: ``journalctl -o`` modes (systemd 252).
JOURNAL_OUTPUTS = (
    "short",
    "short-full",
    "short-iso",
    "short-iso-precise",
    "short-precise",
    "short-monotonic",
    "short-delta",
    "short-unix",
    "verbose",
    "export",
    "json",
    "json-pretty",
    "json-sse",
    "json-seq",
    "cat",
    "with-unit",
)
#: A time span as systemd writes one (``1h``, ``5min``, ``1h30m``, ``2 days``): ``--since 1h``
#: means an hour ago, which journalctl spells ``-1h``.
_SPAN = re.compile(
    r"(?:\d+(?:\.\d+)?\s*(?:us|usec|ms|msec|s|sec|secs|second|seconds|m|min|mins|minute|minutes|"
    r"h|hr|hrs|hour|hours|d|day|days|w|week|weeks|M|month|months|y|year|years)\s*)+"
)
#: A journal field name (journald: upper-case letters, digits and ``_``, not a digit first).
_FIELD = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
#: A trace id as the agent makes them (32 hex digits), or any other id without spaces.
_TRACE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def time_spec(text: str) -> str:
    """A ``--since``/``--until`` value for journalctl: a bare span (``1h``, ``5m``, ``2d``,
    ``1h30m``) means that long ago, ``-1h``; anything else (``-1h``, ``1 hour ago``,
    ``yesterday``, ``2024-05-01 10:00``, ``@1714550400``) is passed as written."""
    stripped = text.strip()
    if _SPAN.fullmatch(stripped):
        return f"-{stripped}"
    return text


def priority(text: str) -> str:
    """A ``-p`` value for journalctl: a name (``err``, also ``error``, ``warn``, ``critical``),
    a number 0-7, or a range ``FROM..TO`` of either. Raises :class:`UsageError` otherwise."""
    low, sep, high = text.strip().lower().partition("..")
    parts = [_one_priority(low, text)]
    if sep:
        parts.append(_one_priority(high, text))
    return "..".join(parts)


def _int(text: str) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _one_priority(part: str, given: str) -> str:
    part = _PRIORITY_ALIASES.get(part, part)
    if part in PRIORITIES or (part.isdigit() and int(part) < len(PRIORITIES)):
        return part
    raise UsageError(
        f"unknown log priority {given!r}",
        hint=f"one of {', '.join(PRIORITIES)} (or 0-7, or a range such as err..warning)",
    )


def field_match(text: str) -> str:
    """A journal field match ``FIELD=VALUE`` (``DSO_SERVICE=web``); raises :class:`UsageError`
    for anything else (journalctl would take a path or a ``+`` as something else)."""
    field, sep, value = text.partition("=")
    if not sep or not _FIELD.fullmatch(field) or "\n" in value:
        raise UsageError(
            f"not a journal field match: {text!r}",
            hint="FIELD=VALUE with an upper-case field name, e.g. DSO_SERVICE=web",
        )
    return text


def trace_match(trace_id: str) -> str:
    """The match that follows one rotation: ``DSO_TRACE_ID=<id>``."""
    if not _TRACE.fullmatch(trace_id):
        raise UsageError(
            f"not a trace id: {trace_id!r}",
            hint="a rotation's trace_id: docker dso status --json | jq '.observability.traces'",
        )
    return f"DSO_TRACE_ID={trace_id}"


def invocation_matches(invocation_ids: Iterable[str]) -> list[str]:
    """Matches for what the given runs of the unit logged: the agent's lines carry
    ``_SYSTEMD_INVOCATION_ID``, systemd's own lines about the unit ``INVOCATION_ID``."""
    matches: list[str] = []
    for invocation in dict.fromkeys(i for i in invocation_ids if i):
        if matches:
            matches.append("+")
        matches += [f"_SYSTEMD_INVOCATION_ID={invocation}", "+", f"INVOCATION_ID={invocation}"]
    return matches


def journal_argv(
    unit: str = UNIT_NAME,
    *,
    lines: int | None = None,
    follow: bool = False,
    priority_: str | None = None,
    since: str | None = None,
    until: str | None = None,
    output: str | None = None,
    matches: Sequence[str] = (),
) -> list[str]:
    """``journalctl -u UNIT --no-pager`` with ``system logs``' options (already checked with
    :func:`priority`, :func:`field_match`…; times are translated by :func:`time_spec`)."""
    argv = ["journalctl", "-u", unit, "--no-pager"]
    if lines is not None:
        argv += ["-n", str(lines)]
    if follow:
        argv.append("-f")
    if priority_:
        argv += ["-p", priority_]
    if since:
        argv += ["--since", time_spec(since)]
    if until:
        argv += ["--until", time_spec(until)]
    if output:
        argv += ["-o", output]
    return [*argv, *matches]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal line, as ``system status`` and startup failures show it."""

    #: Unix time.
    ts: float
    #: 0 (emerg) to 7 (debug).
    priority: int
    #: ``dso-agent`` for the agent's lines, ``systemd`` for systemd's about the unit.
    identifier: str
    pid: int | None
    message: str
    #: True when the agent wrote it (not systemd about the unit).
    from_agent: bool

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> JournalEntry:
        message = doc.get("MESSAGE")
        if isinstance(message, list):  # journald's form of a message that is not UTF-8
            message = bytes(int(b) for b in message if isinstance(b, int)).decode(errors="replace")
        pid = _int(str(doc.get("_PID") or doc.get("SYSLOG_PID") or ""))
        return cls(
            ts=_int(str(doc.get("__REALTIME_TIMESTAMP") or "")) / 1e6,
            priority=_int(str(doc.get("PRIORITY") or "6")),
            identifier=str(doc.get("SYSLOG_IDENTIFIER") or doc.get("_COMM") or "?"),
            pid=pid or None,
            message=str(message if message is not None else ""),
            from_agent="_SYSTEMD_INVOCATION_ID" in doc,
        )

    def line(self) -> str:
        """``Dec 02 00:55:04 dso-agent[363]: message`` (local time), as ``journalctl`` prints."""
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(self.ts))
        who = f"{self.identifier}[{self.pid}]" if self.pid else self.identifier
        return f"{stamp} {who}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "ts": round(self.ts, 6),
            "priority": PRIORITIES[self.priority] if 0 <= self.priority < 8 else self.priority,
            "identifier": self.identifier,
            "pid": self.pid,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class JournalRead:
    """Entries read from the journal, or why they could not be."""

    entries: tuple[JournalEntry, ...]
    #: False when journalctl could not open the journal (a user outside the groups that may).
    readable: bool = True
    #: Why not, or what is missing (journalctl's own words, shortened), None when all is well.
    note: str | None = None


#: What ``journalctl`` says to a user who may not read the system journal.
_NOT_ALLOWED = ("insufficient permissions", "not seeing messages")
JOURNAL_GROUPS_HINT = (
    "the system journal is readable by root and the groups systemd-journal and adm: use sudo, "
    "or `sudo usermod -aG systemd-journal $USER` (then log in again)"
)


def read_journal(
    unit: str = UNIT_NAME,
    *,
    lines: int,
    matches: Sequence[str] = (),
    priority_: str | None = None,
    since: str | None = None,
) -> JournalRead:
    """The last ``lines`` entries of the unit (with ``matches``), oldest first."""
    argv = journal_argv(
        unit, lines=lines, priority_=priority_, since=since, output="json", matches=matches
    )
    try:
        done = run_captured(argv, READ_TIMEOUT)
    except FileNotFoundError:
        return JournalRead((), readable=False, note="journalctl is not installed")
    except subprocess.TimeoutExpired:
        return JournalRead((), readable=False, note=f"journalctl took over {READ_TIMEOUT:g} s")
    said = " ".join(done.stderr.split())
    denied = any(words in said for words in _NOT_ALLOWED)
    if done.returncode != 0:
        note = said or f"failed (exit {done.returncode})"
        return JournalRead((), readable=False, note=f"journalctl: {note}")
    entries = tuple(parse_journal_json(done.stdout))
    if denied:
        # journalctl shows a user only their own messages: none of a system unit's.
        return JournalRead(entries, readable=False, note="journalctl: " + said)
    return JournalRead(entries)


def parse_journal_json(text: str) -> list[JournalEntry]:
    """``journalctl -o json`` output (one object a line) as entries; other lines skipped."""
    entries = []
    for raw in text.splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):
            entries.append(JournalEntry.from_json(doc))
    return entries


def journal_allowed(euid: int | None = None, groups: Iterable[int] | None = None) -> bool:
    """True when this user may read the system journal: root, or a member of
    ``systemd-journal``, ``adm`` or ``wheel`` (journald's default ACLs)."""
    import grp

    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return True
    mine = set(os.getgroups() if groups is None else groups)
    for name in ("systemd-journal", "adm", "wheel"):
        try:
            if grp.getgrnam(name).gr_gid in mine:
                return True
        except KeyError:
            continue
    return False
