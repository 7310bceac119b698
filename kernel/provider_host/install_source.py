"""The source of ``providers install``, staged: copied or extracted into a staging directory,
checked against the source's ``SHA256SUMS``, and given the plugins directory's modes.

What :mod:`.install` runs before anything is executed or renamed into place (its docstring has
the whole sequence). Every function works on the staged copy, never on the source, so what is
checked is what gets installed.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import ProviderInstallError
from kernel.protocol import EXECUTABLE_PREFIX
from kernel.provider_host.verify import MANIFEST_NAME, parse_manifest, sha256_file

#: Modes of what is installed: directories and executables, other files.
DIR_MODE = 0o755
EXEC_MODE = 0o755
DATA_MODE = 0o644


@dataclass(slots=True)
class Staged:
    """The staged program: ``top`` is the file or bundle directory; ``manifest_root`` the
    staged directory the source manifest's paths are relative to (with ``manifest_text``, when
    the source has one); ``kind`` is ``directory``, ``tarball`` or ``file``."""

    top: Path
    manifest_text: str | None = None
    manifest_root: Path | None = None
    kind: str = "file"


def _is_tarball(path: Path) -> bool:
    return path.is_file() and (path.name.endswith((".tar.gz", ".tgz")) or tarfile.is_tarfile(path))


def stage(source: Path, staging: Path) -> Staged:
    """Copy or extract ``source`` into ``staging``; find the program and the source manifest."""
    if source.is_dir():
        top = staging / "payload" / source.name
        shutil.copytree(source, top, symlinks=True)
        for manifest_dir in (source, source.parent):
            text = read_text(manifest_dir / MANIFEST_NAME)
            if text is not None:
                root = top if manifest_dir == source else top.parent
                return Staged(top, text, root, "directory")
        return Staged(top, None, None, "directory")
    if _is_tarball(source):
        return _extract(source, staging)
    if source.is_file():
        top = staging / "payload" / source.name
        top.parent.mkdir()
        shutil.copy2(source, top)
        return Staged(top, None, None, "file")
    raise ProviderInstallError(f"{source} is neither a directory, a .tar.gz nor a file")


def _extract(source: Path, staging: Path) -> Staged:
    root = staging / "payload"
    root.mkdir()
    try:
        with tarfile.open(source, "r:*") as archive:
            archive.extractall(root, filter="data")
    except tarfile.FilterError as exc:
        raise ProviderInstallError(
            f"{source}: refused, the archive is unsafe to extract: {exc}; nothing was installed"
        ) from None
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
    text = read_text(base / MANIFEST_NAME)
    if text is None:
        raise ProviderInstallError(
            f"{source}: no {MANIFEST_NAME} beside {programs[0].name} in the archive",
            hint="a tarball must carry its checksums; install a single executable or a"
            " directory to have them computed",
        )
    return Staged(programs[0], text, base, "tarball")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def executable_of(top: Path) -> Path:
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


def verify_source(staged: Staged, executable: Path) -> str:
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


def normalise_modes(top: Path) -> int:
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
