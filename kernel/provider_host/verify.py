"""SHA256SUMS verification of provider executables, before anything is executed.

The plugins directory holds a manifest named ``SHA256SUMS`` in ``sha256sum`` format, one
``<64 hex digits>  <path relative to the plugins directory>`` line per executable (``sha256sum
-c`` can check it; a ``*`` before the path, binary mode, is accepted too). The build writes it
next to the binaries in ``dist/``; an operator who adds a provider adds its line.

A provider executable runs only if its SHA-256 matches its manifest line. Without a manifest
every plugins-directory provider is rejected, unless ``DSO_PLUGINS_UNVERIFIED=1`` is set: an
explicit opt-out for development, reported as ``verified: false`` by ``providers list``.
Providers run from source (``python -m providers.<name>``) are part of dso itself and are not
checked here.

For a onedir bundle (``dso-provider-vault/dso-provider-vault`` plus its ``_internal/``
libraries and modules) only the executable named in the manifest is hashed: hashing every file
at each start would cost seconds, and the bundle directory is protected by the same permissions
as the manifest. The check and the exec are two steps; the plugins directory must therefore not be
writable by anyone the kernel does not trust (as for any directory of executables).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kernel.errors import ProviderStartError

#: The manifest's file name in the plugins directory.
MANIFEST_NAME = "SHA256SUMS"
#: Set to ``1`` to run plugins-directory providers when there is no manifest (not recommended).
UNVERIFIED_ENV = "DSO_PLUGINS_UNVERIFIED"
#: A manifest larger than this is not a manifest.
MAX_MANIFEST_BYTES = 1024 * 1024

_LINE = re.compile(r"(?P<digest>[0-9a-fA-F]{64}) [ *](?P<path>.+)")
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed ``SHA256SUMS``: normalised relative path → lowercase hex digest."""

    path: Path
    entries: Mapping[str, str]
    #: ``line N: why`` for every line that was skipped.
    problems: tuple[str, ...] = field(default=())

    def expected(self, relative: str) -> str | None:
        """The digest listed for ``relative`` (a path inside the plugins directory), if any."""
        return self.entries.get(normalise(relative))


def normalise(relative: str) -> str:
    """``./dso-provider-x`` and ``dso-provider-x`` name the same entry."""
    return str(PurePosixPath(relative.strip()))


def parse_manifest(text: str, path: Path) -> Manifest:
    """Parse manifest text; malformed, absolute or ``..`` lines are skipped and reported."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            problems.append(f"line {number}: not '<sha256>  <path>'")
            continue
        relative = normalise(match["path"])
        if relative.startswith("/") or ".." in PurePosixPath(relative).parts:
            problems.append(f"line {number}: the path must be relative to the plugins directory")
            continue
        if relative in entries:
            problems.append(f"line {number}: {relative} is listed twice (the first line wins)")
            continue
        entries[relative] = match["digest"].lower()
    return Manifest(path, entries, tuple(problems))


def read_manifest(plugins_dir: Path) -> Manifest | None:
    """The manifest of ``plugins_dir``, or None when there is none (or it cannot be read)."""
    path = plugins_dir / MANIFEST_NAME
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_MANIFEST_BYTES:
        return Manifest(path, {}, (f"larger than {MAX_MANIFEST_BYTES} bytes: ignored",))
    return parse_manifest(data.decode("utf-8", errors="replace"), path)


def unverified_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """True when the operator opted out of verification with ``DSO_PLUGINS_UNVERIFIED=1``."""
    env = os.environ if environ is None else environ
    return env.get(UNVERIFIED_ENV, "").strip().lower() in ("1", "true", "yes")


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one executable: ``expected`` is the digest to check again at exec time
    (None when running unverified); ``reason`` is set when it must not run."""

    verified: bool
    expected: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def check(
    executable: Path,
    plugins_dir: Path,
    manifest: Manifest | None,
    *,
    allow_unverified: bool = False,
    hash_now: bool = True,
) -> Verdict:
    """Decide whether ``executable`` (inside ``plugins_dir``) may run.

    ``hash_now=False`` only looks the digest up (the exec-time check hashes it anyway).
    """
    relative = executable.relative_to(plugins_dir).as_posix()
    if manifest is None:
        if allow_unverified:
            return Verdict(False, None)
        return Verdict(
            False,
            None,
            f"no {MANIFEST_NAME} manifest in {plugins_dir}; add one (sha256sum format) or set "
            f"{UNVERIFIED_ENV}=1 to run unverified providers",
        )
    expected = manifest.expected(relative)
    if expected is None:
        return Verdict(False, None, f"not listed in {manifest.path}")
    if hash_now:
        try:
            actual = sha256_file(executable)
        except OSError as exc:
            return Verdict(False, expected, f"cannot be read: {exc.strerror or exc}")
        if actual != expected:
            return Verdict(False, expected, _mismatch(relative, expected, actual))
    return Verdict(True, expected)


def _mismatch(relative: str, expected: str, actual: str) -> str:
    return (
        f"checksum mismatch: {MANIFEST_NAME} lists {expected[:16]}… for {relative}, "
        f"the file has {actual[:16]}…"
    )


def ensure_digest(executable: Path, expected: str, provider: str) -> None:
    """The exec-time check: raise :class:`ProviderStartError` unless the file still matches."""
    try:
        actual = sha256_file(executable)
    except OSError as exc:
        raise ProviderStartError(
            f"cannot read {executable} to verify it: {exc.strerror or exc}", provider=provider
        ) from None
    if actual != expected:
        raise ProviderStartError(
            _mismatch(executable.name, expected, actual) + "; refusing to run it",
            provider=provider,
            hint="reinstall the provider, or update SHA256SUMS if the change is intended",
        )
