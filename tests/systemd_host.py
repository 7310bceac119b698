"""A "test host": a container with systemd as PID 1 and its own Docker Engine, for the tests that
need a real systemd (units, journald, restarts, reboots) or an engine of their own (Swarm).

This machine has no systemd as PID 1, and ``--privileged`` is refused here (the VM's capability
bounding set lacks CAP_SYS_RESOURCE), so the container gets the capabilities systemd and dockerd
use, the host's cgroup tree and no seccomp/AppArmor profile (``RUN_FLAGS``). Its ``/run`` is a
tmpfs, so ``reboot()`` (``docker restart``) empties it like a real reboot, while the root
filesystem and the inner engine's data (a named volume on ``/var/lib/docker``) stay. The image is
built by ``scripts/test-host`` (cached; the first build takes about a minute).

Use the ``test_host`` fixture (module scoped: a fresh host per test module, ~2 s to boot) by
importing it into the test module::

    from tests.systemd_host import TestHost, test_host_fixture  # noqa: F401

or ``with TestHost(build_image()) as host:`` for a host of one's own. Everything a host creates
(its container ``dsotesthost-<random>``, labelled ``dso.test=systemd-host``, and its volume) is
removed by ``stop()``; nothing else is touched. Note the kernel's boot id is the machine's, so it
does not change on ``reboot()``: ``journalctl -b`` spans every boot of a test host.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "scripts" / "test-host"
LABEL = "dso.test=systemd-host"
#: A first build here takes ~80 s (debootstrap); a fresh machine also downloads ~120 MB.
BUILD_TIMEOUT = 900.0
#: systemd reaches running in ~1 s and dockerd answers right after; room for a loaded machine.
READY_TIMEOUT = 90.0
#: Seconds a reboot lets systemd stop its units before Docker kills what is left.
REBOOT_GRACE = 60.0

#: Everything `docker run` needs for systemd as PID 1 and a working dockerd inside, without
#: --privileged (refused here).
RUN_FLAGS = (
    "--cgroupns=host",
    *("--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE"),
    *("--cap-add", "DAC_READ_SEARCH", "--cap-add", "IPC_LOCK", "--cap-add", "SYS_NICE"),
    *("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"),
    *("--device-cgroup-rule", "a *:* rwm", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"),
    *("--tmpfs", "/run", "--tmpfs", "/run/lock"),
)


#: Where a ``source`` host sees this checkout and the venv's site-packages (read-only).
SOURCE_DIR = "/opt/dso-src"
SITE_DIR = "/opt/dso-site"


def site_packages() -> str:
    """The site-packages directory of the Python running the tests (the project's venv)."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


class TestHostError(Exception):
    """A test host could not be built, booted or did not do what was asked; the message carries
    the command's output."""

    __test__ = False


def build_image() -> str:
    """The test host image, built by scripts/test-host when missing (serialized by its lock)."""
    try:
        result = subprocess.run(
            [str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired as exc:
        raise TestHostError(f"scripts/test-host took over {BUILD_TIMEOUT:.0f} s") from exc
    lines = result.stdout.split()
    if result.returncode != 0 or not lines:
        raise TestHostError(
            f"scripts/test-host failed (exit {result.returncode}):\n{result.stderr}{result.stdout}"
        )
    return lines[-1]


def docker(
    *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The outer `docker` CLI; a failure raises TestHostError with its output."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise TestHostError(
            f"docker {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stderr}{result.stdout}"
        )
    return result


class TestHost:
    """One test host container: start, run commands in it, reboot it, remove it."""

    __test__ = False

    def __init__(self, image: str, *, source: bool = False) -> None:
        self.image = image
        #: Mount this checkout and the venv's packages read-only (see :meth:`install_source`).
        self.source = source
        self.name = f"dsotesthost-{secrets.token_hex(4)}"
        self.volume = f"{self.name}-docker"
        #: Seconds measured by start() ("start") and the last reboot() ("reboot").
        self.timings: dict[str, float] = {}
        self._created = False

    def __enter__(self) -> TestHost:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> float:
        """Create the volume and the container, boot, and wait until ready; the seconds it took."""
        began = time.monotonic()
        self._created = True
        docker("volume", "create", "--label", LABEL, self.volume)
        mounts: tuple[str, ...] = ()
        if self.source:
            mounts = ("-v", f"{REPO}:{SOURCE_DIR}:ro", "-v", f"{site_packages()}:{SITE_DIR}:ro")
        docker(
            "run", "-d", "--name", self.name, "--hostname", self.name, "--label", LABEL,
            *RUN_FLAGS, *mounts, "-v", f"{self.volume}:/var/lib/docker", self.image,
        )  # fmt: skip
        self.wait_ready()
        if self.source:
            self.install_source()
        self.timings["start"] = time.monotonic() - began
        return self.timings["start"]

    def stop(self) -> None:
        """Remove the container and its volume (idempotent; only what this host created)."""
        if not self._created:
            return
        docker("rm", "-f", "-v", self.name, check=False)
        docker("volume", "rm", "-f", self.volume, check=False)
        self._created = False

    def reboot(self, grace: float = REBOOT_GRACE) -> float:
        """Restart the container (systemd shuts down, /run empties, the volume and root filesystem
        stay) and wait until ready again; the seconds it took. ``grace`` is how long systemd may
        take to stop before the rest is killed (0: a power cut)."""
        began = time.monotonic()
        docker("restart", "-t", str(int(grace)), self.name, timeout=grace + 60)
        self.wait_ready()
        self.timings["reboot"] = time.monotonic() - began
        return self.timings["reboot"]

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until systemd says running or degraded and the inner `docker info` answers."""
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            result = self.exec("systemctl", "is-system-running", check=False, timeout=10)
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                break
            if not self.running():
                raise TestHostError(f"{self.name} stopped while booting:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TestHostError(
                    f"{self.name}: systemd still {state or result.stderr.strip()!r} after "
                    f"{timeout:.0f} s; jobs:\n{self._diagnose()}"
                )
            time.sleep(0.1)
        if state == "degraded":
            failed = ", ".join(self.failed_units())
            print(f"{self.name}: system degraded, failed units: {failed}", file=sys.stderr)
        while True:
            info = self.exec("docker", "info", "--format", "{{.ServerVersion}}", check=False)
            if info.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TestHostError(
                    f"{self.name}: the inner Docker does not answer after {timeout:.0f} s:\n"
                    f"{info.stderr}{self._journal_tail('docker')}"
                )
            time.sleep(0.1)

    def running(self) -> bool:
        result = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def logs(self) -> str:
        result = docker("logs", "--tail", "50", self.name, check=False)
        return result.stdout + result.stderr

    def failed_units(self) -> list[str]:
        result = self.exec("systemctl", "list-units", "--failed", "--plain", "--no-legend")
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    def _journal_tail(self, unit: str) -> str:
        return self.exec("journalctl", "-u", unit, "-n", "30", "--no-pager", check=False).stdout

    def _diagnose(self) -> str:
        jobs = self.exec("systemctl", "list-jobs", "--no-pager", check=False)
        warnings = self.exec(
            "journalctl", "-b", "-p", "warning", "-n", "30", "--no-pager", check=False
        )
        return jobs.stdout + warnings.stdout

    # -- commands ---------------------------------------------------------------------------------

    def exec(
        self,
        *argv: str,
        input: str | None = None,
        check: bool = True,
        user: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in the test host (`docker exec`); ``check`` raises TestHostError with the
        output on a non-zero exit. Secrets go through ``input``, never argv."""
        options = ["-i"] if input is not None else []
        if user is not None:
            options += ["-u", user]
        command = ["docker", "exec", *options, self.name, *argv]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise TestHostError(
                f"{self.name}: {' '.join(argv)} failed (exit {result.returncode}):\n"
                f"{result.stderr}{result.stdout}"
            )
        return result

    def sh(
        self,
        script: str,
        input: str | None = None,
        check: bool = True,
        user: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run a bash script (errexit, nounset, pipefail) in the test host, as exec() runs argv."""
        return self.exec(
            "bash", "-euo", "pipefail", "-c", script,
            input=input, check=check, user=user, timeout=timeout,
        )  # fmt: skip

    def copy_in(self, host_path: str | Path, container_path: str) -> None:
        """Copy a file or directory into the test host (parents created)."""
        parent = container_path.rstrip("/").rpartition("/")[0] or "/"
        self.exec("mkdir", "-p", parent)
        docker("cp", str(host_path), f"{self.name}:{container_path}")

    def load_image(self, name: str) -> None:
        """Copy an image of the outer daemon into the inner one (docker save | docker load)."""
        with (
            tempfile.TemporaryFile() as save_errors,
            subprocess.Popen(
                ["docker", "save", name], stdout=subprocess.PIPE, stderr=save_errors
            ) as save,
            subprocess.Popen(
                ["docker", "exec", "-i", self.name, "docker", "load"],
                stdin=save.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as load,
        ):
            assert save.stdout is not None
            save.stdout.close()  # load holds the pipe now: save gets EPIPE if load dies
            output, _ = load.communicate(timeout=300)
            saved = save.wait(timeout=60)
            save_errors.seek(0)
            errors = save_errors.read().decode(errors="replace")
        if saved != 0 or load.returncode != 0:
            raise TestHostError(f"loading {name} into {self.name} failed:\n{errors}{output}")

    def install_source(self) -> None:
        """``/usr/local/bin/dso`` and the Docker CLI plugin ``docker-dso`` as wrappers that run
        this checkout with the host's python3 (same 3.11 ABI as the venv whose packages are
        mounted): dso from source, for tests that do not need the frozen release."""
        self.sh(
            f"""
            mkdir -p /usr/local/lib/docker/cli-plugins
            # Every python3 of the host sees them (provider programs too: they get no PYTHONPATH).
            printf '%s\n' {SOURCE_DIR} {SITE_DIR} > /usr/lib/python3/dist-packages/dso-source.pth
            cat > /usr/local/bin/dso <<'WRAPPER'
#!/bin/sh
PYTHONPATH={SOURCE_DIR}:{SITE_DIR} exec python3 -c \
    'import sys; sys.argv[0] = "dso"; from kernel.cli.main import main; main()' "$@"
WRAPPER
            cat > /usr/local/lib/docker/cli-plugins/docker-dso <<'WRAPPER'
#!/bin/sh
PYTHONPATH={SOURCE_DIR}:{SITE_DIR} exec python3 -c \
    'import sys; sys.argv[0] = "docker-dso"; from kernel.cli.docker_plugin import main; main()' "$@"
WRAPPER
            chmod 755 /usr/local/bin/dso /usr/local/lib/docker/cli-plugins/docker-dso
            """
        )

    def journal(self, unit: str, *args: str) -> str:
        """`journalctl -u unit` (no pager) with extra arguments; its output."""
        return self.exec("journalctl", "-u", unit, "--no-pager", *args).stdout


@pytest.fixture(scope="module", name="source_test_host")
def source_test_host_fixture() -> Iterator[TestHost]:
    """A booted test host for the module running dso from this checkout (``dso`` and ``docker
    dso`` work; :meth:`TestHost.install_source`)."""
    host = TestHost(build_image(), source=True)
    try:
        host.start()
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module", name="test_host")
def test_host_fixture() -> Iterator[TestHost]:
    """A booted test host for the module; the image is built first when missing (a build failure
    fails the test with the build's output)."""
    began = time.monotonic()
    image = build_image()
    host = TestHost(image)
    host.timings["image"] = time.monotonic() - began
    try:
        host.start()
        yield host
    finally:
        host.stop()
