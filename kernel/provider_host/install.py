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
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.atomic_write import atomic_write, fsync_directory
from kernel.errors import ProtocolError, ProviderInstallError, ProviderNotFoundError, StorageError
from kernel.protocol import EXECUTABLE_PREFIX, SUPPORTED_PROTOCOLS, negotiate
from kernel.provider_host.discovery import run_describe, valid_name
from kernel.provider_host.install_source import (
    DIR_MODE,
    executable_of,
    normalise_modes,
    read_text,
    stage,
    verify_source,
)
from kernel.provider_host.process import ORIGIN_PATH, ProviderCommand
from kernel.provider_host.verify import (
    MANIFEST_NAME,
    check,
    normalise,
    parse_manifest,
    read_manifest,
    sha256_file,
)

#: Staging directories inside the plugins directory start with this (discovery skips them).
STAGING_PREFIX = ".install-"
#: The manifest's mode (directories and programs: :mod:`.install_source`).
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
    """What the installed program at ``target`` says its version is; None when it does not
    say, or when it does not match the plugins directory's ``SHA256SUMS`` (it is not run then:
    nothing unverified is executed)."""
    directory = target.parent
    try:
        executable = executable_of(target)
        verdict = check(executable, directory, read_manifest(directory))
        if not verdict.ok:
            return None
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
        staged = stage(source, staging)
    except OSError as exc:
        raise ProviderInstallError(f"cannot read {source}: {exc.strerror or exc}") from None
    executable = executable_of(staged.top)
    checksums = verify_source(staged, executable)
    files = normalise_modes(staged.top)
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
    old_text = read_text(directory / MANIFEST_NAME) or ""
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
        text = read_text(directory / MANIFEST_NAME)
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
