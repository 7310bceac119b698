"""``docker dso providers install SOURCE`` and ``providers remove NAME``: the plugins directory
edited the way an operator would by hand, but verified and atomic.

A SOURCE is a onedir bundle directory (``dso-provider-<name>/dso-provider-<name>`` and its
files), a ``.tar.gz`` holding one bundle or executable with a ``SHA256SUMS`` beside it, or a
single executable. Installing:

1. copies (or extracts, with tarfile's ``data`` filter) the source into a staging directory
   *inside* the plugins directory, so the final step is a rename on one file system;
2. checks the staged copy against the source's ``SHA256SUMS`` (every file it lists for this
   provider; the executable must be listed) — a single file or a directory without a manifest
   has its digest computed instead (trust on first use, reported as such);
3. runs ``--describe`` on the staged executable (:func:`.discovery.run_describe`) for the name,
   version and protocol versions, and refuses a program that speaks no protocol we speak;
4. under a lock on the plugins directory: refuses an installed program of that name unless
   ``force``; renames the staged program into place (the previous one moved aside first), then
   replaces ``SHA256SUMS`` atomically (:func:`kernel.atomic_write.atomic_write`) with this
   provider's line changed and every other line kept as it was; a failure puts the previous
   program back. The staging directory is always removed: nothing is left half-installed.

Removing drops the program and its manifest lines, keeping the rest of the file byte for byte;
a manifest left with no line at all, in a directory with no other program, is removed, so
install then remove restores a directory that had none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.atomic_write import atomic_write, fsync_directory
from kernel.errors import ProtocolError, ProviderInstallError, ProviderNotFoundError, StorageError
from kernel.protocol import EXECUTABLE_PREFIX, SUPPORTED_PROTOCOLS, negotiate
from kernel.provider_host.discovery import run_describe, valid_name
from kernel.provider_host.process import ORIGIN_PATH, ProviderCommand
from kernel.provider_host.verify import MANIFEST_NAME, normalise, parse_manifest, sha256_file

#: Staging directories inside the plugins directory start with this (discovery skips them).
STAGING_PREFIX = ".install-"
#: Modes of what is installed: directories and executables, other files, the manifest.
DIR_MODE = 0o755
EXEC_MODE = 0o755
DATA_MODE = 0o644
MANIFEST_MODE = 0o644

Describer = Callable[[ProviderCommand], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Installed:
    """What ``install`` did (or would do, with ``dry_run``)."""

    name: str
    version: str
    protocol: int
    capabilities: tuple[str, ...]
    #: ``dso-provider-<name>`` in the plugins directory (a file or a bundle directory).
    path: Path
    executable: Path
    sha256: str
    #: ``directory``, ``tarball`` or ``file``.
    source_kind: str
    #: ``SHA256SUMS`` when the source's manifest was checked, ``computed`` otherwise.
    checksums: str
    files: int
    replaced_version: str | None = None
    replaced: bool = False
    dry_run: bool = False
    #: Things the operator should know (e.g. a new manifest now guards other programs).
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": ("would-replace" if self.replaced else "would-install")
            if self.dry_run
            else ("replaced" if self.replaced else "installed"),
            "name": self.name,
            "version": self.version,
            "protocol": self.protocol,
            "capabilities": list(self.capabilities),
            "path": str(self.path),
            "executable": str(self.executable),
            "sha256": self.sha256,
            "source": {"kind": self.source_kind, "checksums": self.checksums},
            "files": self.files,
            "replaced_version": self.replaced_version,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Removed:
    """What ``remove`` did."""

    name: str
    path: Path
    manifest_lines: int
    manifest_removed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "removed",
            "name": self.name,
            "path": str(self.path),
            "manifest_lines_removed": self.manifest_lines,
            "manifest_removed": self.manifest_removed,
        }


@dataclass(slots=True)
class _Staged:
    """The staged program: ``top`` is the file or bundle directory, ``source_root`` the
    directory the source's manifest paths are relative to (when there is one)."""

    top: Path
    manifest_text: str | None = None
    manifest_root: Path | None = None
    kind: str = "file"


# -- the plugins directory lock -----------------------------------------------------------------


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive flock on the plugins directory itself (two installs never lose a
    manifest line; no lock file is left behind)."""
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError(
            f"cannot use the plugins directory {directory}: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not os.access(directory, os.W_OK):
            raise StorageError(
                f"cannot write the plugins directory {directory}: permission denied",
                hint="the agent's plugins directory belongs to root: run the command with sudo",
            )
        yield
    finally:
        os.close(handle)


# -- staging ------------------------------------------------------------------------------------


def _is_tarball(path: Path) -> bool:
    return path.is_file() and (path.name.endswith((".tar.gz", ".tgz")) or tarfile.is_tarfile(path))


def _stage(source: Path, staging: Path) -> _Staged:
    """Copy or extract ``source`` into ``staging``; find the program and the source manifest."""
    if source.is_dir():
        top = staging / "payload" / source.name
        shutil.copytree(source, top, symlinks=True)
        for manifest_dir in (source, source.parent):
            text = _read_text(manifest_dir / MANIFEST_NAME)
            if text is not None:
                root = top if manifest_dir == source else top.parent
                return _Staged(top, text, root, "directory")
        return _Staged(top, None, None, "directory")
    if _is_tarball(source):
        return _extract(source, staging)
    if source.is_file():
        top = staging / "payload" / source.name
        top.parent.mkdir()
        shutil.copy2(source, top)
        return _Staged(top, None, None, "file")
    raise ProviderInstallError(f"{source} is neither a directory, a .tar.gz nor a file")


def _extract(source: Path, staging: Path) -> _Staged:
    root = staging / "payload"
    root.mkdir()
    try:
        with tarfile.open(source, "r:*") as archive:
            archive.extractall(root, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ProviderInstallError(f"{source}: not a readable tar archive ({exc})") from None
    # The manifest and the program are at the archive's top, or in its one top directory.
    base = root
    entries = list(root.iterdir())
    if (
        len(entries) == 1
        and entries[0].is_dir()
        and not entries[0].name.startswith(EXECUTABLE_PREFIX)
    ):
        base = entries[0]
    programs = sorted(e for e in base.iterdir() if e.name.startswith(EXECUTABLE_PREFIX))
    if len(programs) != 1:
        found = ", ".join(p.name for p in programs) or "none"
        raise ProviderInstallError(
            f"{source}: expected one {EXECUTABLE_PREFIX}<name> program at the top of the archive,"
            f" found {found}",
            hint="an archive holds one provider: dso-provider-<name> (file or onedir directory)"
            " and SHA256SUMS",
        )
    text = _read_text(base / MANIFEST_NAME)
    if text is None:
        raise ProviderInstallError(
            f"{source}: no {MANIFEST_NAME} beside {programs[0].name} in the archive",
            hint="a tarball must carry its checksums; install a single executable or a"
            " directory to have them computed",
        )
    return _Staged(programs[0], text, base, "tarball")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _executable(top: Path) -> Path:
    """The program inside a staged bundle directory, or the staged file itself."""
    if top.is_dir():
        inner = top / top.name
        if not inner.is_file():
            raise ProviderInstallError(
                f"{top.name}/ is not a provider bundle: no executable {top.name}/{top.name}",
                hint="a bundle directory is dso-provider-<name>/ holding dso-provider-<name>",
            )
        return inner
    return top


def _verify(staged: _Staged, executable: Path) -> str:
    """Check the staged files against the source's manifest; ``SHA256SUMS`` or ``computed``."""
    if staged.manifest_text is None or staged.manifest_root is None:
        return "computed"
    manifest = parse_manifest(staged.manifest_text, staged.manifest_root / MANIFEST_NAME)
    top_rel = staged.top.relative_to(staged.manifest_root).as_posix()
    mine = {
        path: digest
        for path, digest in manifest.entries.items()
        if top_rel == "." or path == top_rel or path.startswith(top_rel + "/")
    }
    exe_rel = executable.relative_to(staged.manifest_root).as_posix()
    if exe_rel not in mine:
        raise ProviderInstallError(
            f"the source's {MANIFEST_NAME} has no line for {exe_rel}",
            hint=f"add it: sha256sum {exe_rel} >> {MANIFEST_NAME}",
        )
    for relative, expected in sorted(mine.items()):
        path = staged.manifest_root / relative
        if not path.is_file() or path.is_symlink():
            raise ProviderInstallError(
                f"{relative} is listed in the source's {MANIFEST_NAME} but is not in the source"
            )
        actual = sha256_file(path)
        if actual != expected:
            raise ProviderInstallError(
                f"checksum mismatch for {relative}: the source's {MANIFEST_NAME} lists"
                f" {expected[:16]}…, the file has {actual[:16]}…; nothing was installed",
                hint="the download is corrupt or was tampered with: fetch it again from its"
                " publisher",
            )
    return MANIFEST_NAME


def _normalise_modes(top: Path) -> int:
    """Directories and executables 0755, other files 0644, owned by root when run as root;
    returns the number of files."""
    as_root = os.geteuid() == 0
    count = 0
    paths = [top, *top.rglob("*")] if top.is_dir() else [top]
    for path in paths:
        st = path.lstat()
        if as_root:
            os.lchown(path, 0, 0)
        if stat.S_ISLNK(st.st_mode):
            continue
        if stat.S_ISDIR(st.st_mode):
            os.chmod(path, DIR_MODE)
            continue
        count += 1
        os.chmod(path, EXEC_MODE if st.st_mode & 0o111 else DATA_MODE)
    return count


# -- describe -----------------------------------------------------------------------------------


def _describe(executable: Path, describe: Describer) -> tuple[str, str, int, tuple[str, ...]]:
    if not os.access(executable, os.X_OK):
        raise ProviderInstallError(f"{executable.name} is not executable (chmod +x it)")
    command = ProviderCommand("provider", (str(executable),), ORIGIN_PATH)
    try:
        doc = dict(describe(command))
    except ProtocolError as exc:
        raise ProviderInstallError(
            f"{executable.name} is not a dso provider: {exc.message}",
            hint="a provider prints its metadata for `--describe` (docs/provider-protocol.md)",
        ) from None
    name = str(doc.get("name", ""))
    if not valid_name(name):
        raise ProviderInstallError(f"--describe names it {name!r}, not a valid provider name")
    versions = [int(v) for v in doc.get("protocol_versions", [])]
    protocol = negotiate(versions)
    if protocol is None:
        raise ProviderInstallError(
            f"{EXECUTABLE_PREFIX}{name} speaks protocol {', '.join(map(str, versions)) or 'none'};"
            f" this dso speaks {', '.join(map(str, SUPPORTED_PROTOCOLS))}; nothing was installed",
            provider=name,
            hint="install a release of the provider built for this dso, or upgrade dso",
        )
    caps = tuple(sorted(str(c) for c in doc.get("capabilities", [])))
    return name, str(doc.get("version", "?")), protocol, caps


def installed_version(target: Path, describe: Describer = run_describe) -> str | None:
    """What the installed program at ``target`` says its version is (None: it does not say)."""
    try:
        executable = _executable(target)
        doc = describe(ProviderCommand("provider", (str(executable),), ORIGIN_PATH))
    except (ProviderInstallError, ProtocolError, OSError):
        return None
    return str(doc.get("version")) if doc.get("version") is not None else None


# -- the manifest -------------------------------------------------------------------------------


def _belongs(relative: str, name: str) -> bool:
    top = EXECUTABLE_PREFIX + name
    return relative == top or relative.startswith(top + "/")


def edit_manifest(text: str, name: str, line: str | None) -> tuple[str, int]:
    """``text`` without the lines of provider ``name`` (and with ``line`` appended); every
    other line is kept as it was. Returns the new text and how many lines were dropped."""
    kept: list[str] = []
    dropped = 0
    for raw in text.splitlines(keepends=True):
        parsed = parse_manifest(raw, Path(MANIFEST_NAME))
        if parsed.entries and all(_belongs(p, name) for p in parsed.entries):
            dropped += 1
            continue
        kept.append(raw)
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    if line is not None:
        kept.append(line + "\n")
    return "".join(kept), dropped


def _write_manifest(directory: Path, text: str | None) -> None:
    path = directory / MANIFEST_NAME
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fsync_directory(directory)
        return
    atomic_write(path, text.encode("utf-8"), mode=MANIFEST_MODE)


# -- install ------------------------------------------------------------------------------------


def install(
    source: Path,
    directory: Path,
    *,
    force: bool = False,
    dry_run: bool = False,
    describe: Describer = run_describe,
) -> Installed:
    """Install the provider at ``source`` into the plugins ``directory`` (module docstring)."""
    source = source.expanduser().absolute()
    if not source.exists():
        raise ProviderInstallError(f"{source} does not exist")
    with locked(directory):
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
        try:
            return _install_staged(source, directory, staging, force, dry_run, describe)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _install_staged(
    source: Path,
    directory: Path,
    staging: Path,
    force: bool,
    dry_run: bool,
    describe: Describer,
) -> Installed:
    try:
        staged = _stage(source, staging)
    except OSError as exc:
        raise ProviderInstallError(f"cannot read {source}: {exc.strerror or exc}") from None
    executable = _executable(staged.top)
    checksums = _verify(staged, executable)
    files = _normalise_modes(staged.top)
    name, version, protocol, caps = _describe(executable, describe)
    program = EXECUTABLE_PREFIX + name
    if staged.top.is_dir() and staged.top.name != program:
        raise ProviderInstallError(
            f"the bundle directory {staged.top.name}/ holds the provider {name!r}: rename it"
            f" {program}/ (its executable {program})",
            provider=name,
        )
    target = directory / program
    final_exe = target / program if staged.top.is_dir() else target
    digest = sha256_file(executable)
    exists = target.exists() or target.is_symlink()
    previous = installed_version(target, describe) if exists else None
    if exists and not force:
        raise ProviderInstallError(
            f"{target} is already installed (version {previous or 'unknown'}); the source is"
            f" version {version}; nothing was changed",
            provider=name,
            hint="pass --force to replace it",
        )
    notes: tuple[str, ...] = ()
    if not (directory / MANIFEST_NAME).exists():
        others = sorted(
            e.name
            for e in directory.iterdir()
            if e.name.startswith(EXECUTABLE_PREFIX) and e.name != program
        )
        if others:
            notes = (
                f"{directory} had no {MANIFEST_NAME}: the new one lists only {program}, so"
                f" {', '.join(others)} will be rejected until added to it",
            )
    result = Installed(
        name,
        version,
        protocol,
        caps,
        target,
        final_exe,
        digest,
        staged.kind,
        checksums,
        files,
        previous,
        exists,
        dry_run,
        notes,
    )
    if dry_run:
        return result
    # The staged program takes its final name inside the staging directory first, so that the
    # rename into the plugins directory moves it as it will be run.
    ready = staging / program
    staged.top.rename(ready)
    relative = final_exe.relative_to(directory).as_posix()
    old_text = _read_text(directory / MANIFEST_NAME) or ""
    new_text, _ = edit_manifest(old_text, name, f"{digest}  {normalise(relative)}")
    aside = staging / "previous"
    if exists:
        target.rename(aside)
    try:
        ready.rename(target)
        try:
            _write_manifest(directory, new_text)
        except StorageError:
            target.rename(ready)
            raise
    except BaseException:
        if exists:
            aside.rename(target)
        fsync_directory(directory)
        raise
    fsync_directory(directory)
    return result


# -- remove -------------------------------------------------------------------------------------


def remove(name: str, directory: Path) -> Removed:
    """Remove ``dso-provider-<name>`` and its manifest lines from the plugins ``directory``."""
    if not valid_name(name):
        raise ProviderInstallError(f"{name!r} is not a provider name ([a-z][a-z0-9_-]*)")
    program = EXECUTABLE_PREFIX + name
    target = directory / program
    if not (target.exists() or target.is_symlink()):
        raise ProviderNotFoundError(
            f"no {program} in {directory}; nothing was changed",
            provider=name,
            hint="`docker dso providers list` shows what is installed and where",
        )
    with locked(directory):
        text = _read_text(directory / MANIFEST_NAME)
        dropped = 0
        new_text: str | None = None
        if text is not None:
            new_text, dropped = edit_manifest(text, name, None)
            others = any(
                e.name.startswith(EXECUTABLE_PREFIX) and e.name != program
                for e in directory.iterdir()
            )
            if not new_text.strip() and not others:
                new_text = None
            # The manifest first: from here on nothing runs the program being removed.
            _write_manifest(directory, new_text)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
        try:
            target.rename(staging / program)
            fsync_directory(directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Removed(name, target, dropped, text is not None and new_text is None)
