"""The release an operator installs (``make dist``), installed as the operator would, on a
systemd test host (tests/systemd_host.py): the tarball's ``install`` script, an upgrade to a
second build and the rollback, every refusal of a damaged or altered release (nothing changed
afterwards), and the Debian package installed, upgraded and removed on a fresh host.

The module first brings both releases up to date through build/build_release.py (a no-op in
about a second when nothing changed; the first build of everything takes about a minute here):
``dist/dso-<version>-linux-x86_64.tar.gz`` with its .deb, and the same frozen tree named
``<version>+r2`` in ``.build/e2e-release/`` (``--version-suffix``: its ``dso version`` reports
the commit as ``<commit>+r2``, which tells the two builds apart).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.systemd_host import TestHost, build_image, test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "build" / "build_release.py"
SECOND_OUT = REPO / ".build" / "e2e-release"
SUFFIX = "r2"
#: A first build of the kernel, the four providers and both releases takes ~2 minutes here.
BUILD_TIMEOUT = 900
RELEASES = "/opt/dso/releases"
BIN = "/usr/local/bin/dso"
PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-dso"
CURRENT = "/opt/dso/current"


@dataclass(frozen=True)
class Release:
    version: str
    commit: str
    tarball: Path
    deb: Path
    sums: Path

    @property
    def target(self) -> str:
        return f"{RELEASES}/{self.version}/dso/dso"


def build(*args: str) -> Release:
    done = subprocess.run(
        [sys.executable, str(BUILDER), "dist", *args],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, f"build_release.py failed:\n{done.stdout}{done.stderr}"
    tarball = Path(done.stdout.split()[-1])
    tree = tarball.parent / tarball.name.removesuffix("-linux-x86_64.tar.gz")
    version = (tree / "VERSION").read_text().strip()
    commit = (tree / "dso" / "_internal" / "kernel" / "_commit.txt").read_text().strip()
    deb = tarball.parent / f"dso_{version}_amd64.deb"
    return Release(version, commit, tarball, deb, tarball.parent / "SHA256SUMS")


@pytest.fixture(scope="module")
def releases() -> tuple[Release, Release]:
    """The release of this checkout and a second build of it, both current."""
    first = build()
    second = build("--version-suffix", SUFFIX, "--out", str(SECOND_OUT))
    assert second.version == f"{first.version}+{SUFFIX}"
    return first, second


def copy_release(host: TestHost, release: Release, directory: str) -> str:
    """The tarball and its SHA256SUMS in ``directory`` of the host; the tarball's path there."""
    host.copy_in(release.tarball, f"{directory}/{release.tarball.name}")
    host.copy_in(release.sums, f"{directory}/SHA256SUMS")
    return f"{directory}/{release.tarball.name}"


def state(host: TestHost) -> str:
    """What an install may change: the links, the releases and the recorded previous one."""
    return host.sh(
        f"readlink {BIN} {PLUGIN} {CURRENT} || true; ls -A {RELEASES} 2>/dev/null || true;"
        " cat /opt/dso/previous 2>/dev/null || true; getent group dso || true"
    ).stdout


def ensure_installed(host: TestHost, release: Release) -> None:
    """``release`` installed and current (installing it is idempotent)."""
    tarball = copy_release(host, release, "/root/r1")
    host.sh(f"sh {RELEASES}/{release.version}/install 2>/dev/null || sh -c 'cd /root/r1 && "
            f"tar -xzf {shlex.quote(tarball)} && ./dso-{release.version}/install'")  # fmt: skip
    assert host.exec("readlink", BIN).stdout.strip() == release.target


def dso_version(host: TestHost, *prefix: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(host.exec(*prefix, "dso", "version", "--json").stdout)
    return doc


# -- the tarball's install script ---------------------------------------------------------------


def test_the_unpacked_release_installs_and_switches_dso_and_docker_dso(
    test_host: TestHost, releases: tuple[Release, Release]
) -> None:
    first, _ = releases
    tarball = copy_release(test_host, first, "/root/r1")
    done = test_host.sh(f"cd /root/r1 && tar -xzf {tarball} && ./dso-{first.version}/install")
    assert f"dso {first.version} is the current release: {BIN} -> {first.target}" in done.stdout
    assert "sudo docker dso bootstrap agent" in done.stdout  # no /etc/dso/dso.yaml yet
    assert test_host.exec("readlink", BIN).stdout.strip() == first.target
    assert test_host.exec("readlink", PLUGIN).stdout.strip() == BIN
    assert test_host.exec("readlink", CURRENT).stdout.strip() == f"{RELEASES}/{first.version}"
    assert test_host.exec("getent", "group", "dso").returncode == 0
    owners = test_host.sh(
        f"find {RELEASES}/{first.version} ! -type l \\( ! -user root -o -perm -o+w \\) | head -3"
    )
    assert owners.stdout == "", f"files not root's, or writable by others:\n{owners.stdout}"

    assert dso_version(test_host)["commit"] == first.commit
    plugin = dso_version(test_host, "docker")  # docker runs the link as docker-dso
    assert plugin["commit"] == first.commit and plugin["version"] == first.version
    metadata = test_host.exec(PLUGIN, "docker-cli-plugin-metadata").stdout
    assert json.loads(metadata)["Vendor"] == "dso project"

    listing = json.loads(test_host.exec("dso", "providers", "list", "--json").stdout)
    assert listing["release_plugins_dir"] == f"{RELEASES}/{first.version}/plugins"
    found = {p["name"]: p for p in listing["providers"]}
    assert sorted(found) == ["aws", "azure", "local", "vault"], listing["rejected"]
    for name, item in found.items():
        assert (item["origin"], item["verified"]) == ("release", True)
        program = f"{RELEASES}/{first.version}/plugins/dso-provider-{name}/dso-provider-{name}"
        assert item["path"] == program
    table = test_host.exec("docker", "dso", "providers", "list").stdout
    assert f"release providers: {RELEASES}/{first.version}/plugins" in table

    again = test_host.sh(f"cd /root/r1 && ./dso-{first.version}/install")
    assert f"release {first.version} is already in {RELEASES}/{first.version}" in again.stdout
    assert test_host.exec("ls", RELEASES).stdout.split() == [first.version]


def test_a_damaged_or_altered_release_is_refused_and_nothing_changes(
    test_host: TestHost, releases: tuple[Release, Release]
) -> None:
    first, second = releases
    ensure_installed(test_host, first)
    tarball = copy_release(test_host, second, "/root/r2")
    before = state(test_host)
    name = f"dso-{second.version}"
    program = f"{name}/plugins/dso-provider-local/dso-provider-local"
    test_host.sh(
        f"rm -rf /root/pristine && mkdir /root/pristine && tar -xzf {tarball} -C /root/pristine"
    )
    unpacked = f"cd /root/bad && cp -a /root/pristine/{name} ."
    attempts = {
        # the tarball itself differs from the SHA256SUMS published beside it
        "tarball": f"cp {tarball} /root/r2/SHA256SUMS /root/bad/"
        f" && printf x >> /root/bad/{second.tarball.name}"
        f" && sh {RELEASES}/{first.version}/install --from /root/bad/{second.tarball.name}",
        # a program of the release was altered after it was unpacked
        "altered": f"{unpacked} && printf x >> {program} && ./{name}/install",
        # a file was added that SHA256SUMS does not list
        "added": f"{unpacked} && echo x > {name}/plugins/extra.so && ./{name}/install",
        # a file the manifest lists is missing
        "removed": f"{unpacked} && rm {name}/VERSION && ./{name}/install",
        # altered, its manifest line updated to match, and re-packed: the published checksum
        # of the tarball catches it
        "repacked": f"{unpacked} && printf x >> {program}"
        f" && (cd {name} && sed -i '/dso-provider-local\\/dso-provider-local$/d' SHA256SUMS"
        f" && sha256sum plugins/dso-provider-local/dso-provider-local >> SHA256SUMS)"
        f" && tar -cf - {name} | gzip -1 > {second.tarball.name} && cp /root/r2/SHA256SUMS ."
        f" && sh {RELEASES}/{first.version}/install --from {second.tarball.name}",
    }
    reasons = {
        "tarball": "checksum mismatch: /root/bad/SHA256SUMS lists",
        "altered": f"{program.removeprefix(name + '/')}: FAILED",
        "added": "files not in its SHA256SUMS: plugins/extra.so",
        "removed": "files of its SHA256SUMS are missing: VERSION",
        "repacked": "checksum mismatch: ./SHA256SUMS lists",
    }
    for what, script in attempts.items():
        done = test_host.sh(f"rm -rf /root/bad && mkdir /root/bad && {script}", check=False)
        assert done.returncode == 1, f"{what}: not refused:\n{done.stdout}{done.stderr}"
        assert reasons[what] in done.stderr, f"{what}:\n{done.stderr}"
        assert "nothing was changed" in done.stderr, f"{what}:\n{done.stderr}"
        assert state(test_host) == before, f"{what}: the installation changed"
        leftovers = test_host.sh(
            f"(ls -A {RELEASES} | grep '^[.]' || true); (ls /tmp | grep '^dso-' || true)"
        ).stdout
        assert leftovers == "", f"{what}: left behind {leftovers}"


def test_an_upgrade_switches_everything_and_a_rollback_switches_it_back(
    test_host: TestHost, releases: tuple[Release, Release]
) -> None:
    first, second = releases
    ensure_installed(test_host, first)
    tarball = copy_release(test_host, second, "/root/r2")
    test_host.sh("mkdir -p /etc/dso && touch /etc/dso/dso.yaml")  # as after bootstrap agent

    done = test_host.exec("sh", f"{RELEASES}/{first.version}/install", "--from", tarball)
    assert f"verified {second.tarball.name} against /root/r2/SHA256SUMS" in done.stdout
    assert f"previous release (sudo {CURRENT}/install --rollback)" in done.stdout
    assert "sudo docker dso system restart" in done.stdout
    assert test_host.exec("readlink", BIN).stdout.strip() == second.target
    assert test_host.exec("cat", "/opt/dso/previous").stdout.strip() == first.target
    assert dso_version(test_host)["commit"] == second.commit == f"{first.commit[:7]}+{SUFFIX}"
    assert dso_version(test_host, "docker")["commit"] == second.commit
    listing = json.loads(test_host.exec("dso", "providers", "list", "--json").stdout)
    assert listing["release_plugins_dir"] == f"{RELEASES}/{second.version}/plugins"

    assert test_host.exec("readlink", CURRENT).stdout.strip() == f"{RELEASES}/{second.version}"
    back = test_host.exec(f"{CURRENT}/install", "--rollback")
    assert f"rolled back: {BIN} -> {first.target}" in back.stdout
    assert "sudo docker dso system restart" in back.stdout
    assert dso_version(test_host, "docker")["commit"] == first.commit
    assert test_host.exec("cat", "/opt/dso/previous").stdout.strip() == second.target
    listed = test_host.exec("sh", f"{RELEASES}/{first.version}/install", "--list").stdout
    assert listed.split("\n")[:2] == [f"{first.version} (current)", f"{second.version} (previous)"]

    assert test_host.exec("readlink", CURRENT).stdout.strip() == f"{RELEASES}/{first.version}"
    forth = test_host.exec(f"{CURRENT}/install", "--rollback")  # undoes it
    assert f"rolled back: {BIN} -> {second.target}" in forth.stdout
    assert dso_version(test_host)["commit"] == second.commit
    test_host.exec(f"{CURRENT}/install", "--rollback")


def test_old_releases_are_pruned_to_the_last_three_but_never_previous_or_running_ones(
    test_host: TestHost, releases: tuple[Release, Release]
) -> None:
    first, _ = releases
    ensure_installed(test_host, first)
    # Five releases installed before this one, oldest first (copies of it, dated 2020-01-0N);
    # the oldest is the recorded previous one and a process runs from the second.
    test_host.sh(
        f"cd {RELEASES} && find . -mindepth 1 -maxdepth 1 ! -name {first.version}"
        f" -exec rm -rf {{}} + && for n in 1 2 3 4 5; do cp -a {first.version} 0.0.$n; done"
        f" && echo {RELEASES}/0.0.1/dso/dso > /opt/dso/previous && cp /bin/sleep 0.0.2/"
        " && for n in 1 2 3 4 5; do touch -d 2020-01-0$n 0.0.$n; done"
        " && (0.0.2/sleep 120 >/dev/null 2>&1 & echo $! > /root/pid)"
    )
    try:
        done = test_host.exec(f"{RELEASES}/{first.version}/install")  # reinstalls the current
    finally:
        test_host.sh("kill $(cat /root/pid) || true")
    assert "(the last 3, the current, the previous, any in use)" in done.stdout, done.stdout
    assert "removed older releases: 0.0.3\n" in done.stdout, done.stdout
    kept = test_host.exec("ls", RELEASES).stdout.split()
    assert sorted(kept) == sorted([first.version, "0.0.5", "0.0.4", "0.0.2", "0.0.1"])
    test_host.sh(f"cd {RELEASES} && rm -rf 0.0.* && rm -f /opt/dso/previous")


# -- the Debian package -------------------------------------------------------------------------


@pytest.fixture
def fresh_host() -> Iterator[TestHost]:
    with TestHost(build_image()) as host:
        yield host


def test_the_deb_installs_upgrades_and_removes_without_touching_the_operators_files(
    fresh_host: TestHost, releases: tuple[Release, Release]
) -> None:
    first, second = releases
    host = fresh_host
    host.copy_in(first.deb, f"/root/{first.deb.name}")
    host.copy_in(second.deb, f"/root/{second.deb.name}")
    host.sh("mkdir -p /etc/dso /var/lib/dso && echo 'version: 1' > /etc/dso/dso.yaml")

    host.exec("dpkg", "-i", f"/root/{first.deb.name}")
    assert host.exec("readlink", BIN).stdout.strip() == first.target
    assert host.exec("readlink", PLUGIN).stdout.strip() == BIN
    assert host.exec("getent", "group", "dso").returncode == 0
    assert dso_version(host, "docker")["commit"] == first.commit
    unit = host.exec("cat", "/lib/systemd/system/dso-agent.service").stdout
    assert f"ExecStart={BIN} " in unit and "Type=notify" in unit
    enabled = host.exec("systemctl", "is-enabled", "dso-agent", check=False).stdout.strip()
    active = host.exec("systemctl", "is-active", "dso-agent", check=False).stdout.strip()
    assert (enabled, active) == ("disabled", "inactive")  # installed, neither enabled nor started
    assert host.exec("dpkg", "--verify", "dso").stdout == ""

    host.exec("dpkg", "-i", f"/root/{second.deb.name}")  # an upgrade
    assert host.exec("readlink", BIN).stdout.strip() == second.target
    assert host.exec("readlink", CURRENT).stdout.strip() == f"{RELEASES}/{second.version}"
    assert dso_version(host)["commit"] == second.commit
    assert host.exec("ls", RELEASES).stdout.split() == [second.version]  # dpkg removed the old
    assert host.exec("test", "-e", "/opt/dso/previous", check=False).returncode == 1

    host.exec("dpkg", "-r", "dso")
    unit = "/lib/systemd/system/dso-agent.service"
    gone = host.sh(f"ls -d {BIN} {PLUGIN} {CURRENT} {RELEASES} {unit} 2>/dev/null || true").stdout
    assert gone == ""
    assert host.exec("cat", "/etc/dso/dso.yaml").stdout == "version: 1\n"
    assert host.exec("test", "-d", "/var/lib/dso").returncode == 0
    assert host.exec("getent", "group", "dso").returncode == 0
