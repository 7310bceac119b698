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
repository the bundle froze (read from PyInstaller's PYZ table of contents after the build).
A bundle whose stamp still matches is not rebuilt, so ``make test`` stays fast.

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


def _digest(name: str, files: Iterable[str], environment: str) -> str:
    digest = hashlib.sha256(environment.encode())
    fixed = [
        SPECS / f"{PREFIX}{name}.spec",
        SPECS / "bundle.py",
        SPECS / "entries" / f"dso_provider_{name}.py",
    ]
    for path in [*fixed, *(REPO / f for f in sorted(set(files)))]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def frozen_sources(name: str) -> list[str]:
    """Files of this repository that PyInstaller put in the bundle's PYZ (repo-relative)."""
    toc_path = WORK / name / f"{PREFIX}{name}" / "PYZ-00.toc"
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, tuple | list):
            if len(node) == 3 and all(isinstance(item, str) for item in node):
                path = Path(node[1]).resolve()
                if path.is_file() and path.is_relative_to(REPO) and not _installed(path):
                    found.add(str(path.relative_to(REPO)))
                return
            for item in node:
                walk(item)

    walk(ast.literal_eval(toc_path.read_text()))
    return sorted(found)


def _installed(path: Path) -> bool:
    """True for files of installed distributions (covered by the versions in the digest)."""
    return any(path.is_relative_to(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix})


def is_current(name: str, environment: str | None = None) -> bool:
    """True when the bundle exists and its stamp matches the sources it was built from."""
    stamp_path = STAMPS / f"{name}.json"
    if not executable(name).is_file() or not stamp_path.is_file():
        return False
    try:
        stamp = json.loads(stamp_path.read_text())
        files = list(stamp["files"])
    except (ValueError, KeyError, TypeError):
        return False
    env = environment if environment is not None else _environment_digest()
    return bool(stamp.get("digest") == _digest(name, files, env))


# -- building ---------------------------------------------------------------------------------


def build_one(name: str, environment: str) -> float:
    """Run PyInstaller for ``name``; returns the seconds it took."""
    started = time.monotonic()
    (STAMPS / f"{name}.json").unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(SPECS / f"{PREFIX}{name}.spec"),
        "--workpath",
        str(WORK / name),
        "--distpath",
        str(DIST),
        "--noconfirm",
        "--log-level",
        "WARN",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"build: PyInstaller failed for {name} (exit {result.returncode})")
    files = frozen_sources(name)
    stamp = {"digest": _digest(name, files, environment), "files": files}
    STAMPS.mkdir(parents=True, exist_ok=True)
    (STAMPS / f"{name}.json").write_text(json.dumps(stamp, indent=1) + "\n")
    return time.monotonic() - started


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
    """Build what is stale (everything with ``force``) and rewrite SHA256SUMS; returns the
    names that were rebuilt."""
    if importlib.util.find_spec("PyInstaller") is None:
        raise SystemExit(
            "build: PyInstaller is not installed in this environment:"
            " .venv/bin/pip install -e '.[build]' (scripts/dev-env does it)"
        )
    known = available()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"build: no buildable provider {unknown}; known: {', '.join(known)}")
    wanted = list(names) or known
    environment = _environment_digest()
    stale = [n for n in wanted if force or not is_current(n, environment)]
    for name in sorted(set(wanted) - set(stale)):
        log(f"{PREFIX}{name} is up to date")
    started = time.monotonic()
    if stale:
        DIST.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for name, seconds in zip(
                stale, pool.map(lambda n: build_one(n, environment), stale), strict=True
            ):
                log(f"{PREFIX}{name} built in {seconds:.1f} s")
    present = [n for n in known if executable(n).is_file()]
    lines = manifest_lines(DIST, present)
    write_atomically(DIST / MANIFEST, "".join(line + "\n" for _, line in sorted(lines.items())))
    if stale:
        log(f"{len(stale)} bundle(s) in {time.monotonic() - started:.1f} s; {DIST / MANIFEST}")
    return stale


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
        stale = [n for n in available() if not is_current(n)]
        for name in stale:
            log(f"{PREFIX}{name} needs a build")
        return 1 if stale else 0
    else:
        with exclusive():
            install(args.plugins_dir or default_plugins_dir(), args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
