"""The pure parts of the release builder (build/build_release.py, build/pyinstaller/bundle.py)
and the frozen executable's dispatch between ``dso`` and ``docker-dso``: names, manifests,
the tarball's normalisation, the Debian control texts. Nothing is built or executed here
(tests/e2e/test_release_install.py installs real releases)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from kernel.cli import docker_plugin
from kernel.cli.main import COMMANDS
from kernel.provider_host.verify import parse_manifest

REPO = Path(__file__).resolve().parents[2]


def load(path: Path) -> ModuleType:
    """A script of build/ as a module (build/ is not a package)."""
    name = f"_release_test_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    return load(REPO / "build" / "build_release.py")


def test_a_suffix_names_a_test_build_and_must_be_short(builder: ModuleType) -> None:
    assert builder.release_version("0.1.0") == "0.1.0"
    assert builder.release_version("0.1.0", "r2") == "0.1.0+r2"
    for bad in ("", "R2", "toolong", "a-b", "a+b"):
        with pytest.raises(SystemExit, match="version-suffix"):
            builder.release_version("0.1.0", bad)
    assert builder.tarball_name("0.1.0+r2") == "dso-0.1.0+r2-linux-x86_64.tar.gz"
    assert builder.deb_name("0.1.0") == "dso_0.1.0_amd64.deb"


def test_the_commit_stamp_fits_what_build_info_reads(
    builder: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel import build_info

    commit = "7774a536845644c9ab513933fb7f463798dcc627"
    assert builder.commit_stamp(commit) == "7774a5368456"
    stamp = tmp_path / "_commit.txt"
    monkeypatch.setattr(build_info, "_STAMP", stamp)
    for suffix in ("r2", "abcd"):
        stamp.write_text(builder.commit_stamp(commit, suffix) + "\n")
        assert build_info.commit() == f"7774a53+{suffix}"


def test_the_manifest_lists_every_file_and_link_but_itself(
    builder: ModuleType, tmp_path: Path
) -> None:
    root = tmp_path / "dso-1.0"
    (root / "dso" / "_internal").mkdir(parents=True)
    (root / "dso" / "dso").write_bytes(b"exe")
    (root / "dso" / "_internal" / "lib.so").write_bytes(b"lib")
    (root / "dso" / "docker-dso").symlink_to("dso")
    (root / "VERSION").write_text("1.0\n")
    (root / "SHA256SUMS").write_text("old\n")
    text = builder.manifest_text(root)
    paths = [line.split("  ", 1)[1] for line in text.splitlines()]
    assert paths == ["VERSION", "dso/_internal/lib.so", "dso/docker-dso", "dso/dso"]
    manifest = parse_manifest(text, root / "SHA256SUMS")
    assert not manifest.problems
    exe = hashlib.sha256(b"exe").hexdigest()
    assert manifest.expected("dso/dso") == manifest.expected("dso/docker-dso") == exe


def test_merging_sums_replaces_ours_and_drops_files_that_are_gone(builder: ModuleType) -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    existing = f"{a}  dso-0.9-linux-x86_64.tar.gz\n{a}  dso_1.0_amd64.deb\n{a}  gone.deb\njunk\n"
    merged = builder.merge_sums(
        existing,
        {"dso_1.0_amd64.deb": b, "dso-1.0-linux-x86_64.tar.gz": c},
        ["dso-0.9-linux-x86_64.tar.gz", "dso_1.0_amd64.deb", "dso-1.0-linux-x86_64.tar.gz"],
    )
    assert merged == (
        f"{a}  dso-0.9-linux-x86_64.tar.gz\n{c}  dso-1.0-linux-x86_64.tar.gz\n"
        f"{b}  dso_1.0_amd64.deb\n"
    )


def test_the_tarball_is_sorted_root_owned_dated_and_repeatable(
    builder: ModuleType, tmp_path: Path
) -> None:
    root = tmp_path / "dso-1.0"
    (root / "b").mkdir(parents=True)
    (root / "b" / "z").write_text("z")
    (root / "a").write_text("a")
    (root / "install").write_text("#!/bin/sh\n")
    (root / "install").chmod(0o775)
    (root / "b" / "link").symlink_to("z")
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    builder.write_tarball(root, first, 1_700_000_000)
    (root / "a").touch()  # a newer mtime changes nothing
    builder.write_tarball(root, second, 1_700_000_000)
    assert first.read_bytes() == second.read_bytes()
    with gzip.open(first) as raw:
        raw.read(1)  # the header is read with the first data
        assert raw.mtime == 1_700_000_000  # type: ignore[attr-defined]
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "dso-1.0",
        "dso-1.0/a",
        "dso-1.0/b",
        "dso-1.0/b/link",
        "dso-1.0/b/z",
        "dso-1.0/install",
    ]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {
        (0, 0, "root", "root", 1_700_000_000)
    }
    modes = {m.name.rpartition("/")[2]: m.mode for m in members}
    assert modes == {
        "dso-1.0": 0o755,
        "a": 0o644,
        "b": 0o755,
        "link": 0o777,
        "z": 0o644,
        "install": 0o755,
    }
    assert next(m for m in members if m.name.endswith("link")).linkname == "z"


def test_the_kernel_stamp_changes_with_a_new_module_or_a_hook_not_with_other_files(
    builder: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = builder.providers
    specs = tmp_path / "build" / "pyinstaller"
    (specs / "entries").mkdir(parents=True)
    (specs / "hooks").mkdir()
    for path in ("dso.spec", "bundle.py", "entries/dso_kernel.py", "hooks/rthooks.dat"):
        (specs / path).write_text(path)
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "cli.py").write_text("frozen")
    (tmp_path / "docs.md").write_text("not frozen")
    monkeypatch.setattr(providers, "REPO", tmp_path)
    monkeypatch.setattr(providers, "SPECS", specs)
    program = providers.Program(
        "kernel",
        "dso",
        specs / "dso.spec",
        specs / "entries" / "dso_kernel.py",
        tmp_path / "dist",
        walks=("kernel",),
        hooks=(specs / "hooks",),
    )

    def digest() -> str:
        return str(providers._digest(program, ["kernel/cli.py"], "env"))

    first = digest()
    (tmp_path / "docs.md").write_text("changed")
    assert digest() == first
    (tmp_path / "kernel" / "new.py").write_text("")  # imported by nothing yet: still a change
    second = digest()
    assert second != first
    (tmp_path / "kernel" / "cli.py").write_text("changed")
    third = digest()
    assert third != second
    (specs / "hooks" / "rthooks.dat").write_text("changed")
    assert digest() != third


def test_the_control_file_and_maintainer_scripts_are_complete(builder: ModuleType) -> None:
    control = builder.control_text("0.1.0+r2", 151234, "2.36")
    fields = dict(
        line.split(": ", 1) for line in control.splitlines() if line and not line[0].isspace()
    )
    assert fields["Package"] == "dso" and fields["Version"] == "0.1.0+r2"
    assert fields["Architecture"] == "amd64" and fields["Installed-Size"] == "151234"
    assert fields["Depends"] == "libc6 (>= 2.36)"
    for script in builder.DEB_SCRIPTS:
        text = builder.render((REPO / "packaging" / "deb" / script).read_text(), {"VERSION": "1"})
        assert text.startswith("#!/bin/sh\n") and f"# {script} of dso 1:" in text
    with pytest.raises(SystemExit, match="@VERSION@"):
        builder.render("Version: @VERSION@\n", {})


def test_the_maintainer_scripts_never_touch_the_operators_data() -> None:
    for script in ("postinst", "prerm", "postrm"):
        text = (REPO / "packaging" / "deb" / script).read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for kept in ("/etc/dso", "/var/lib/dso", "/var/log/dso", "/run/dso"):
            assert kept not in code, f"{script} mentions {kept}"
        assert "systemctl enable" not in code and "systemctl start" not in code


def test_every_kernel_module_is_a_hidden_import_of_the_frozen_dso() -> None:
    pytest.importorskip("PyInstaller")
    modules = load(REPO / "build" / "pyinstaller" / "bundle.py").kernel_modules()
    assert modules == sorted(modules) and "kernel" in modules
    for target in COMMANDS.values():
        assert target.partition(":")[0] in modules
    for name in ("kernel.cli.docker_plugin", "kernel.extensions.builtin.audit", "kernel.agent"):
        assert name in modules
    assert not [m for m in modules if "__pycache__" in m or m.endswith("__init__")]


@pytest.mark.parametrize(
    ("argv0", "plugin"),
    [
        ("docker-dso", True),
        ("/usr/local/lib/docker/cli-plugins/docker-dso", True),
        ("/root/.docker/cli-plugins/docker-dso", True),
        ("dso", False),
        ("/usr/local/bin/dso", False),
        ("/opt/dso/releases/0.1.0/dso/dso", False),
        ("docker-dso-old", False),
    ],
)
def test_one_executable_is_dso_or_the_docker_plugin_by_its_name(argv0: str, plugin: bool) -> None:
    assert docker_plugin.is_plugin_program(argv0) is plugin


def test_the_entry_point_runs_the_plugin_as_docker_dso(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["/x/cli-plugins/docker-dso", "docker-cli-plugin-metadata"])
    with pytest.raises(SystemExit) as done:
        docker_plugin.entry()
    assert done.value.code == 0
    assert '"SchemaVersion": "0.1.0"' in capsys.readouterr().out
    ran: list[str] = []
    monkeypatch.setattr("kernel.cli.main.main", lambda: ran.append("dso"))
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/dso", "version"])
    docker_plugin.entry()
    assert ran == ["dso"]


def test_the_install_script_is_posix_sh_with_its_usage() -> None:
    text = (REPO / "packaging" / "install.sh").read_text()
    assert text.startswith("#!/bin/sh\n") and "set -eu" in text
    assert "bash" not in text.splitlines()[0]
    usage = io.StringIO(text).readlines()[1:10]
    assert any("--rollback" in line for line in usage) and any("--from" in line for line in usage)
