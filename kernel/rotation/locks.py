"""One lock per rotation target, held for the whole rotation, across processes.

A lock is an ``flock`` on ``<locks>/<target>.lock``. The kernel drops it when its holder exits,
even by ``kill -9``, so a held lock always means a live rotation and ``recover`` can tell an
interrupted rotation (lock free) from a running one (lock held) without guessing from ages.

A second rotation of the same target waits up to a bound, then is refused with
:class:`~kernel.errors.RotationBusyError` naming the holder. An acquisition that waited longer
than :data:`CONTENTION_THRESHOLD` is *contention*: it is logged, reported to ``on_contention``
and returned to the caller (the engine journals it).

Lock files are never deleted: unlinking an flock'd file lets two processes hold "the" lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kernel import telemetry
from kernel.errors import RotationBusyError, StorageError
from kernel.log import get_logger
from kernel.rotation.targets import log_context

#: Seconds of waiting that count as contention (spec: "slow acquisitions (>1s)").
CONTENTION_THRESHOLD = 1.0
_POLL = 0.02
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

log = get_logger("rotation.locks")


@dataclass(frozen=True, slots=True)
class Acquired:
    """A held lock: which target, and how long getting it took."""

    target: str
    path: Path
    waited: float
    contended: bool

    def to_dict(self) -> dict[str, object]:
        return {"waited": round(self.waited, 3), "contended": self.contended}


class TargetLocks:
    """The locks directory (``Layout.locks``)."""

    def __init__(
        self,
        directory: Path,
        *,
        contention_threshold: float = CONTENTION_THRESHOLD,
        on_contention: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.contention_threshold = contention_threshold
        self.on_contention = on_contention
        self.clock = clock

    def path(self, target: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', target)}.lock"

    @contextlib.contextmanager
    def hold(
        self, target: str, *, wait: float, note: str = "", subject: str = ""
    ) -> Iterator[Acquired]:
        """Hold ``target``'s lock for the block; wait up to ``wait`` seconds for it.

        ``note`` (e.g. the trace id) is written into the lock file for the refusal message of
        a competing process; ``subject`` names the target in messages (default: ``target``).
        Raises :class:`RotationBusyError` when the wait runs out.
        """
        path = self.path(target)
        fd = self._open(path)
        try:
            started = self.clock()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = self.clock() - started
                    if waited >= wait:
                        raise self._busy(target, subject or target, waited) from None
                    time.sleep(min(_POLL, max(0.0, wait - waited)))
            waited = self.clock() - started
            contended = waited > self.contention_threshold
            if contended:
                log.warning(
                    "lock contention: waited %.2fs for the rotation lock of %s",
                    waited,
                    subject or target,
                    extra={
                        "target": target,
                        "waited": round(waited, 3),
                        **log_context(None, target),
                    },
                )
                telemetry.emit(
                    "lock_contention",
                    target=target,
                    waited=waited,
                    subject=subject or target,
                    note=note,
                )
                if self.on_contention is not None:
                    self.on_contention(target, waited)
            _describe_holder(fd, note)
            yield Acquired(target, path, waited, contended)
        finally:
            os.close(fd)

    def is_held(self, target: str) -> bool:
        """True when a live process holds ``target``'s lock (checked without waiting)."""
        path = self.path(target)
        if not path.exists():
            return False
        fd = self._open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def holder(self, target: str) -> str:
        """What the holder wrote about itself (``pid 123 since … trace …``), or ``""``."""
        with contextlib.suppress(OSError):
            return self.path(target).read_text().strip()
        return ""

    def _open(self, path: Path) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open the lock file {path}: {exc.strerror}") from None

    def _busy(self, target: str, subject: str, waited: float) -> RotationBusyError:
        holder = self.holder(target)
        who = f" ({holder})" if holder else ""
        return RotationBusyError(
            f"another rotation of {subject} is in progress{who}; waited {waited:.1f}s, "
            "nothing was changed",
            hint="retry when it is done, or pass --wait SECONDS to wait longer",
        )


def _describe_holder(fd: int, note: str) -> None:
    text = f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    if note:
        text += f" {note}"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode() + b"\n", 0)
