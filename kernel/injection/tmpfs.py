"""Where ``dsofile://`` secrets live on the host: per-service directories on a tmpfs.

Layout (DESIGN.md §4)::

    <base>/                        owned by dso's user, writable by no one else, on a tmpfs
      .<project>.lock              held while a run of that project writes or removes files
      <project>/                   0700
        <service>/                 0700, owned by the service's user; bind-mounted read-only
          ..data -> ..<timestamp>  (kernel.injection.atomic_dir)

``<base>`` is ``DSO_SECRETS_DIR`` when set, else ``/run/dso/secrets`` in agent mode, else
``$XDG_RUNTIME_DIR/dso/<home>/secrets``, else ``/dev/shm/dso-<uid>/<home>/secrets``, where
``<home>`` is a short hash of the dso home's real path (two homes of one user never share a
project directory). Anything that is not a tmpfs is refused: a secret must never reach a disk.

dso changes the mode or owner of no directory it did not create: a base that is a symlink,
belongs to another user, is writable by others or is sticky is refused, as is a directory above
it that others could rename (writable by others without the sticky bit). Below the base every
directory is opened without following symlinks (:func:`kernel.injection.atomic_dir.open_dir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import stat
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.errors import StorageError
from kernel.injection.atomic_dir import (
    TMPFS_MAGIC,
    Owner,
    filesystem_magic,
    open_dir,
    publish,
    remove_tree,
)
from kernel.paths import local_home

if TYPE_CHECKING:
    from kernel.paths import Layout
    from kernel.secret_value import SecretValue

__all__ = [
    "SECRETS_DIR_ENV",
    "TMPFS_MAGIC",
    "SecretsDir",
    "default_base",
    "filesystem_magic",
    "filesystem_type",
    "home_key",
    "require_tmpfs",
]

#: Overrides the base directory (tests, unusual hosts).
SECRETS_DIR_ENV = "DSO_SECRETS_DIR"

_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SERVICE_DIR = re.compile(r"[A-Za-z0-9._-]+(@[0-9a-f]{8})?")


def default_base(layout: Layout | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The base directory for this host and mode (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get(SECRETS_DIR_ENV):
        return Path(env[SECRETS_DIR_ENV]).expanduser()
    if layout is not None and layout.mode == "agent":
        return layout.run / "secrets"
    root = local_home() if layout is None else layout.root
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "dso" / home_key(root) / "secrets"
    # World-writable, hence SecretsDir.prepare() checks every component's owner and mode.
    return Path("/dev/shm") / f"dso-{os.geteuid()}" / home_key(root) / "secrets"  # noqa: S108


def home_key(root: Path) -> str:
    """A short name for the dso home ``root``: its real path, hashed (12 hex digits)."""
    return hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:12]


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


def require_tmpfs(path: Path, fd: int | None = None) -> None:
    """Raise :class:`StorageError` unless ``path`` (the open directory ``fd`` if given) is on
    a tmpfs."""
    try:
        magic = filesystem_magic(path if fd is None else fd)
    except OSError as exc:
        raise StorageError(f"cannot check the file system of {path}: {exc.strerror}") from None
    if magic != TMPFS_MAGIC:
        raise StorageError(
            f"{path} is on {filesystem_type(path)}, not a tmpfs: secret files must never reach "
            "a disk, so dso refuses to write them there",
            hint=f"unset {SECRETS_DIR_ENV}, or point it at a directory on a tmpfs that dso "
            "creates itself (e.g. /dev/shm/dso-$(id -u)/secrets)",
        )


class SecretsDir:
    """The base directory and the per-project, per-service directories under it."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def __repr__(self) -> str:
        return f"SecretsDir({str(self.base)!r})"

    # -- set-up ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create what is missing of the base (0700) and check it (see :meth:`check`)."""
        self._walk(create=True)

    def check(self) -> None:
        """Refuse an unsafe base (:class:`StorageError`), changing nothing.

        The base must be a real directory of dso's uid, writable by no one else, not sticky,
        on a tmpfs; every directory above it must belong to dso's uid or root and be writable
        by no one else unless sticky (``/dev/shm`` and ``/tmp`` are: others cannot rename our
        entries there). A missing base passes when dso could create it safely.
        """
        self._walk(create=False)

    def exists(self) -> bool:
        """True when something (even a symlink) is at the base's path."""
        return os.path.lexists(self.base)

    def _walk(self, *, create: bool) -> None:
        base = Path(os.path.abspath(self.base))
        # A symlink above the base (/var/run -> /run) leads to directories checked first.
        real = Path(os.path.realpath(base.parent))
        for path in [*reversed(real.parents), real]:
            with contextlib.suppress(FileNotFoundError):
                _check_above(path, os.lstat(path))
        deepest = Path("/")
        for path in [*reversed(base.parents), base]:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    break
                try:
                    os.mkdir(path, 0o700)
                except FileExistsError:
                    pass  # made meanwhile by someone else: checked as found
                except OSError as exc:
                    raise StorageError(
                        f"cannot create {path}: {exc.strerror}", hint=_HINT
                    ) from None
                st = os.lstat(path)
            if path == base:
                _check_base(path, st)
            else:
                _check_above(path, st)
            deepest = path
        if deepest == base:
            os.close(self._open_base())
        else:
            require_tmpfs(deepest)

    def _open_base(self) -> int:
        """A descriptor of the checked base (not through a symlink), on a tmpfs."""
        fd = open_dir(self.base)
        try:
            _check_base(self.base, os.fstat(fd))
            require_tmpfs(self.base, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- paths -----------------------------------------------------------------------------

    def project_dir(self, project: str) -> Path:
        if not _PROJECT.fullmatch(project):
            raise ValueError(f"not a compose project name: {project!r}")
        return self.base / project

    def service_dir(self, project: str, service: str) -> Path:
        """The directory bind-mounted into the containers of ``service`` (``service`` may also
        be a rotation's own directory name, ``<service>@<rotation id>``)."""
        if not _SERVICE_DIR.fullmatch(service) or service in (".", ".."):
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
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise _unsafe(path, f"cannot be opened as a lock file ({exc.strerror})") from None
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
        """Publish ``files`` for ``service`` (atomic ``..data`` swap); returns its directory.

        The project directory must be a real directory of dso's, writable by no one else (a
        symlink planted there is refused, never followed); :func:`publish` checks the rest.
        """
        project_dir = self.project_dir(project)
        target = self.service_dir(project, service)
        base_fd = self._open_base()
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(project, 0o700, dir_fd=base_fd)
            fd = open_dir(project, dir_fd=base_fd, shown=project_dir)
            try:
                st = os.fstat(fd)
                if st.st_uid != os.geteuid():
                    raise _unsafe(project_dir, f"belongs to uid {st.st_uid}, not to dso's")
                if st.st_mode & 0o022:
                    raise _unsafe(project_dir, "is writable by others")
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot create {project_dir}: {exc.strerror}") from None
        finally:
            os.close(base_fd)
        publish(target, files, owner)
        return target

    def remove_project(self, project: str) -> bool:
        """Remove every secret file of ``project``; True if a directory of it was removed.

        A symlink in its place is refused (dso never makes one): nothing is removed, neither
        the link nor what it points to.
        """
        path = self.project_dir(project)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            removed = False
        else:
            if not stat.S_ISDIR(st.st_mode):
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise StorageError(
                    f"refusing to remove {path}: it is {what}, which dso never makes there; "
                    "nothing was removed",
                    hint=f"look at it and remove it by hand (rm {path}); dso did not make it",
                )
            try:
                remove_tree(path)
            except OSError as exc:
                raise StorageError(
                    f"cannot remove every secret file under {path}: {exc.strerror}",
                    hint="check the permissions of the secrets directory",
                ) from None
            removed = True
        with contextlib.suppress(FileNotFoundError):
            (self.base / f".{project}.lock").unlink()
        return removed

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


_HINT = (
    f"dso changes no directory it did not create: unset {SECRETS_DIR_ENV}, or point it at a "
    "directory that does not exist yet, which dso creates (0700), e.g. "
    "/dev/shm/dso-$(id -u)/secrets"  # noqa: S108
)


def _check_base(path: Path, st: os.stat_result) -> None:
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe(path, "is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise _unsafe(path, "is not a directory")
    if st.st_uid != me:
        raise _unsafe(path, f"belongs to uid {st.st_uid}, not to dso's uid {me}")
    if st.st_mode & stat.S_ISVTX:
        raise _unsafe(path, "is sticky: a directory shared by every user, like /dev/shm or /tmp")
    if st.st_mode & 0o022:
        raise _unsafe(path, f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})")


def _check_above(path: Path, st: os.stat_result) -> None:
    """A directory above the base: nobody but dso's uid and root may replace what is in it."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        kind = "a symlink that" if stat.S_ISLNK(st.st_mode) else "a directory that"
        raise _unsafe(path, f"is {kind} belongs to uid {st.st_uid}, not to dso's uid {me}")
    if stat.S_ISLNK(st.st_mode):
        return  # where it leads is checked too
    if not stat.S_ISDIR(st.st_mode):
        raise _unsafe(path, "is not a directory")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise _unsafe(path, "is writable by others")


def _unsafe(path: Path, why: str) -> StorageError:
    return StorageError(f"refusing to keep secrets under {path}: it {why}", hint=_HINT)
