"""The test host itself (tests/systemd_host.py): systemd is PID 1 and restarts what it should,
journald records it, the inner Docker Engine runs images loaded from the outer one, and a
reboot empties /run while the engine's containers and the journal survive. The suites of the
systemd agent mode and of Swarm stand on these properties.

Run with ``-s`` to see the timings (image build or cache hit, boot, reboot).
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable

import pytest

from tests.systemd_host import TestHost, test_host_fixture  # noqa: F401

# The first test of a fresh machine builds the image (~80 s here; more with a slow mirror).
# Every step of a test host has its own, shorter timeout, so a hang still fails promptly.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

IMAGE = "dso-test/busybox:1"


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check.__doc__ or check}"
        time.sleep(0.1)


def test_systemd_is_pid_1_and_the_system_is_running(test_host: TestHost) -> None:
    assert test_host.exec("cat", "/proc/1/comm").stdout.strip() == "systemd"
    state = test_host.exec("systemctl", "is-system-running", check=False).stdout.strip()
    assert state == "running", f"failed units: {test_host.failed_units()}"
    for unit in ("docker.service", "containerd.service", "systemd-journald.service"):
        assert test_host.exec("systemctl", "is-active", unit).stdout.strip() == "active"


def test_the_inner_docker_runs_an_image_loaded_from_the_outer_one(test_host: TestHost) -> None:
    test_host.load_image(IMAGE)
    info = test_host.exec("docker", "info", "--format", "{{.Driver}} {{.CgroupDriver}}")
    assert info.stdout.split() == ["overlay2", "systemd"]
    ran = test_host.exec("docker", "run", "--rm", IMAGE, "echo", "hello from the inner docker")
    assert ran.stdout.strip() == "hello from the inner docker"


def test_systemd_restarts_a_killed_service_and_journals_it(test_host: TestHost) -> None:
    unit = f"dsotest-{secrets.token_hex(3)}"
    test_host.exec(
        "systemd-run", f"--unit={unit}", "--property=Restart=on-failure", "sleep", "1000"
    )

    def show(prop: str) -> str:
        return test_host.exec("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    first = show("MainPID")
    assert first != "0"
    test_host.exec("kill", "-9", first)

    def restarted() -> bool:
        """systemd to start the service again"""
        return show("MainPID") not in ("0", first) and show("ActiveState") == "active"

    wait_for(restarted)
    assert show("NRestarts") == "1"
    journal = test_host.journal(unit)
    assert "Main process exited, code=killed, status=9/KILL" in journal
    assert "Scheduled restart job, restart counter is at 1" in journal
    test_host.exec("systemctl", "stop", unit)


def test_a_reboot_empties_run_and_the_inner_docker_comes_back(test_host: TestHost) -> None:
    test_host.load_image(IMAGE)
    kept = f"kept-{secrets.token_hex(3)}"
    # A service that stops on SIGTERM, so the shutdown does not wait for Docker's kill timeout.
    test_host.exec(
        "docker", "run", "-d", "--name", kept, "--restart", "no", IMAGE,
        "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait",
    )  # fmt: skip
    mark = f"before-reboot-{secrets.token_hex(4)}"
    test_host.sh(f"touch /run/{mark}; echo {mark} | systemd-cat -t dsotest")
    machine_id = test_host.exec("cat", "/etc/machine-id").stdout

    seconds = test_host.reboot()

    assert test_host.exec("test", "-e", f"/run/{mark}", check=False).returncode == 1
    assert test_host.exec("systemctl", "is-system-running", check=False).stdout.strip() == "running"
    listed = test_host.exec("docker", "ps", "-a", "--format", "{{.Names}} {{.State}}").stdout
    assert f"{kept} exited" in listed.splitlines()
    assert test_host.exec("cat", "/etc/machine-id").stdout == machine_id
    assert mark in test_host.exec("journalctl", "-t", "dsotest", "--no-pager").stdout
    timings = ", ".join(f"{name} {value:.1f} s" for name, value in test_host.timings.items())
    print(f"test host timings: {timings} (this reboot {seconds:.1f} s)", file=sys.stderr)
