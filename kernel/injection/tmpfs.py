"""Where ``dsofile://`` secrets live on the host: per-service directories on a tmpfs.

Layout (DESIGN.md §4)::

    <base>/                        0700, owned by dso's user, verified to be on a tmpfs
      .<project>.lock              held while a run of that project writes or removes files
      <project>/                   0700
        <service>/                 0700, owned by the service's user; bind-mounted read-only
          ..data -> ..<timestamp>  (kernel.injection.atomic_dir)

``<base>`` is ``DSO_SECRETS_DIR`` when set, else ``/run/dso/secrets`` in agent mode, else
``$XDG_RUNTIME_DIR/dso/secrets``, else ``/dev/shm/dso-<uid>/secrets``. Anything that is not a
tmpfs is refused: a secret must never reach a disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import stat
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.errors import StorageError
from kernel.injection.atomic_dir import Owner, publish, remove_tree

if TYPE_CHECKING:
    from kernel.paths import Layout
    from kernel.secret_value import SecretValue

#: ``f_type`` of a tmpfs in ``statfs(2)`` (linux/magic.h).
TMPFS_MAGIC = 0x01021994
#: Overrides the base directory (tests, unusual hosts).
SECRETS_DIR_ENV = "DSO_SECRETS_DIR"

_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SERVICE = re.compile(r"[A-Za-z0-9._-]+")


def default_base(layout: Layout | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The base directory for this host and mode (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get(SECRETS_DIR_ENV):
        return Path(env[SECRETS_DIR_ENV]).expanduser()
    if layout is not None and layout.mode == "agent":
        return layout.run / "secrets"
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "dso" / "secrets"
    # World-writable, hence SecretsDir.prepare() checks every component's owner and mode.
    return Path("/dev/shm") / f"dso-{os.geteuid()}" / "secrets"  # noqa: S108


def filesystem_magic(path: Path) -> int:
    """``statfs(path).f_type``; raises :class:`OSError`."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(512)  # struct statfs is 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buf) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))
    # f_type is the first member, a C long, on every Linux ABI.
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def filesystem_type(path: Path) -> str:
    """The file system type of ``path`` from /proc/self/mountinfo (for messages), or ``?``."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return "?"
    best, kind = "", "?"
    resolved = os.path.realpath(path)
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields = head.split()
        if len(fields) < 5 or not tail:
            continue
        mount = _unescape_mount(fields[4])
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, tail.split()[0]
    return kind


def _unescape_mount(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def require_tmpfs(path: Path) -> None:
    """Raise :class:`StorageError` unless ``path`` is on a tmpfs."""
    try:
        magic = filesystem_magic(path)
    except OSError as exc:
        raise StorageError(f"cannot check the file system of {path}: {exc.strerror}") from None
    if magic != TMPFS_MAGIC:
        raise StorageError(
            f"{path} is on {filesystem_type(path)}, not a tmpfs: secret files must never reach "
            "a disk, so dso refuses to write them there",
            hint=f"unset {SECRETS_DIR_ENV}, or point it at a tmpfs (e.g. /dev/shm/...)",
        )


class SecretsDir:
    """The base directory and the per-project, per-service directories under it."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def __repr__(self) -> str:
        return f"SecretsDir({str(self.base)!r})"

    # -- set-up ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the base (0700) and check it: ours, private, not a symlink, on a tmpfs."""
        try:
            self._create(self.base)
        except OSError as exc:
            raise StorageError(f"cannot create {self.base}: {exc.strerror}") from None
        self._check_ownership()
        require_tmpfs(self.base)

    def _create(self, path: Path) -> None:
        if path.exists() or path.is_symlink():
            return
        self._create(path.parent)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)

    def _check_ownership(self) -> None:
        """The base and every directory above it must be ours or root's, writable by no one else.

        ``/dev/shm`` is world-writable: a directory someone else created there (or a symlink)
        could be swapped under us, so it is refused rather than used. Sticky directories
        (``/dev/shm`` and ``/tmp`` themselves) are fine: others cannot rename our entries.
        """
        me = os.geteuid()
        path = self.base.absolute()
        while True:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) and st.st_uid != 0:
                raise _unsafe(path, "is a symlink")
            if st.st_uid not in (me, 0):
                raise _unsafe(path, f"belongs to uid {st.st_uid}, not to dso's uid {me}")
            if path == self.base.absolute():
                if not stat.S_ISDIR(st.st_mode):
                    raise _unsafe(path, "is not a directory")
                if st.st_mode & 0o077:
                    os.chmod(path, 0o700)
            elif st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                raise _unsafe(path, "is writable by others")
            if path.parent == path:
                return
            path = path.parent

    # -- paths -----------------------------------------------------------------------------

    def project_dir(self, project: str) -> Path:
        if not _PROJECT.fullmatch(project):
            raise ValueError(f"not a compose project name: {project!r}")
        return self.base / project

    def service_dir(self, project: str, service: str) -> Path:
        """The directory bind-mounted into the containers of ``service``."""
        if not _SERVICE.fullmatch(service) or service in (".", ".."):
            raise ValueError(f"not a usable compose service name: {service!r}")
        return self.project_dir(project) / service

    def projects(self) -> list[str]:
        """Names of the projects that have a directory here."""
        try:
            entries = list(os.scandir(self.base))
        except FileNotFoundError:
            return []
        return sorted(
            e.name
            for e in entries
            if e.is_dir(follow_symlinks=False) and _PROJECT.fullmatch(e.name)
        )

    # -- writes ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, project: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the project's lock; with ``wait=False`` yields False instead of waiting."""
        path = self.base / f".{project}.lock"
        self.project_dir(project)  # validates the name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def write_service(
        self, project: str, service: str, files: Mapping[str, SecretValue], owner: Owner
    ) -> Path:
        """Publish ``files`` for ``service`` (atomic ``..data`` swap); returns its directory."""
        project_dir = self.project_dir(project)
        with contextlib.suppress(FileExistsError):
            project_dir.mkdir(mode=0o700)
        target = self.service_dir(project, service)
        publish(target, files, owner)
        return target

    def remove_project(self, project: str) -> bool:
        """Remove every secret file of ``project``; True if there was something to remove."""
        path = self.project_dir(project)
        existed = path.exists()
        remove_tree(path)
        with contextlib.suppress(FileNotFoundError):
            (self.base / f".{project}.lock").unlink()
        return existed

    def idle_for(self, project: str, now: float) -> float:
        """Seconds since anything of ``project`` was last written (its dirs' newest mtime)."""
        path = self.project_dir(project)
        newest = 0.0
        with contextlib.suppress(FileNotFoundError):
            newest = path.stat().st_mtime
            for entry in os.scandir(path):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
        return now - newest

    def remove_stale(self, candidates: Collection[str], active: Collection[str]) -> list[str]:
        """Remove the directories of ``candidates`` not in ``active`` and not locked by a run."""
        removed = []
        for project in candidates:
            if project in active:
                continue
            with self.locked(project, wait=False) as got:
                if got:
                    self.remove_project(project)
                    removed.append(project)
        return removed


def _unsafe(path: Path, why: str) -> StorageError:
    return StorageError(
        f"refusing to keep secrets under {path}: it {why}",
        hint=f"remove it, or set {SECRETS_DIR_ENV} to a private directory on a tmpfs",
    )
