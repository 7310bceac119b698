"""Unix socket files: bind one safely, connect to one, whatever the path's length.

A ``sun_path`` holds 107 bytes; a deeper path (a dso home in a long test directory) is reached
through the parent directory's ``/proc/self/fd/N`` link instead, for ``bind`` and ``connect``
alike.

:func:`bind` creates the socket under umask 0177 (never a moment with a wider mode), then
gives it mode 0660 and group ``dso`` when that group exists. A socket file left by an agent
that died is replaced; one that still answers means another agent listens there, and
:class:`~kernel.errors.AgentError` says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from kernel.agent.api.peers import group_id
from kernel.errors import AgentError, AgentUnavailableError

#: Mode of the socket file: owner and group ``dso`` may connect.
SOCKET_MODE = 0o660
_SUN_PATH = 107


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    raw = os.fsencode(path)
    if len(raw) <= _SUN_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def connect(path: Path, timeout: float) -> socket.socket:
    """A connected stream socket; :class:`AgentUnavailableError` when nothing answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _address(path) as address:
            sock.connect(address)
    except FileNotFoundError:
        sock.close()
        raise AgentUnavailableError(
            f"no agent socket at {path}: the agent is not running",
            hint="start it: `docker dso agent` (local), `sudo docker dso system enable` (host)",
        ) from None
    except PermissionError:
        sock.close()
        raise AgentUnavailableError(
            f"not allowed to open the agent socket {path}",
            hint="ask as root or as a member of group dso (`sudo usermod -aG dso $USER`)",
        ) from None
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            raise AgentUnavailableError(
                f"nothing answers on {path}: the agent is not running (a stale socket file)",
                hint="start it: `docker dso agent` (local), `sudo docker dso system enable` (host)",
            ) from None
        raise AgentUnavailableError(
            f"cannot reach the agent on {path}: {exc.strerror or exc}"
        ) from None
    return sock


def bind(path: Path, *, backlog: int = 128) -> socket.socket:
    """A listening socket at ``path`` (see the module docstring)."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        with _address(path) as address:
            sock.bind(address)
    except OSError as exc:
        sock.close()
        raise AgentError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    try:
        gid = group_id()
        if gid is not None:
            with contextlib.suppress(PermissionError):
                os.chown(path, -1, gid)
        os.chmod(path, SOCKET_MODE)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise AgentError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    return sock


def identity(path: Path) -> tuple[int, int, int] | None:
    """``(device, inode, mtime)`` of the socket file, to remove only our own at exit: a socket
    bound in its place after ours was unlinked often gets the same inode number, never the
    same creation time (chmod and chown leave the mtime alone)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def remove(path: Path, ident: tuple[int, int, int] | None) -> None:
    """Unlink the socket file if it is still the one we bound."""
    if ident is not None and identity(path) == ident:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AgentError(
            f"{path} exists and is not a socket: dso will not replace it",
            hint="move it away, or set agent.socket to another path",
        )
    try:
        probe = connect(path, timeout=1.0)
    except AgentUnavailableError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # stale: its agent is gone
        return
    probe.close()
    raise AgentError(
        f"another agent answers on {path}: it keeps running, this one stops",
        hint="`docker dso status` shows it; stop it first, or set agent.socket to another path",
    )
