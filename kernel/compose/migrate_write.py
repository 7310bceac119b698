"""Writing the new compose files of ``docker dso migrate``, all or nothing.

Originals are never written to. A new file is first written in full to a temporary sibling
(fsynced), then linked into place: without ``--force`` with :func:`os.link`, which fails rather
than replace a file that appeared meanwhile; with ``--force`` the file it replaces is kept under
a hidden name until the whole migration succeeded, so :meth:`Outputs.rollback` can restore it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kernel.atomic_write import fsync_directory
from kernel.errors import DSOError, StorageError, UsageError

OUTPUT_SUFFIX = ".dso.yaml"


def default_output(source: Path) -> Path:
    """``compose.yaml`` → ``compose.dso.yaml`` (``.yml`` too), next to the original."""
    stem = source.name
    for suffix in (".yaml", ".yml"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return source.with_name(stem + OUTPUT_SUFFIX)


def check_outputs(
    outputs: Mapping[Path, Path],
    protected: Iterable[Path],
    *,
    force: bool,
    show: Callable[[Path], str] = str,
) -> list[DSOError]:
    """Problems with writing each output (source → output): never an input, must be new unless
    ``force``, its directory must exist and be writable. ``show`` names paths in messages."""
    problems: list[DSOError] = []
    inputs = {_real(p) for p in protected}
    seen: dict[Path, Path] = {}
    for source, path in outputs.items():
        shown, real = show(path), _real(path)
        if real in inputs:
            problems.append(
                UsageError(f"{shown} is one of the project's own files; it is never overwritten")
            )
            continue
        if real in seen:
            problems.append(
                UsageError(f"{show(source)} and {show(seen[real])} would both go to {shown}")
            )
            continue
        seen[real] = source
        if path.is_dir():
            problems.append(UsageError(f"{shown} is a directory"))
        elif (path.exists() or path.is_symlink()) and not force:
            problems.append(
                UsageError(
                    f"{shown} already exists; it is not overwritten",
                    hint="pass --force to replace it, or choose another --output",
                )
            )
        if not path.parent.is_dir():
            problems.append(UsageError(f"cannot write {shown}: its directory does not exist"))
        elif not os.access(path.parent, os.W_OK | os.X_OK):
            problems.append(StorageError(f"cannot write {shown}: its directory is not writable"))
    return problems


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


@dataclass(slots=True)
class _Staged:
    output: Path
    temp: Path
    backup: Path | None = None
    placed: bool = False


@dataclass(slots=True)
class Outputs:
    """New files written as one unit: :meth:`stage`, :meth:`commit`, then :meth:`finish`, or
    :meth:`rollback` to leave every path as it was."""

    files: Mapping[Path, tuple[str, int]]
    force: bool = False
    _staged: list[_Staged] = field(default_factory=list)

    def stage(self) -> None:
        """Write every file to a temporary sibling; :class:`StorageError` if one cannot be."""
        for output, (text, mode) in self.files.items():
            temp = output.with_name(f".{output.name}.dso-tmp-{os.getpid()}")
            staged = _Staged(output, temp)
            self._staged.append(staged)
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
                try:
                    data = memoryview(text.encode("utf-8"))
                    while data:
                        data = data[os.write(fd, data) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.chmod(temp, mode)
            except OSError as exc:
                self.rollback()
                raise StorageError(_describe(output, exc)) from None

    def commit(self) -> None:
        """Put every staged file in place; on failure, undo those already placed."""
        try:
            for staged in self._staged:
                if self.force and (staged.output.exists() or staged.output.is_symlink()):
                    backup = staged.output.with_name(f".{staged.output.name}.dso-old-{os.getpid()}")
                    os.rename(staged.output, backup)
                    staged.backup = backup
                os.link(staged.temp, staged.output)
                staged.placed = True
                fsync_directory(staged.output.parent)
        except OSError as exc:
            failed = staged.output
            self.rollback()
            if exc.errno == errno.EEXIST:
                raise UsageError(f"{failed} appeared meanwhile; nothing was changed") from None
            raise StorageError(_describe(failed, exc)) from None

    def rollback(self) -> None:
        """Remove what was placed, restore what it replaced, remove temporaries."""
        for staged in reversed(self._staged):
            if staged.placed:
                with contextlib.suppress(OSError):
                    staged.output.unlink()
            if staged.backup is not None:
                with contextlib.suppress(OSError):
                    os.rename(staged.backup, staged.output)
            with contextlib.suppress(OSError):
                staged.temp.unlink()
        self._staged.clear()

    def finish(self) -> None:
        """Success: drop the temporaries and the replaced files."""
        for staged in self._staged:
            for path in (staged.temp, staged.backup):
                if path is not None:
                    with contextlib.suppress(OSError):
                        path.unlink()
        self._staged.clear()


def _describe(path: Path, exc: OSError) -> str:
    reason = {
        errno.ENOSPC: "no space left on device",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return f"could not write {path}: {reason}; nothing was changed"
