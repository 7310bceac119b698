"""``agent.socket`` of the configuration, without a full load while the file is unchanged.

``docker dso status`` and ``events`` need one key of the configuration, and loading it whole
(PyYAML, the schema, the model) is most of a ``status --json`` that should answer in a blink.
So a successful full load leaves a record, ``<layout cache>/agent-socket.json``: which file,
its stamp, the ``agent.socket`` it sets. While :func:`configured_socket` finds the same file
with the same stamp, the record answers; anything else is a full load, raising what
:func:`~kernel.config.loader.load_config` raises. Only valid configurations are recorded, so an
invalid one gives its error every time.

What the verdict of a full load depends on, and so what the stamp holds: the file's bytes
(device, inode, size, modification and change times in ns), its mode and owner (the permission
checks) and dso's effective uid (the owner check), and dso's version. The environment matters
only through ``${VAR}``: a file holding a ``$`` is never recorded. A file changed in the last
:data:`SETTLE` seconds is not recorded either: a second write inside one tick of the file
system's clock could keep the stamp (``git``'s "racily clean" entries); a write after that
moves the change time past the recorded one.

The record names a path and a socket, never a value; it is trusted only when it is a regular
file of dso's user that no one else may write, like the configuration itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path

from kernel import __version__
from kernel.config.loader import find_config, load_config

#: The record's name in the layout's cache directory.
RECORD_NAME = "agent-socket.json"
#: Seconds a file must have stood unchanged before its verdict is recorded.
SETTLE = 3.0


def configured_socket(explicit: Path | None, cache: Path) -> Path | None:
    """``agent.socket`` of what ``load_config(explicit)`` would load (None: not set).

    ``cache`` is the layout's cache directory; the record is kept there when it exists.
    Raises :class:`~kernel.errors.ConfigError` exactly as ``load_config`` does.
    """
    known, socket = recorded_socket(explicit, cache)
    if known:
        return socket
    path = find_config(explicit)
    before = _stamp(path) if path is not None else None
    loaded = load_config(explicit)
    socket = loaded.config.agent.socket
    if path is not None and loaded.path == path and before is not None and _settled(before):
        _remember(cache / RECORD_NAME, path, before, socket)
    return socket


def recorded_socket(explicit: Path | None, cache: Path) -> tuple[bool, Path | None]:
    """``(True, agent.socket)`` when it is known without loading the configuration (there is
    no file, or the record matches it), else ``(False, None)``. Raises what ``find_config``
    raises (a ``-c`` file that is missing)."""
    path = find_config(explicit)
    if path is None:
        return True, None  # the built-in defaults: no agent.socket
    stamp = _stamp(path)
    known = _read(cache / RECORD_NAME)
    if stamp is None or known is None or known.get("stamp") != stamp:
        return False, None
    socket = known.get("socket")
    return True, Path(socket) if isinstance(socket, str) else None


def _stamp(path: Path) -> dict[str, object] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return {
        "dso": __version__,
        "path": str(path),
        "device": info.st_dev,
        "inode": info.st_ino,
        "size": info.st_size,
        "modified_ns": info.st_mtime_ns,
        "changed_ns": info.st_ctime_ns,
        "mode": info.st_mode,
        "owner": info.st_uid,
        "euid": os.geteuid(),
    }


def _settled(stamp: dict[str, object]) -> bool:
    changed = stamp["changed_ns"]
    assert isinstance(changed, int)
    return changed < time.time_ns() - int(SETTLE * 1e9)


def _read(record: Path) -> dict[str, object] | None:
    """The record, when there is one dso may trust."""
    try:
        fd = os.open(record, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            or info.st_size > 64 * 1024
        ):
            return None
        data = os.read(fd, info.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _remember(record: Path, config: Path, stamp: dict[str, object], socket: Path | None) -> None:
    """Record a valid file's verdict, when it holds no ``${VAR}`` and the cache exists."""
    try:
        if b"$" in config.read_bytes() or _stamp(config) != stamp or not record.parent.is_dir():
            return
    except OSError:
        return
    doc = {"stamp": stamp, "socket": None if socket is None else str(socket)}
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(doc) + "\n")
        os.replace(tmp, record)
    except OSError:  # a read-only cache (another user's installation): no record, no harm
        with contextlib.suppress(OSError):
            tmp.unlink()
