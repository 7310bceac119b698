"""Build the release an operator installs (``make dist``).

    python build/build_release.py dist [--version-suffix S] [--out DIR] [--no-deb] [--force]
    python build/build_release.py status

``dist``:

1. brings the frozen kernel ``dist/dso/`` (build/pyinstaller/dso.spec) and the four providers
   ``dist/plugins/`` up to date, with build_providers.py's stamps and lock (nothing is rebuilt
   when nothing changed);
2. assembles ``<out>/dso-<version>/``: ``dso/`` (the kernel, its ``kernel/_commit.txt`` stamped
   with the commit, and ``docker-dso``, a link to ``dso``), ``plugins/`` (the provider bundles
   and their ``SHA256SUMS``), ``install`` (packaging/install.sh), ``VERSION``, and a
   ``SHA256SUMS`` over every other file;
3. writes ``<out>/dso-<version>-linux-x86_64.tar.gz``: sorted members, owned by root, with the
   commit's time as every mtime (``SOURCE_DATE_EPOCH`` when set);
4. builds ``<out>/dso_<version>_amd64.deb`` with ``dpkg-deb`` from that tarball's content: the
   release under ``/opt/dso/releases/<version>/``, the unit ``/lib/systemd/system/dso-agent.
   service`` (:func:`kernel.system.unit.render_unit`) and the maintainer scripts of
   ``packaging/deb/``;
5. merges their lines into ``<out>/SHA256SUMS`` (``sha256sum`` format).

Steps 2-5 are skipped when a stamp (``.build/stamps/release-<version>.json``) says their inputs
have not changed: ``make dist`` with nothing changed takes about a second. ``--version-suffix
S`` names the same frozen tree ``<version>+S`` and stamps its commit file ``<commit>+S`` (for
the upgrade and rollback tests: the frozen program reads its version from the code, so ``dso
version`` tells the two builds apart by that commit stamp). docs/building.md is the user
documentation.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_providers as providers  # beside this file (build/ is not a package)

REPO = providers.REPO
PACKAGING = REPO / "packaging"
OUT = REPO / "dist"
STAGING = REPO / ".build" / "release"
PLATFORM = "linux-x86_64"
DEB_ARCH = "amd64"
MANIFEST = "SHA256SUMS"
#: What a version suffix may hold (a Debian and PEP 440 local version part, short enough that
#: ``<commit[:7]>+<suffix>`` fits the 12 characters kernel/build_info.py reads).
SUFFIX = re.compile(r"[a-z0-9]{1,4}")
#: The release's files that are not copied from a bundle.
INSTALL_SCRIPT = "install"
VERSION_FILE = "VERSION"
COMMIT_FILE = Path("dso") / "_internal" / "kernel" / "_commit.txt"
DEB_SCRIPTS = ("postinst", "prerm", "postrm")
UNIT_PATH = Path("lib") / "systemd" / "system" / "dso-agent.service"


#: Modules the frozen dso must hold besides every module of ``kernel``: journald's native
#: protocol and sd_notify (kernel/journald.py, kernel/agent/service_manager.py), with their
#: extension modules.
REQUIRED_MODULES = ("cysystemd.journal", "cysystemd.daemon")
REQUIRED_EXTENSIONS = ("cysystemd/_journal", "cysystemd/_daemon")


def log(message: str) -> None:
    providers.log(message)


# -- names and texts (pure) -------------------------------------------------------------------


def release_version(base: str, suffix: str | None = None) -> str:
    """``base``, or ``base+suffix`` for a test build of the same tree."""
    if suffix is None:
        return base
    if not SUFFIX.fullmatch(suffix):
        raise SystemExit(f"build: --version-suffix {suffix!r}: use 1-4 of [a-z0-9]")
    return f"{base}+{suffix}"


def commit_stamp(commit: str, suffix: str | None = None) -> str:
    """What ``kernel/_commit.txt`` holds: the commit, or ``<commit[:7]>+<suffix>``."""
    return commit[:12] if suffix is None else f"{commit[:7]}+{suffix}"


def tarball_name(version: str) -> str:
    return f"dso-{version}-{PLATFORM}.tar.gz"


def deb_name(version: str) -> str:
    return f"dso_{version}_{DEB_ARCH}.deb"


def sha256_file(path: Path) -> str:
    return providers.sha256_file(path)


def manifest_text(root: Path) -> str:
    """``SHA256SUMS`` over every file and link under ``root`` but the manifest itself, sorted by
    path (a link is hashed as what it points to, as ``sha256sum -c`` checks it)."""
    lines = []
    for path in sorted(walk_files(root), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root).as_posix()
        if relative != MANIFEST:
            lines.append(f"{sha256_file(path)}  {relative}\n")
    return "".join(lines)


def walk_files(root: Path) -> Iterator[Path]:
    """Every file and symlink under ``root`` (symlinks are not followed)."""
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(directory)
        for name in sorted(files):
            yield here / name
        for name in dirs:
            if (here / name).is_symlink():
                yield here / name


def merge_sums(existing: str, ours: Mapping[str, str], present: Iterable[str]) -> str:
    """``existing`` SHA256SUMS text with the lines of ``ours`` (name → digest) replaced or added
    and lines of files not in ``present`` dropped; sorted by name."""
    keep = set(present)
    entries: dict[str, str] = {}
    for line in existing.splitlines():
        digest, sep, name = line.partition("  ")
        if sep and len(digest) == 64 and name in keep:
            entries[name] = digest
    entries.update(ours)
    return "".join(f"{entries[name]}  {name}\n" for name in sorted(entries))


def render(template: str, values: Mapping[str, str]) -> str:
    """``@KEY@`` placeholders replaced; a placeholder left over is a bug in the template."""
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", template)
    if left:
        raise SystemExit(f"build: placeholders without a value: {sorted(set(left))}")
    return template


def glibc_version() -> str:
    """The build machine's glibc (the frozen programs need at least that one)."""
    name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")  # "glibc 2.36"
    if name != "glibc" or not version:
        raise SystemExit("build: the release is built on a glibc system (Debian, Ubuntu…)")
    return version


def control_text(version: str, installed_kib: int, glibc: str) -> str:
    template = (PACKAGING / "deb" / "control").read_text()
    return render(
        template,
        {
            "VERSION": version,
            "INSTALLED_SIZE": str(installed_kib),
            "DEPENDS": f"libc6 (>= {glibc})",
        },
    )


# -- the frozen kernel -------------------------------------------------------------------------


def check_kernel_bundle() -> None:
    """Fail unless the frozen dso holds every module of ``kernel`` and :data:`REQUIRED_MODULES`
    (a module missing from the bundle would only fail when a command imports it)."""
    sys.path.insert(0, str(providers.SPECS))
    from bundle import kernel_modules

    frozen = {name for name, _ in providers.frozen_modules(providers.KERNEL)}
    missing = sorted({*kernel_modules(), *REQUIRED_MODULES} - frozen)
    internal = providers.KERNEL.executable.parent / "_internal"
    missing += [f"{e}.*.so" for e in REQUIRED_EXTENSIONS if not list(internal.glob(f"{e}.*.so"))]
    if missing:
        raise SystemExit(f"build: the frozen dso lacks {', '.join(missing)}")


# -- the release directory --------------------------------------------------------------------


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_new(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``path`` as a new file (never through a hard link shared with the bundle)."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def assemble(target: Path, version: str, commit: str) -> None:
    """Write the release directory ``target`` (replaced whole, by rename)."""
    staging = target.with_name(f".{target.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(
        providers.KERNEL.executable.parent,
        staging / "dso",
        symlinks=True,
        copy_function=_link_or_copy,
    )
    _write_new(staging / COMMIT_FILE, commit + "\n")
    # `dso install` (kernel/cli/install.py) links a frozen dso's sibling docker-dso.
    (staging / "dso" / "docker-dso").symlink_to("dso")
    (staging / "plugins").mkdir()
    for name in providers.available():
        bundle = providers.executable(name).parent
        shutil.copytree(
            bundle, staging / "plugins" / bundle.name, symlinks=True, copy_function=_link_or_copy
        )
    shutil.copy2(providers.DIST / MANIFEST, staging / "plugins" / MANIFEST)
    _write_new(staging / INSTALL_SCRIPT, (PACKAGING / "install.sh").read_text(), 0o755)
    _write_new(staging / VERSION_FILE, version + "\n")
    _write_new(staging / MANIFEST, manifest_text(staging))
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


# -- the tarball ------------------------------------------------------------------------------


def normalised(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    """Owner root, the given mtime, and 0755 (directories, executables) or 0644."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = epoch
    if info.isdir() or (info.isfile() and info.mode & 0o111):
        info.mode = 0o755
    elif info.issym():
        info.mode = 0o777
    else:
        info.mode = 0o644
    return info


def write_tarball(root: Path, output: Path, epoch: int, *, level: int = 6) -> None:
    """``root`` as ``<root.name>/…`` in a gzip tarball: members sorted, normalised
    (:func:`normalised`), the gzip header's time fixed; written atomically."""
    members = [root, *sorted(_tree(root), key=lambda p: p.relative_to(root).as_posix())]
    partial = output.with_name(f".{output.name}.{os.getpid()}")
    try:
        with (
            partial.open("wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=epoch, compresslevel=level
            ) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for path in members:
                arcname = (Path(root.name) / path.relative_to(root)).as_posix()
                info = normalised(tar.gettarinfo(str(path), arcname), epoch)
                if info.isfile():
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def _tree(root: Path) -> Iterator[Path]:
    """Every directory, file and symlink under ``root`` (symlinks not followed)."""
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        for name in dirs:
            yield here / name
        for name in files:
            yield here / name


# -- the Debian package -----------------------------------------------------------------------


def build_deb(tarball: Path, version: str, epoch: int, output: Path) -> None:
    """``dpkg-deb --build`` of the release (unpacked from ``tarball``, so the package holds
    exactly the tarball's files and mtimes), the unit and the maintainer scripts."""
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("build: dpkg-deb is missing: apt-get install dpkg (Debian's own)")
    sys.path.insert(0, str(REPO))
    from kernel.system.unit import render_unit

    root = STAGING / f"deb-{version}"
    shutil.rmtree(root, ignore_errors=True)
    releases = root / "opt" / "dso" / "releases"
    releases.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(releases, filter="tar")
    (releases / f"dso-{version}").rename(releases / version)
    unit = root / UNIT_PATH
    _write_new(unit, render_unit())
    control = root / "DEBIAN"
    control.mkdir()
    values = {"VERSION": version}
    for script in DEB_SCRIPTS:
        _write_new(
            control / script, render((PACKAGING / "deb" / script).read_text(), values), 0o755
        )
    files = [p for p in walk_files(root) if not p.is_relative_to(control)]
    size = sum(p.lstat().st_size for p in files)
    _write_new(control / "control", control_text(version, -(-size // 1024), glibc_version()))
    md5sums = "".join(
        f"{hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()}  "
        f"{p.relative_to(root).as_posix()}\n"
        for p in sorted(files)
        if p.is_file() and not p.is_symlink()
    )
    _write_new(control / "md5sums", md5sums)
    for path in [*walk_files(root), *_dirs(root)]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    partial = output.with_name(f".{output.name}.{os.getpid()}")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    command = [
        "dpkg-deb",
        "--root-owner-group",
        "-Zgzip",
        "-z6",
        "--build",
        str(root),
        str(partial),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"build: dpkg-deb failed:\n{done.stdout}{done.stderr}")
    os.replace(partial, output)
    shutil.rmtree(root, ignore_errors=True)


def _dirs(root: Path) -> Iterator[Path]:
    yield root
    for directory, dirs, _ in os.walk(root):
        for name in dirs:
            yield Path(directory) / name


# -- the whole release ------------------------------------------------------------------------


def source_epoch() -> int:
    """``SOURCE_DATE_EPOCH``, else the commit's time, else now."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.strip()) if done.stdout.strip().isdigit() else int(time.time())


def kernel_identity() -> tuple[str, str]:
    """``(kernel.__version__, commit)`` of this checkout, as the frozen dso will report them."""
    sys.path.insert(0, str(REPO))
    from kernel import __version__
    from kernel.build_info import commit

    return __version__, commit()


def release_digest(version: str, commit: str, epoch: int, deb: bool) -> str:
    """What the release is made from: names, every file of the kernel and provider bundles, the
    packaging files and these scripts (about half a second)."""
    digest = hashlib.sha256(f"{version}\0{commit}\0{epoch}\0{deb}\0".encode())
    for bundle in (providers.KERNEL.executable.parent, providers.DIST):
        digest.update(manifest_text(bundle).encode())
    inputs = [
        Path(__file__).resolve(),
        Path(providers.__file__).resolve(),
        REPO / "kernel" / "system" / "unit.py",
        *sorted(p for p in PACKAGING.rglob("*") if p.is_file()),
    ]
    for path in inputs:
        digest.update(path.as_posix().encode() + b"\0" + sha256_file(path).encode())
    return digest.hexdigest()


def outputs(out: Path, version: str, deb: bool) -> list[Path]:
    paths = [out / f"dso-{version}", out / tarball_name(version)]
    return [*paths, out / deb_name(version)] if deb else paths


def _stamp(version: str) -> Path:
    return providers.STAMPS / f"release-{version}.json"


def release_current(out: Path, version: str, digest: str, deb: bool) -> bool:
    try:
        stamp = json.loads(_stamp(version).read_text())
    except (OSError, ValueError):
        return False
    wanted = [str(p) for p in outputs(out, version, deb)]
    return (
        stamp.get("digest") == digest
        and stamp.get("outputs") == wanted
        and all(Path(p).exists() for p in wanted)
    )


def dist(
    *,
    suffix: str | None = None,
    out: Path = OUT,
    deb: bool = True,
    force: bool = False,
    jobs: int = 2,
) -> Path:
    """Build what is stale; returns the tarball. The caller holds build_providers' lock."""
    known = providers.available()
    programs = [providers.KERNEL, *(providers.provider_program(n) for n in known)]
    providers.build_programs(programs, force=force, jobs=jobs)
    providers.write_manifest(known)
    check_kernel_bundle()
    base, commit = kernel_identity()
    version = release_version(base, suffix)
    stamp_commit = commit_stamp(commit, suffix)
    _write_new(providers.KERNEL.executable.parent / COMMIT_FILE.relative_to("dso"), commit + "\n")
    epoch = source_epoch()
    digest = release_digest(version, stamp_commit, epoch, deb)
    tarball = out / tarball_name(version)
    if not force and release_current(out, version, digest, deb):
        log(f"release {version} is up to date: {tarball}")
        return tarball
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    assemble(out / f"dso-{version}", version, stamp_commit)
    write_tarball(out / f"dso-{version}", tarball, epoch)
    log(f"{tarball} ({tarball.stat().st_size / 1e6:.1f} MB)")
    ours = {tarball.name: sha256_file(tarball)}
    if deb:
        package = out / deb_name(version)
        build_deb(tarball, version, epoch, package)
        log(f"{package} ({package.stat().st_size / 1e6:.1f} MB)")
        ours[package.name] = sha256_file(package)
    sums = out / MANIFEST
    existing = sums.read_text() if sums.is_file() else ""
    present = [p.name for p in out.iterdir() if p.is_file()]
    providers.write_atomically(sums, merge_sums(existing, ours, present))
    stamp = {"digest": digest, "outputs": [str(p) for p in outputs(out, version, deb)]}
    providers.STAMPS.mkdir(parents=True, exist_ok=True)
    providers.write_atomically(_stamp(version), json.dumps(stamp, indent=1) + "\n")
    log(f"release {version} in {time.monotonic() - started:.1f} s; {sums}")
    return tarball


def status() -> int:
    """0 when ``make dist`` has nothing to do (the default release)."""
    known = providers.available()
    programs = [providers.KERNEL, *(providers.provider_program(n) for n in known)]
    stale = [p.program for p in programs if not providers.is_current(p)]
    for program in stale:
        log(f"{program} needs a build")
    if stale:
        return 1
    version, commit = kernel_identity()
    digest = release_digest(version, commit_stamp(commit), source_epoch(), True)
    if not release_current(OUT, version, digest, True):
        log(f"release {version} needs a build")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dist_cmd = sub.add_parser("dist", help="build the tarball, the .deb and SHA256SUMS")
    dist_cmd.add_argument("--version-suffix", default=None, help="name a test build <version>+S")
    dist_cmd.add_argument("--out", type=Path, default=OUT, help="output directory (dist/)")
    dist_cmd.add_argument("--no-deb", dest="deb", action="store_false", help="no .deb")
    dist_cmd.add_argument("--force", action="store_true", help="rebuild even if up to date")
    dist_cmd.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    sub.add_parser("status", help="exit 0 when the release is up to date")
    args = parser.parse_args(argv)
    if args.command == "status":
        return status()
    with providers.exclusive():
        tarball = dist(
            suffix=args.version_suffix,
            out=args.out.resolve(),
            deb=args.deb,
            force=args.force,
            jobs=args.jobs,
        )
    print(tarball)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
