"""kernel/provider_host/install.py without running anything: ``--describe`` is a stub.

Real programs (a bundle, a tarball, a single file run through the CLI) are in
tests/integration/test_cli_providers_install.py.
"""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ProviderInstallError, ProviderNotFoundError
from kernel.provider_host.install import edit_manifest, install, remove
from kernel.provider_host.process import ProviderCommand
from kernel.provider_host.verify import MANIFEST_NAME, read_manifest, sha256_file

OTHER_LINE = f"{'a' * 64}  dso-provider-other\n"


def describer(name: str = "mine", version: str = "1.0.0", protocols: tuple[int, ...] = (1,)) -> Any:
    seen: list[ProviderCommand] = []

    def describe(command: ProviderCommand) -> Mapping[str, Any]:
        seen.append(command)
        # What is described is the staged copy inside the plugins directory, never the source.
        return {
            "name": name,
            "version": version,
            "protocol_versions": list(protocols),
            "capabilities": ["get", "versions"],
        }

    describe.seen = seen  # type: ignore[attr-defined]
    return describe


def versioned(command: ProviderCommand) -> Mapping[str, Any]:
    """A stub that reads the version from the program's last word (``echo 2.0.0``)."""
    version = Path(command.argv[0]).read_text().split()[-1]
    return {**describer()(command), "version": version}


def program(path: Path, body: bytes = b"#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    path.chmod(0o700)
    return path


def bundle(root: Path, name: str = "mine", *, manifest: bool = True) -> Path:
    """``root/dso-provider-<name>/`` (an executable and a data file) and ``root/SHA256SUMS``."""
    top = root / f"dso-provider-{name}"
    exe = program(top / top.name)
    (top / "_internal").mkdir()
    (top / "_internal" / "data.txt").write_text("data\n")
    if manifest:
        lines = [
            f"{sha256_file(exe)}  {top.name}/{top.name}",
            f"{sha256_file(top / '_internal' / 'data.txt')}  {top.name}/_internal/data.txt",
        ]
        (root / MANIFEST_NAME).write_text("\n".join(lines) + "\n")
    return top


def tarball(path: Path, members: Mapping[str, bytes], executable: str) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name == executable else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def leftovers(plugins: Path) -> list[str]:
    """What the plugins directory holds (no staging directory, no lock file left)."""
    return sorted(p.name for p in plugins.iterdir())


def test_a_bundle_directory_is_verified_and_installed(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src")
    plugins = tmp_path / "plugins"
    describe = describer()
    result = install(top, plugins, describe=describe)
    assert result.name == "mine" and result.version == "1.0.0" and result.protocol == 1
    assert result.checksums == MANIFEST_NAME and result.files == 2 and not result.replaced
    exe = plugins / "dso-provider-mine" / "dso-provider-mine"
    assert (plugins / "dso-provider-mine" / "_internal" / "data.txt").read_text() == "data\n"
    assert stat.S_IMODE(exe.stat().st_mode) == 0o755
    assert stat.S_IMODE((plugins / "dso-provider-mine" / "_internal").stat().st_mode) == 0o755
    data = plugins / "dso-provider-mine" / "_internal" / "data.txt"
    assert stat.S_IMODE(data.stat().st_mode) == 0o644
    manifest = plugins / MANIFEST_NAME
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o644
    parsed = read_manifest(plugins)
    assert parsed is not None
    assert dict(parsed.entries) == {"dso-provider-mine/dso-provider-mine": sha256_file(exe)}
    assert leftovers(plugins) == [MANIFEST_NAME, "dso-provider-mine"]
    staged = Path(describe.seen[0].argv[0])
    assert staged.is_relative_to(plugins) and not staged.exists()


def test_a_manifest_inside_the_bundle_directory_is_used_too(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src", manifest=False)
    (top / MANIFEST_NAME).write_text(f"{'0' * 64}  dso-provider-mine\n")
    with pytest.raises(ProviderInstallError, match="checksum mismatch for dso-provider-mine"):
        install(top, tmp_path / "plugins", describe=describer())


def test_a_tampered_file_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src")
    (top / "_internal" / "data.txt").write_text("tampered\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / MANIFEST_NAME).write_text(OTHER_LINE)
    describe = describer()
    with pytest.raises(ProviderInstallError, match="checksum mismatch for dso-provider-mine/_int"):
        install(top, plugins, describe=describe)
    assert describe.seen == []  # refused before anything ran
    assert leftovers(plugins) == [MANIFEST_NAME]
    assert (plugins / MANIFEST_NAME).read_text() == OTHER_LINE


def test_an_unlisted_executable_is_refused(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src")
    (tmp_path / "src" / MANIFEST_NAME).write_text(f"{'0' * 64}  dso-provider-x/dso-provider-x\n")
    with pytest.raises(ProviderInstallError, match="no line for dso-provider-mine/dso-prov"):
        install(top, tmp_path / "plugins", describe=describer())


def test_a_directory_without_a_manifest_has_its_digest_computed(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src", manifest=False)
    result = install(top, tmp_path / "plugins", describe=describer())
    assert result.checksums == "computed"


def test_an_unsupported_protocol_is_refused_naming_both(tmp_path: Path) -> None:
    exe = program(tmp_path / "src" / "whatever")
    plugins = tmp_path / "plugins"
    with pytest.raises(ProviderInstallError) as caught:
        install(exe, plugins, describe=describer(protocols=(2, 3)))
    assert "speaks protocol 2, 3; this dso speaks 1" in caught.value.message
    assert leftovers(plugins) == []


def test_a_single_file_takes_the_name_it_describes(tmp_path: Path) -> None:
    exe = program(tmp_path / "src" / "my-build-output")
    plugins = tmp_path / "plugins"
    result = install(exe, plugins, describe=describer(name="files"))
    assert result.checksums == "computed" and result.path == plugins / "dso-provider-files"
    assert (plugins / "dso-provider-files").read_bytes() == exe.read_bytes()
    digest = hashlib.sha256(exe.read_bytes()).hexdigest()
    assert (plugins / MANIFEST_NAME).read_text() == f"{digest}  dso-provider-files\n"


def test_a_bundle_named_unlike_its_provider_is_refused(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src")
    with pytest.raises(ProviderInstallError, match="rename it dso-provider-other/"):
        install(top, tmp_path / "plugins", describe=describer(name="other"))


def test_same_name_is_refused_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    first = program(tmp_path / "v1" / "dso-provider-mine", b"#!/bin/sh\necho 1.0.0\n")
    second = program(tmp_path / "v2" / "dso-provider-mine", b"#!/bin/sh\necho 2.0.0\n")
    install(first, plugins, describe=versioned)
    with pytest.raises(ProviderInstallError) as caught:
        install(second, plugins, describe=versioned)
    assert "already installed (version 1.0.0); the source is version 2.0.0" in str(caught.value)
    assert caught.value.hint == "pass --force to replace it"
    assert (plugins / "dso-provider-mine").read_bytes() == first.read_bytes()
    result = install(second, plugins, force=True, describe=versioned)
    assert result.replaced and result.replaced_version == "1.0.0" and result.version == "2.0.0"
    assert (plugins / "dso-provider-mine").read_bytes() == second.read_bytes()
    parsed = read_manifest(plugins)
    assert parsed is not None and len(parsed.entries) == 1
    assert parsed.entries["dso-provider-mine"] == sha256_file(second)
    assert leftovers(plugins) == [MANIFEST_NAME, "dso-provider-mine"]


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    top = bundle(tmp_path / "src")
    plugins = tmp_path / "plugins"
    result = install(top, plugins, dry_run=True, describe=describer())
    assert result.to_json()["action"] == "would-install"
    assert leftovers(plugins) == []


def test_a_tarball_with_its_manifest(tmp_path: Path) -> None:
    exe = b"#!/bin/sh\nexit 0\n"
    digest = hashlib.sha256(exe).hexdigest()
    archive = tarball(
        tmp_path / "mine.tar.gz",
        {
            "mine-1.0/dso-provider-mine/dso-provider-mine": exe,
            "mine-1.0/SHA256SUMS": f"{digest}  dso-provider-mine/dso-provider-mine\n".encode(),
        },
        "mine-1.0/dso-provider-mine/dso-provider-mine",
    )
    plugins = tmp_path / "plugins"
    result = install(archive, plugins, describe=describer())
    assert result.source_kind == "tarball" and result.checksums == MANIFEST_NAME
    assert (plugins / "dso-provider-mine" / "dso-provider-mine").read_bytes() == exe


def test_a_file_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"not gzip")
    with pytest.raises(ProviderInstallError, match="not a readable tar archive"):
        install(bogus, tmp_path / "plugins", describe=describer())


def test_a_tarball_without_a_manifest_is_refused(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "m.tar.gz", {"dso-provider-mine": b"#!/bin/sh\n"}, "x")
    with pytest.raises(ProviderInstallError, match="no SHA256SUMS beside dso-provider-mine"):
        install(archive, tmp_path / "plugins", describe=describer())


def test_a_tarball_escaping_its_directory_is_refused(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "evil.tar.gz", {"../../escaped": b"x"}, "x")
    plugins = tmp_path / "plugins"
    with pytest.raises(ProviderInstallError, match=r"the archive is unsafe to extract: .*outside"):
        install(archive, plugins, describe=describer())
    assert not (tmp_path / "escaped").exists()
    assert leftovers(plugins) == []


def test_edit_manifest_keeps_every_other_line_as_it_was() -> None:
    text = (
        "# a comment\n"
        f"{'b' * 64} *dso-provider-mine/dso-provider-mine\n"
        f"{'c' * 64}  dso-provider-mine-two\n"
        "not a line\n"
        f"{'d' * 64}  ./dso-provider-mine"
    )
    new, dropped = edit_manifest(text, "mine", f"{'e' * 64}  dso-provider-mine")
    assert dropped == 2
    assert new == (
        "# a comment\n"
        f"{'c' * 64}  dso-provider-mine-two\n"
        "not a line\n"
        f"{'e' * 64}  dso-provider-mine\n"
    )


def test_remove_restores_the_manifest_it_found(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / MANIFEST_NAME).write_text(OTHER_LINE)
    program(plugins / "dso-provider-other")
    install(bundle(tmp_path / "src"), plugins, describe=describer())
    result = remove("mine", plugins)
    assert result.manifest_lines == 1 and not result.manifest_removed
    assert (plugins / MANIFEST_NAME).read_text() == OTHER_LINE
    assert leftovers(plugins) == [MANIFEST_NAME, "dso-provider-other"]


def test_remove_of_the_only_provider_removes_a_manifest_install_created(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    install(bundle(tmp_path / "src"), plugins, describe=describer())
    result = remove("mine", plugins)
    assert result.manifest_removed
    assert leftovers(plugins) == []


def test_remove_of_something_not_installed(tmp_path: Path) -> None:
    with pytest.raises(ProviderNotFoundError, match="no dso-provider-mine in"):
        remove("mine", tmp_path)
    with pytest.raises(ProviderInstallError, match="not a provider name"):
        remove("../etc", tmp_path)


def test_a_new_manifest_warns_about_programs_it_now_guards(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    program(plugins / "dso-provider-old")
    result = install(bundle(tmp_path / "src"), plugins, describe=describer())
    assert result.notes and "dso-provider-old will be rejected" in result.notes[0]


def test_an_installed_program_that_fails_its_checksum_is_never_run(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    first = program(tmp_path / "v1" / "dso-provider-mine", b"#!/bin/sh\necho 1.0.0\n")
    install(first, plugins, describe=versioned)
    (plugins / "dso-provider-mine").write_bytes(b"#!/bin/sh\necho tampered 6.6.6\n")
    source = program(tmp_path / "v2" / "dso-provider-mine", b"#!/bin/sh\necho 2.0.0\n")
    ran: list[str] = []

    def describe(command: ProviderCommand) -> Mapping[str, Any]:
        ran.append(command.argv[0])
        return versioned(command)

    with pytest.raises(ProviderInstallError, match=r"already installed \(version unknown\)"):
        install(source, plugins, describe=describe)
    assert all(not path.startswith(str(plugins / "dso-provider-mine")) for path in ran)
    result = install(source, plugins, force=True, describe=describe)
    assert result.replaced and result.replaced_version is None
