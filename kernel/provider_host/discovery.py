"""Finding provider programs: the plugins directory first, then dso's own providers.

- **Plugins directory** (``~/.dso/plugins`` in local mode, ``/var/lib/dso/plugins`` in agent
  mode, or ``$DSO_PLUGINS_DIR``): an executable ``dso-provider-<name>``, or a PyInstaller onedir
  bundle ``dso-provider-<name>/dso-provider-<name>``. ``<name>`` must match
  ``[a-z][a-z0-9_-]{0,62}``. Each must match the directory's ``SHA256SUMS`` (:mod:`.verify`).
- dso's own providers, from wherever this dso runs:

  - **Release** (a frozen dso): the ``plugins/`` directory of the release it belongs to,
    ``<release>/plugins`` beside ``<release>/dso/dso`` (docs/building.md), checked against that
    directory's own ``SHA256SUMS`` exactly like the plugins directory. So switching
    ``/usr/local/bin/dso`` to another release switches its providers with it, and nothing is
    copied into the plugins directory.
  - **Source** (development, tests): ``python -m providers.<name>`` when
    ``providers/<name>/__main__.py`` exists beside the imported ``providers`` package (never in
    a frozen dso).

A plugins-directory program wins over dso's own of the same name, and one rejected there
(checksum mismatch…) is not replaced by dso's own: the operator's choice is never silently
bypassed. Every candidate that cannot be used is kept with the reason (bad name, not executable,
not in SHA256SUMS, checksum mismatch, ``--describe`` failed), so ``docker dso providers list`` can
explain it, as Terraform does for its providers; the origin of each program (``plugins-dir``,
``release``, ``source``) says where it came from.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.errors import ProtocolError, ProviderNotFoundError
from kernel.paths import Layout
from kernel.protocol import (
    BASE_ENV_ALLOWLIST,
    EXECUTABLE_PREFIX,
    SOURCE_MODULE_PREFIX,
    SUPPORTED_PROTOCOLS,
    negotiate,
    parse_describe,
)
from kernel.protocol.handshake import NAME_PATTERN
from kernel.provider_host.process import (
    ORIGIN_PLUGINS_DIR,
    ORIGIN_RELEASE,
    ORIGIN_SOURCE,
    ProviderCommand,
    describe_status,
)
from kernel.provider_host.verify import Manifest, check, read_manifest, unverified_allowed

#: Overrides the plugins directory of the layout.
PLUGINS_DIR_ENV = "DSO_PLUGINS_DIR"
#: Seconds a ``--describe`` run may take.
DESCRIBE_TIMEOUT = 5.0
#: Packages under ``providers/`` that are not providers.
_NOT_PROVIDERS = frozenset({"sdk"})
#: A release's directory of providers, beside its ``dso/`` (the frozen kernel's onedir bundle).
RELEASE_PLUGINS = "plugins"

Describer = Callable[[ProviderCommand], Mapping[str, Any]]


def plugins_dir(layout: Layout, environ: Mapping[str, str] | None = None) -> Path:
    """The plugins directory: ``$DSO_PLUGINS_DIR`` or the layout's."""
    env = os.environ if environ is None else environ
    override = env.get(PLUGINS_DIR_ENV, "").strip()
    return Path(override).expanduser() if override else layout.plugins


def valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Found:
    """A usable provider program."""

    name: str
    command: ProviderCommand
    #: The executable (plugins directory) or the package directory (source).
    path: Path
    #: True: matched SHA256SUMS; False: run unverified (opt-out); None: part of dso (source).
    verified: bool | None
    #: What ``--describe`` printed, when it was asked.
    describe: Mapping[str, Any] | None = None

    @property
    def origin(self) -> str:
        return self.command.origin

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "origin": self.origin,
            "path": str(self.path),
            "command": list(self.command.argv),
            "verified": self.verified,
        }
        if self.describe is not None:
            versions = list(self.describe.get("protocol_versions", []))
            doc.update(
                version=self.describe.get("version"),
                protocol=negotiate(versions),
                protocol_versions=versions,
                capabilities=sorted(self.describe.get("capabilities", [])),
                core_version=self.describe.get("core_version"),
            )
        return doc


@dataclass(frozen=True, slots=True)
class Rejected:
    """A candidate that will not be run, and why."""

    path: Path
    reason: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Discovery:
    """Everything found: usable programs by name, and the rejected candidates."""

    plugins_dir: Path
    manifest: Manifest | None
    unverified: bool
    found: Mapping[str, Found] = field(default_factory=dict)
    rejected: tuple[Rejected, ...] = ()
    #: The release's own providers (a frozen dso), or None.
    release_dir: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "plugins_dir": str(self.plugins_dir),
            "release_plugins_dir": None if self.release_dir is None else str(self.release_dir),
            "manifest": None if self.manifest is None else str(self.manifest.path),
            "manifest_problems": [] if self.manifest is None else list(self.manifest.problems),
            "unverified_allowed": self.unverified,
            "providers": [found.to_json() for found in self.found.values()],
            "rejected": [rejected.to_json() for rejected in self.rejected],
        }


# -- the plugins directory ----------------------------------------------------------------------


def _candidate(entry: Path) -> tuple[str, Path]:
    """The provider name and the executable of a ``dso-provider-*`` directory entry."""
    name = entry.name[len(EXECUTABLE_PREFIX) :]
    if entry.is_dir():
        return name, entry / entry.name
    return name, entry


def _usable(name: str, executable: Path) -> str | None:
    """Why ``executable`` cannot be a provider, or None."""
    if not valid_name(name):
        return f"bad name {name!r}: a provider name matches [a-z][a-z0-9_-]{{0,62}}"
    if not executable.is_file():
        return f"onedir bundle without its executable {executable.name}"
    if not os.access(executable, os.X_OK):
        return "not executable (chmod +x it)"
    return None


def scan_plugins_dir(
    directory: Path,
    *,
    environ: Mapping[str, str] | None = None,
    hash_now: bool = True,
    only: str | None = None,
    origin: str = ORIGIN_PLUGINS_DIR,
) -> tuple[list[Found], list[Rejected], Manifest | None]:
    """The ``dso-provider-*`` programs of ``directory``, checked against its manifest.

    ``only`` limits the scan to one name; ``hash_now=False`` defers hashing to exec time;
    ``origin`` is what the commands found say they came from.
    """
    found: list[Found] = []
    rejected: list[Rejected] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return found, rejected, None
    manifest = read_manifest(directory)
    allow = unverified_allowed(environ)
    for entry in entries:
        if not entry.name.startswith(EXECUTABLE_PREFIX):
            continue
        name, executable = _candidate(entry)
        if only is not None and name != only:
            continue
        reason = _usable(name, executable)
        if reason is None:
            verdict = check(
                executable, directory, manifest, allow_unverified=allow, hash_now=hash_now
            )
            reason = verdict.reason
        if reason is not None:
            rejected.append(Rejected(executable, reason, name if valid_name(name) else None))
            continue
        command = ProviderCommand(name, (str(executable),), origin, sha256=verdict.expected)
        found.append(Found(name, command, executable, verdict.verified))
    return found, rejected, manifest


# -- the release's own providers ----------------------------------------------------------------


def release_plugins_dir() -> Path | None:
    """``<release>/plugins`` of the release this frozen dso belongs to (its executable is
    ``<release>/dso/dso``, reached through ``/usr/local/bin/dso`` or any other link), or None
    from source or when the release has no such directory."""
    if not getattr(sys, "frozen", False):
        return None
    directory = Path(sys.executable).resolve().parent.parent / RELEASE_PLUGINS
    return directory if directory.is_dir() else None


def scan_release(
    *, environ: Mapping[str, str] | None = None, hash_now: bool = True, only: str | None = None
) -> tuple[list[Found], list[Rejected]]:
    """The release's own providers (:func:`release_plugins_dir`), verified against its
    ``SHA256SUMS``; nothing from source."""
    directory = release_plugins_dir()
    if directory is None:
        return [], []
    found, rejected, _ = scan_plugins_dir(
        directory, environ=environ, hash_now=hash_now, only=only, origin=ORIGIN_RELEASE
    )
    return found, rejected


def builtin_names() -> list[str]:
    """dso's own providers here: the release's (frozen) or those with source."""
    directory = release_plugins_dir()
    if directory is None:
        return source_names()
    return sorted(
        entry.name[len(EXECUTABLE_PREFIX) :]
        for entry in directory.iterdir()
        if entry.name.startswith(EXECUTABLE_PREFIX)
    )


# -- source mode --------------------------------------------------------------------------------


def _providers_package() -> Path | None:
    if getattr(sys, "frozen", False):
        return None
    spec = importlib.util.find_spec("providers")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def source_names() -> list[str]:
    """dso's own providers that can run from source (``providers/<name>/__main__.py``)."""
    package = _providers_package()
    if package is None:
        return []
    return sorted(
        entry.name
        for entry in package.iterdir()
        if entry.name not in _NOT_PROVIDERS
        and valid_name(entry.name)
        and (entry / "__main__.py").is_file()
    )


def source_command(program: str, name: str | None = None) -> ProviderCommand | None:
    """``python -m providers.<program>``, or None when that module does not exist here."""
    package = _providers_package()
    if package is None or program not in source_names():
        return None
    return ProviderCommand(
        name or program,
        (sys.executable, "-m", SOURCE_MODULE_PREFIX + program),
        ORIGIN_SOURCE,
        env_set=(("PYTHONPATH", str(package.parent)),),
    )


# -- describe -----------------------------------------------------------------------------------


def run_describe(
    command: ProviderCommand,
    *,
    timeout: float = DESCRIBE_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``<program> --describe`` (no cookie, no handshake) and validate what it prints.

    Raises :class:`ProtocolError` with a reason fit for ``providers list``."""
    parent = os.environ if environ is None else environ
    env = {key: parent[key] for key in BASE_ENV_ALLOWLIST if key in parent}
    env.update(dict(command.env_set))
    try:
        done = subprocess.run(
            [*command.argv, "--describe"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise ProtocolError(f"--describe did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise ProtocolError(f"--describe could not run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = f": {lines[-1][:200]}" if lines else ""
        raise ProtocolError(f"--describe {describe_status(done.returncode)}{last}")
    return parse_describe(done.stdout)


def _described(found: Found, describe: Describer) -> Found | Rejected:
    try:
        doc = dict(describe(found.command))
    except ProtocolError as exc:
        return Rejected(found.path, exc.message, found.name)
    if doc.get("name") != found.name:
        reason = f"--describe names it {doc.get('name')!r}, not {found.name!r}"
        return Rejected(found.path, reason, found.name)
    versions = doc.get("protocol_versions", [])
    if negotiate(versions) is None:
        reason = (
            f"speaks protocol {', '.join(map(str, versions))}; this dso speaks"
            f" {', '.join(map(str, SUPPORTED_PROTOCOLS))}"
        )
        return Rejected(found.path, reason, found.name)
    return Found(found.name, found.command, found.path, found.verified, doc)


def discover(
    directory: Path,
    *,
    environ: Mapping[str, str] | None = None,
    describe: Describer | None = None,
    include_source: bool = True,
) -> Discovery:
    """Every provider program: the plugins directory (verified), then dso's own: the
    release's (a frozen dso, verified) or from source.

    ``describe`` (e.g. :func:`run_describe`) is called for each usable program; a failure
    rejects it. Without it nothing is executed (unit tests, quick lookups).
    ``include_source=False`` leaves dso's own providers out.
    """
    found_list, rejected, manifest = scan_plugins_dir(directory, environ=environ)
    found = {item.name: item for item in found_list}
    shadowed = {r.name for r in rejected if r.name is not None}
    release = release_plugins_dir() if include_source else None
    if release is not None:
        release_found, release_rejected = scan_release(environ=environ)
        for item in release_found:
            if item.name not in found and item.name not in shadowed:
                found[item.name] = item
        rejected += [r for r in release_rejected if r.name not in found and r.name not in shadowed]
    elif include_source:
        for program in source_names():
            if program in found or program in shadowed:
                continue
            command = source_command(program)
            if command is not None:
                path = Path(command.env_set[0][1]) / "providers" / program
                found[program] = Found(program, command, path, None)
    if describe is not None:
        kept: dict[str, Found] = {}
        for name, item in found.items():
            outcome = _described(item, describe)
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            else:
                kept[name] = outcome
        found = kept
    return Discovery(
        directory,
        manifest,
        unverified_allowed(environ),
        dict(sorted(found.items())),
        tuple(rejected),
        release,
    )


def find_command(
    program: str,
    directory: Path,
    *,
    name: str | None = None,
    env_allow: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> ProviderCommand:
    """How to launch ``program`` as the provider ``name``: from the plugins directory (its
    digest is checked again at exec time), else dso's own: the release's (a frozen dso; its
    digest checked likewise) or from source. Raises :class:`ProviderNotFoundError` with the
    reason a candidate was rejected."""
    found, rejected, _ = scan_plugins_dir(directory, environ=environ, hash_now=False, only=program)
    release = release_plugins_dir()
    if not found and not rejected and release is not None:
        found, rejected = scan_release(environ=environ, hash_now=False, only=program)
    if found:
        command = found[0].command
    elif rejected:
        raise ProviderNotFoundError(
            f"{rejected[0].path} cannot be used: {rejected[0].reason}",
            provider=name or program,
            hint="`docker dso providers list` shows every candidate and why it was rejected",
        )
    else:
        source = source_command(program)
        if source is None:
            hint = f"install {EXECUTABLE_PREFIX}{program} there and add it to SHA256SUMS"
            guess = difflib.get_close_matches(program, builtin_names(), n=1, cutoff=0.7)
            if guess:
                hint = f"did you mean type: {guess[0]}? Otherwise {hint}"
            where = str(directory) if release is None else f"{directory} nor in {release}"
            raise ProviderNotFoundError(
                f"no provider program {EXECUTABLE_PREFIX}{program} in {where}",
                provider=name or program,
                hint=hint,
            )
        command = source
    return ProviderCommand(
        name or program,
        command.argv,
        command.origin,
        env_allow=env_allow,
        env_set=command.env_set,
        sha256=command.sha256,
    )
