"""The journal's finished rotations as an agent keeps them: small summaries, documents packed.

An agent keeps the whole history in memory (10,000 finished rotations is a busy week) for
``status`` and the socket's ``rotations``. Parsed, an entry is about 6 kB of Python objects,
and CPython seldom gives such memory back, so a history read whole once stays in the agent's
RSS. Here each entry is a :class:`Summary`: the few fields the history's readers count and
filter on (status, times, names, trace id, whether its lock was contended, its health gate's
verdict and seconds), and its JSON deflated against a preset dictionary of an entry's keys
(about 300 bytes). :meth:`Summary.document` parses the whole document again, for the few
entries a reader shows.

The compacted history file (``rotations.json``) is read :data:`CHUNK` characters at a time and
scanned entry by entry (:func:`scan`), and written likewise (:func:`dump`), for the same reason:
neither a compaction nor an agent's start holds the file, or every entry parsed, at once (a
buffer of the whole file, once freed, also raises glibc's threshold for mapping large blocks
apart, and the next ones then stay in the heap). :func:`dump` writes exactly what
``json.dumps(body, indent=1, sort_keys=True)`` would (the :class:`~kernel.state.StateFile`
format), so the file does not change.
"""

from __future__ import annotations

import io
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from kernel.rotation.states import Step

#: An entry as the journal writes it, common values included: the preset dictionary.
_TEMPLATE: dict[str, Any] = {
    "backup_name": None,
    "cause": None,
    "error": None,
    "files_dir": None,
    "finished_at": 0.0,
    "health": {
        "attempts": 1,
        "elapsed": 0.0,
        "healthy": True,
        "last_exit_code": None,
        "last_output": "",
        "probe": "running",
        "reason": "passed",
    },
    "host": "",
    "id": "",
    "lock": {"contended": False, "waited": 0.0},
    "lock_key": "service-",
    "new_id": "",
    "new_name": "_dso_new_",
    "old_files_dir": None,
    "old_id": "",
    "old_name": "",
    "old_running": True,
    "pid": 0,
    "recovery": None,
    "references": {"": "dso://"},
    "restart_policy": {"MaximumRetryCount": 0, "Name": "unless-stopped"},
    "resumed": None,
    "started_at": 0.0,
    "status": "completed",
    "step": "cleanup",
    "steps": [{"at": 0.0, "step": step.value} for step in Step],
    "strategy": "rolling",
    "strategy_reason": "auto: ",
    "target": "",
    "trace_id": "",
    "updated_at": 0.0,
    "versions": {"": {"from": "", "to": ""}},
}
#: Deflate's preset dictionary: the template as a log line and as an item of the compacted
#: file (indented). It only makes packing smaller (a field missing from it still packs); built
#: once per process, never stored, so it may change freely.
_PRESET = (
    json.dumps(_TEMPLATE, indent=1, sort_keys=True).replace("\n", "\n  ")
    + json.dumps(_TEMPLATE, sort_keys=True, separators=(",", ":"))
).encode()
_WBITS = -15  # a raw deflate stream: no header or checksum to keep per entry
_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: What may still follow a number: at the end of what was read, the number may go on.
_NUMBER_GOES_ON = re.compile(r"[0-9.eE+-]*\Z")
_DECODER = json.JSONDecoder()


class Summary(NamedTuple):
    """One entry of the journal as the history keeps it (see the module docstring).

    Times are numbers (0.0 when missing or not a number), names are strings or None.
    """

    id: str
    status: str
    started_at: float
    updated_at: float
    finished_at: float
    trace_id: str | None
    target: str | None
    lock_key: str | None
    old_name: str | None
    new_name: str | None
    #: Its lock was acquired after waiting (``lock.contended``).
    contended: bool
    #: ``health.healthy is True``, and ``health.elapsed`` (None: no health gate journaled).
    healthy: bool
    gate_seconds: float | None
    #: :attr:`RotationEntry.needs_resuming <kernel.rotation.journal.RotationEntry>`.
    resumable: bool
    #: The entry's JSON, deflated (:func:`pack`).
    packed: bytes

    def document(self) -> dict[str, Any]:
        """The whole entry, parsed anew: the caller may change it."""
        parsed: dict[str, Any] = json.loads(unpack(self.packed))
        return parsed


def summarize(doc: Mapping[str, Any], *, resumable: bool, raw: bytes | None = None) -> Summary:
    """``doc`` (an entry already validated) as a :class:`Summary`; ``raw`` is its JSON when the
    caller has it (a line of the log)."""
    if raw is None:
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    lock = doc.get("lock")
    health = doc.get("health")
    gate: dict[str, Any] | None = health if isinstance(health, dict) else None
    return Summary(
        id=doc["id"],
        status=sys.intern(doc["status"]),
        started_at=_number(doc.get("started_at")),
        updated_at=_number(doc.get("updated_at")),
        finished_at=_number(doc.get("finished_at")),
        trace_id=_name(doc.get("trace_id")),
        target=_name(doc.get("target"), intern=True),
        lock_key=_name(doc.get("lock_key"), intern=True),
        old_name=_name(doc.get("old_name"), intern=True),
        new_name=_name(doc.get("new_name")),
        contended=isinstance(lock, dict) and bool(lock.get("contended")),
        healthy=gate is not None and gate.get("healthy") is True,
        gate_seconds=_number(gate.get("elapsed")) if gate is not None else None,
        resumable=resumable,
        packed=pack(raw),
    )


def pack(raw: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, _WBITS, 8, zlib.Z_DEFAULT_STRATEGY, _PRESET)
    return packer.compress(raw) + packer.flush()


def unpack(packed: bytes) -> bytes:
    unpacker = zlib.decompressobj(_WBITS, _PRESET)
    return unpacker.decompress(packed) + unpacker.flush()


def ordered(summaries: Iterable[Summary]) -> list[Summary]:
    """Oldest (earliest started) first; entries started at once keep their order."""
    return sorted(summaries, key=_started)


# -- rotations.json, one entry at a time ------------------------------------------------------

#: Characters (of the compacted file) read at a time, and bytes written at a time: less than
#: glibc's threshold for a mapping of its own, so buffers are reused and never pin the heap.
CHUNK = 1 << 16


def scan(read: Callable[[int], str], item: Callable[[int, object, str], None]) -> dict[str, Any]:
    """The members of the JSON object that ``read`` (a text file's ``read``) gives, but
    ``rotations``, whose items are handed to ``item`` (index, value, its JSON text) one at a
    time instead; the text is read :data:`CHUNK` at a time, never whole. Raises
    :class:`ValueError` where :func:`json.loads` would, and for ``rotations`` twice."""
    text = _Reader(read)
    members: dict[str, Any] = {}
    seen = False
    text.expect("{")
    if text.peek() == "}":
        text.at += 1
    else:
        while True:
            key, _ = text.value()
            if not isinstance(key, str):
                raise ValueError("a key that is not a string")
            text.expect(":")
            if key == "rotations" and text.peek() == "[":
                if seen:
                    raise ValueError("rotations twice")
                seen = True
                members.pop(key, None)
                text.at += 1
                _items(text, item)
            else:
                members[key], _ = text.value()
            if text.peek() == "}":
                text.at += 1
                break
            text.expect(",")
    if text.peek():
        raise ValueError("extra data after the document")
    return members


def dump(
    generation: str, documents: Iterable[Mapping[str, Any]], *, schema: int
) -> Iterator[bytes]:
    """``{"log": generation, "rotations": [documents...], "schema": schema}`` byte for byte as
    ``json.dumps(..., indent=1, sort_keys=True)`` plus a newline, in chunks of about
    :data:`CHUNK` bytes, one document at a time."""
    out = io.BytesIO()
    out.write(b'{\n "log": ' + json.dumps(generation).encode() + b',\n "rotations": [')
    first = True
    for doc in documents:
        text = json.dumps(doc, indent=1, sort_keys=True).replace("\n", "\n  ")
        out.write((b"\n  " if first else b",\n  ") + text.encode())
        first = False
        if out.tell() >= CHUNK:
            yield out.getvalue()
            out = io.BytesIO()
    out.write(b"]" if first else b"\n ]")
    out.write(b',\n "schema": ' + json.dumps(schema).encode() + b"\n}\n")
    yield out.getvalue()


class _Reader:
    """JSON text read a chunk at a time; what was consumed is dropped as it goes."""

    def __init__(self, read: Callable[[int], str]) -> None:
        self._read = read
        self.text = ""
        self.at = 0
        self._eof = False

    def more(self) -> bool:
        """Read on (at least :data:`CHUNK`, more for a value longer than that); False at the
        end of the text."""
        if self._eof:
            return False
        chunk = self._read(max(CHUNK, len(self.text) - self.at))
        if not chunk:
            self._eof = True
            return False
        self.text = self.text[self.at :] + chunk
        self.at = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        while True:
            match = _WHITESPACE.match(self.text, self.at)
            self.at = match.end() if match else self.at
            if self.at < len(self.text) or not self.more():
                return self.text[self.at : self.at + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r}")
        self.at += 1

    def value(self) -> tuple[object, str]:
        """The JSON value next, and its text."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.at)
            except ValueError:
                if self.more():
                    continue  # cut by the chunk's end
                raise
            if _NUMBER_GOES_ON.match(self.text, end) and self.more():
                continue  # "-1." read so far is not -1: read on
            source = self.text[self.at : end]
            self.at = end
            return value, source


def _items(text: _Reader, item: Callable[[int, object, str], None]) -> None:
    """Hand each item of the array being read (past its ``[``) to ``item``."""
    if text.peek() == "]":
        text.at += 1
        return
    index = 0
    while True:
        value, source = text.value()
        item(index, value, source)
        index += 1
        if text.peek() == "]":
            text.at += 1
            return
        text.expect(",")


def _started(summary: Summary) -> float:
    return summary.started_at


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _name(value: object, *, intern: bool = False) -> str | None:
    if not isinstance(value, str):
        return None
    return sys.intern(value) if intern else value
