"""Build the frozen providers (``make build``) and install them (``make install-providers``).

    python build/build_providers.py build [NAME…] [--force] [--jobs N]
    python build/build_providers.py status
    python build/build_providers.py install [--plugins-dir DIR]

``build`` runs PyInstaller on ``build/pyinstaller/dso-provider-<name>.spec`` for every provider
with a spec and a ``providers/<name>/__main__.py``, into ``dist/plugins/dso-provider-<name>/``
(onedir), with PyInstaller's work files in ``.build/pyinstaller/<name>/`` (never in this source
``build/`` directory), then writes ``dist/plugins/SHA256SUMS`` in ``sha256sum`` format over each
bundle's executable (what kernel/provider_host/verify.py checks before exec).

Builds are incremental. A stamp in ``.build/stamps/<name>.json`` records a digest of what the
bundle was made from: the spec, bundle.py and the entry script, the Python and PyInstaller
versions, every installed distribution's version, and the content of every file of this
repository the bundle froze (read from PyInstaller's analysis table of contents after the
build). A bundle whose stamp still matches is not rebuilt, so ``make test`` stays fast.

The same machinery (:class:`Program`, :func:`build_programs`, :func:`exclusive`) builds the
frozen kernel ``dist/dso/`` for build/build_release.py (``make dist``), with its stamp in
``.build/stamps/kernel.json``.

``install`` copies the bundles into the plugins directory (``$DSO_PLUGINS_DIR``, else
``$DSO_HOME/plugins``, else ``~/.dso/plugins``; ``--plugins-dir /var/lib/dso/plugins`` for the
agent), merges their lines into its ``SHA256SUMS``, then checks each one as the kernel will:
the manifest digest, and ``--describe``. docs/building.md is the user documentation.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "build" / "pyinstaller"
DIST = REPO / "dist" / "plugins"
WORK = REPO / ".build" / "pyinstaller"
STAMPS = REPO / ".build" / "stamps"
PREFIX = "dso-provider-"
MANIFEST = "SHA256SUMS"
LOCK = REPO / ".build" / "build.lock"


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One build or install at a time (parallel test workers all ask for a build)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def log(message: str) -> None:
    print(f"build: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Program:
    """One PyInstaller onedir program: ``<dist>/<program>/<program>``, built from ``spec``."""

    #: Names its stamp (``.build/stamps/<key>.json``) and work directory
    #: (``.build/pyinstaller/<key>``).
    key: str
    program: str
    spec: Path
    entry: Path
    dist: Path
    #: Packages the spec names module by module (their file lists are part of the digest: a new
    #: module is a change even before anything imports it).
    walks: tuple[str, ...] = ()
    #: Directories of PyInstaller hooks the spec uses (their files are part of the digest).
    hooks: tuple[Path, ...] = ()

    @property
    def executable(self) -> Path:
        return self.dist / self.program / self.program

    @property
    def stamp(self) -> Path:
        return STAMPS / f"{self.key}.json"

    @property
    def work(self) -> Path:
        return WORK / self.key


def provider_program(name: str) -> Program:
    return Program(
        name,
        f"{PREFIX}{name}",
        SPECS / f"{PREFIX}{name}.spec",
        SPECS / "entries" / f"dso_provider_{name}.py",
        DIST,
        hooks=(SPECS / "hooks",),
    )


#: The kernel: ``dist/dso/dso``, the CLI and the agent (build/build_release.py, ``make dist``).
KERNEL = Program(
    "kernel",
    "dso",
    SPECS / "dso.spec",
    SPECS / "entries" / "dso_kernel.py",
    REPO / "dist",
    walks=("kernel",),
    hooks=(SPECS / "hooks",),
)


def available() -> list[str]:
    """Providers with both a spec and source (a spec for a provider not written yet is skipped)."""
    names = []
    for spec in sorted(SPECS.glob(f"{PREFIX}*.spec")):
        name = spec.stem[len(PREFIX) :]
        if (REPO / "providers" / name / "__main__.py").is_file():
            names.append(name)
        else:
            log(f"skipping {spec.name}: providers/{name}/__main__.py does not exist yet")
    return names


def executable(name: str, dist: Path = DIST) -> Path:
    return dist / f"{PREFIX}{name}" / f"{PREFIX}{name}"


# -- stamps -----------------------------------------------------------------------------------


def _environment_digest() -> str:
    versions = sorted(
        f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions()
    )
    text = "\n".join([sys.version, platform.platform(), *versions])
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(program: Program, files: Iterable[str], environment: str) -> str:
    digest = hashlib.sha256(environment.encode())
    for package in program.walks:
        listing = sorted(p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py"))
        digest.update("\n".join(listing).encode() + b"\0")
    hook_files = sorted(p for d in program.hooks for p in d.rglob("*") if p.is_file())
    fixed = [program.spec, SPECS / "bundle.py", program.entry, *hook_files]
    for path in [*fixed, *(REPO / f for f in sorted(set(files)))]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def frozen_sources(program: Program) -> list[str]:
    """Files of this repository whose modules PyInstaller froze into the bundle (repo-relative),
    whether into the PYZ archive or as ``.pyc`` files (``noarchive``)."""
    found: set[str] = set()
    for _, source in frozen_modules(program):
        path = Path(source).resolve()
        if path.is_file() and path.is_relative_to(REPO) and not _installed(path):
            found.add(str(path.relative_to(REPO)))
    return sorted(found)


def frozen_modules(program: Program) -> list[tuple[str, str]]:
    """``(module, source path)`` of every Python module the analysis collected (the
    ``PYMODULE`` entries of PyInstaller's ``Analysis-00.toc``)."""
    toc_path = program.work / program.program / "Analysis-00.toc"
    entries: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, tuple | list):
            if len(node) == 3 and all(isinstance(item, str) for item in node):
                if node[2] == "PYMODULE":
                    entries.append((node[0], node[1]))
                return
            for item in node:
                walk(item)

    walk(ast.literal_eval(toc_path.read_text()))
    return entries


def _installed(path: Path) -> bool:
    """True for files of installed distributions (covered by the versions in the digest)."""
    return any(path.is_relative_to(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix})


def is_current(program: Program, environment: str | None = None) -> bool:
    """True when the bundle exists and its stamp matches the sources it was built from."""
    if not program.executable.is_file() or not program.stamp.is_file():
        return False
    try:
        stamp = json.loads(program.stamp.read_text())
        files = list(stamp["files"])
    except (ValueError, KeyError, TypeError):
        return False
    env = environment if environment is not None else _environment_digest()
    return bool(stamp.get("digest") == _digest(program, files, env))


# -- building ---------------------------------------------------------------------------------


def build_one(program: Program, environment: str) -> float:
    """Run PyInstaller for ``program``; returns the seconds it took."""
    started = time.monotonic()
    program.stamp.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(program.spec),
        "--workpath",
        str(program.work),
        "--distpath",
        str(program.dist),
        "--noconfirm",
        "--log-level",
        "WARN",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(
            f"build: PyInstaller failed for {program.program} (exit {result.returncode})"
        )
    files = frozen_sources(program)
    stamp = {"digest": _digest(program, files, environment), "files": files}
    STAMPS.mkdir(parents=True, exist_ok=True)
    program.stamp.write_text(json.dumps(stamp, indent=1) + "\n")
    return time.monotonic() - started


def build_programs(
    programs: Sequence[Program], *, force: bool = False, jobs: int = 2
) -> list[Program]:
    """Build the stale ones of ``programs`` (all with ``force``), ``jobs`` at a time; returns
    those that were built. The caller holds :func:`exclusive`."""
    if importlib.util.find_spec("PyInstaller") is None:
        raise SystemExit(
            "build: PyInstaller is not installed in this environment:"
            " .venv/bin/pip install -e '.[build]' (scripts/dev-env does it)"
        )
    environment = _environment_digest()
    stale = [p for p in programs if force or not is_current(p, environment)]
    for program in programs:
        if program not in stale:
            log(f"{program.program} is up to date")
    if not stale:
        return stale
    started = time.monotonic()
    for program in stale:
        program.dist.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        seconds = pool.map(lambda p: build_one(p, environment), stale)
        for program, took in zip(stale, seconds, strict=True):
            log(f"{program.program} built in {took:.1f} s")
    log(f"{len(stale)} bundle(s) in {time.monotonic() - started:.1f} s")
    return stale


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_lines(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """``relative path → line`` for each bundle's executable, in sha256sum format."""
    lines = {}
    for name in names:
        exe = executable(name, directory)
        relative = exe.relative_to(directory).as_posix()
        lines[relative] = f"{sha256_file(exe)}  {relative}"
    return lines


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build(names: Sequence[str] = (), *, force: bool = False, jobs: int = 2) -> list[str]:
    """Build the stale providers (every one with ``force``) and rewrite SHA256SUMS; returns the
    names that were rebuilt. The caller holds :func:`exclusive`."""
    known = available()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"build: no buildable provider {unknown}; known: {', '.join(known)}")
    wanted = [provider_program(n) for n in (list(names) or known)]
    stale = build_programs(wanted, force=force, jobs=jobs)
    write_manifest(known)
    return [program.key for program in stale]


def write_manifest(known: Sequence[str]) -> None:
    """``dist/plugins/SHA256SUMS`` over every built provider of ``known``."""
    present = [n for n in known if executable(n).is_file()]
    lines = manifest_lines(DIST, present)
    write_atomically(DIST / MANIFEST, "".join(line + "\n" for _, line in sorted(lines.items())))


# -- installing -------------------------------------------------------------------------------


def default_plugins_dir() -> Path:
    sys.path.insert(0, str(REPO))
    from kernel.paths import local_layout
    from kernel.provider_host.discovery import plugins_dir

    return plugins_dir(local_layout())


def install(plugins: Path, names: Sequence[str] = ()) -> None:
    """Copy the built bundles into ``plugins``, merge SHA256SUMS, and verify each one."""
    sys.path.insert(0, str(REPO))
    from kernel.provider_host.verify import check, read_manifest

    wanted = list(names) or [n for n in available() if executable(n).is_file()]
    if not wanted:
        raise SystemExit("build: nothing to install: run `make build` first")
    plugins.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        source = DIST / f"{PREFIX}{name}"
        target = plugins / source.name
        staging = plugins / f".{source.name}.new-{os.getpid()}"
        retired = plugins / f".{source.name}.old-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging, symlinks=True)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    ours = manifest_lines(plugins, wanted)
    kept = []
    existing = plugins / MANIFEST
    if existing.is_file():
        for line in existing.read_text().splitlines():
            path = line[66:].strip().lstrip("*") if len(line) > 66 else ""
            if path not in ours:
                kept.append(line)
    write_atomically(existing, "".join(f"{line}\n" for line in [*kept, *ours.values()]))
    manifest = read_manifest(plugins)
    for name in wanted:
        exe = executable(name, plugins)
        verdict = check(exe, plugins, manifest)
        if not verdict.ok:
            raise SystemExit(f"build: {exe}: {verdict.reason}")
        described = subprocess.run(
            [str(exe), "--describe"], capture_output=True, text=True, timeout=30, check=False
        )
        if described.returncode != 0 or json.loads(described.stdout).get("name") != name:
            raise SystemExit(f"build: {exe} --describe failed: {described.stderr.strip()}")
        log(f"installed {exe} (sha256 verified, --describe ok)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build stale bundles and write SHA256SUMS")
    build_cmd.add_argument("names", nargs="*")
    build_cmd.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build_cmd.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    sub.add_parser("status", help="exit 0 when every bundle is up to date")
    install_cmd = sub.add_parser("install", help="copy bundles into the plugins directory")
    install_cmd.add_argument("names", nargs="*")
    install_cmd.add_argument("--plugins-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        with exclusive():
            build(args.names, force=args.force, jobs=args.jobs)
    elif args.command == "status":
        stale = [n for n in available() if not is_current(provider_program(n))]
        for name in stale:
            log(f"{PREFIX}{name} needs a build")
        return 1 if stale else 0
    else:
        with exclusive():
            install(args.plugins_dir or default_plugins_dir(), args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
