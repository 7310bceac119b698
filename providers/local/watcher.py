"""Noticing that ``vault.enc`` changed, without a busy loop.

Every vault write replaces the file by renaming a temporary sibling over it, so a watch on the
file itself would follow the old, unlinked inode. :class:`FileWatcher` therefore watches the
vault's **directory** with inotify (through ``ctypes``: the stdlib has no binding) and reacts to
events naming the vault file. A daemon thread blocks in ``poll`` on the inotify descriptor and a
stop pipe: no CPU is used while nothing happens.

If inotify is unavailable (not Linux, ``fs.inotify.max_user_watches`` exhausted, the directory
does not exist yet) the watcher falls back to comparing ``stat`` results every
``poll_interval`` seconds (1 s by default), which is cheap but slower to notice.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import select
import struct
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from providers.sdk import get_logger

log = get_logger("local.watcher")

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: Events on the directory that may mean the vault file's content changed.
_FILE_EVENTS = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY
#: Events meaning the directory itself is gone: inotify cannot follow it any more.
_DIR_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name

#: Default seconds between two ``stat`` calls in polling mode.
POLL_INTERVAL = 1.0


class WatchMode(StrEnum):
    """How the watcher notices changes (setting ``watch`` of the local provider)."""

    #: inotify when it works, else polling.
    AUTO = "auto"
    #: inotify only; failing to set it up is an error.
    INOTIFY = "inotify"
    #: ``stat`` polling only.
    POLL = "poll"


class InotifyUnavailable(OSError):
    """inotify cannot be used here; the caller falls back to polling."""


class Inotify:
    """A minimal inotify instance watching one directory (``inotify_init1`` via ctypes)."""

    def __init__(self, directory: Path) -> None:
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            init1 = libc.inotify_init1
            add_watch = libc.inotify_add_watch
        except (OSError, AttributeError) as exc:
            raise InotifyUnavailable(f"no inotify in the C library: {exc}") from None
        add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        add_watch.restype = ctypes.c_int
        init1.argtypes = (ctypes.c_int,)
        init1.restype = ctypes.c_int
        fd = init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise InotifyUnavailable(code, f"inotify_init1: {os.strerror(code)}")
        mask = _FILE_EVENTS | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
        if add_watch(fd, os.fsencode(directory), mask) < 0:
            code = ctypes.get_errno()
            os.close(fd)
            raise InotifyUnavailable(code, f"inotify_add_watch {directory}: {os.strerror(code)}")
        self.fd = fd

    def read_events(self) -> list[tuple[int, str]]:
        """Every queued event as ``(mask, name)``; empty when none is queued."""
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        events: list[tuple[int, str]] = []
        pos = 0
        while pos + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            start = pos + _EVENT.size
            name = os.fsdecode(data[start : start + length].rstrip(b"\0"))
            events.append((mask, name))
            pos = start + length
        return events

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _identity(path: Path) -> tuple[int, ...] | None:
    """What changes whenever the file is replaced or rewritten; None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileWatcher:
    """Calls ``on_change()`` from a daemon thread after the file at ``path`` may have changed.

    Calls are hints (several writes may give one call, a touch may give a spurious one); the
    callback re-reads the vault and decides. It must not raise; if it does, the error is logged.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        *,
        mode: WatchMode = WatchMode.AUTO,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.path = path
        self.on_change = on_change
        self.poll_interval = poll_interval
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._inotify: Inotify | None = None
        if mode is not WatchMode.POLL:
            try:
                # Set up before the caller reads its baseline: no write can slip in between.
                self._inotify = Inotify(path.parent)
            except InotifyUnavailable as exc:
                if mode is WatchMode.INOTIFY:
                    self._close_pipe()
                    raise
                log.info("inotify unavailable, polling the vault file", extra={"reason": str(exc)})
        self._identity = _identity(path)
        self._thread = threading.Thread(target=self._run, name="dso-local-watcher", daemon=True)
        self._thread.start()

    @property
    def mode(self) -> WatchMode:
        """The mechanism actually in use (``inotify`` or ``poll``)."""
        return WatchMode.INOTIFY if self._inotify is not None else WatchMode.POLL

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and release the descriptors. Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._inotify is not None:
            self._inotify.close()
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        try:
            if self._inotify is not None and self._run_inotify(self._inotify):
                return
            self._run_poll()
        except OSError as exc:
            if exc.errno != errno.EBADF:  # EBADF: stopped while starting
                log.warning("the vault watcher stopped", extra={"error": type(exc).__name__})

    def _run_inotify(self, inotify: Inotify) -> bool:
        """Wait for events; True when stopped, False when the directory went away."""
        poller = select.poll()
        poller.register(inotify.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        name = self.path.name
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return True
            changed = False
            gone = False
            for mask, event_name in inotify.read_events():
                if mask & IN_Q_OVERFLOW or (event_name == name and mask & _FILE_EVENTS):
                    changed = True
                if not event_name and mask & _DIR_GONE:
                    gone = True
            if changed:
                self._identity = _identity(self.path)
                self._notify()
            if gone:
                log.info("the vault's directory went away: polling instead")
                inotify.close()
                self._inotify = None
                self._notify()
                return False

    def _run_poll(self) -> None:
        """Compare ``stat`` results every ``poll_interval`` until stopped."""
        poller = select.poll()
        poller.register(self._stop_r, select.POLLIN)
        while not poller.poll(int(self.poll_interval * 1000)):
            identity = _identity(self.path)
            if identity != self._identity:
                self._identity = identity
                self._notify()

    def _notify(self) -> None:
        try:
            self.on_change()
        except Exception as exc:  # the callback owns its errors; never kill the watcher
            log.error("vault change handler failed", extra={"error": type(exc).__name__})
