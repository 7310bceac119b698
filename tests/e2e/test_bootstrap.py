"""``docker dso bootstrap agent`` on a real systemd host (the source test host): what it creates,
with which owners and modes, that ``config validate`` and ``systemd-analyze verify`` accept it,
that a second run has nothing to do, a dry run changes nothing, a failure midway puts the host
back as it was, and that the agent it sets up starts, answers on its socket (to group ``dso``,
not to others) and passes ``doctor``. Also measures ``systemd-analyze security`` of the unit
with and without its hardening block.

Run with ``-s`` to see the timings and the security scores.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.systemd_host import TestHost, source_test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

UNIT = "/etc/systemd/system/dso-agent.service"
#: Every path a bootstrap creates or adjusts: mode and owner (docs/bootstrap.md).
EXPECTED = {
    "/etc/dso": "750 root:dso",
    "/etc/dso/dso.yaml": "640 root:dso",
    "/etc/dso/vault.key": "600 root:root",
    "/var/lib/dso": "750 root:root",
    "/var/lib/dso/state": "700 root:root",
    "/var/lib/dso/cache": "700 root:root",
    "/var/lib/dso/locks": "700 root:root",
    "/var/lib/dso/plugins": "700 root:root",
    "/var/lib/dso/snapshots": "700 root:root",
    "/var/lib/dso/vault.enc": "600 root:root",
    "/var/log/dso": "750 root:root",
    "/run/dso": "755 root:root",
    UNIT: "644 root:root",
}
CREATED = ("/etc/dso", "/var/lib/dso", "/var/log/dso", "/run/dso", UNIT)


@pytest.fixture(scope="module")
def host(source_test_host: TestHost) -> TestHost:
    # The source host runs dso with PYTHONPATH set by its wrappers; provider programs (started
    # with a filtered environment) need the same packages: put them on python3's path.
    source_test_host.sh(
        "mkdir -p /usr/local/lib/python3.11/dist-packages && printf '%s\\n' /opt/dso-src "
        "/opt/dso-site > /usr/local/lib/python3.11/dist-packages/dso-source.pth"
    )
    return source_test_host


@pytest.fixture
def fresh(host: TestHost) -> Iterator[TestHost]:
    """The host as before any bootstrap, before and after the test."""
    reset(host)
    yield host
    reset(host)


def reset(host: TestHost) -> None:
    host.sh(
        f"""
        systemctl stop dso-agent 2>/dev/null || true
        systemctl reset-failed dso-agent 2>/dev/null || true
        rm -rf {" ".join(CREATED)} /etc/systemd/system/dso-agent.service.d
        systemctl daemon-reload
        if getent group dso >/dev/null; then groupdel dso; fi
        for u in dsoop dsoother; do if id $u >/dev/null 2>&1; then userdel $u; fi; done
        """
    )


def modes(host: TestHost, paths: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = host.exec("stat", "-c", "%n %a %U:%G", *paths).stdout
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()}


def exists(host: TestHost, path: str) -> bool:
    return host.exec("test", "-e", path, check=False).returncode == 0


def has_group(host: TestHost) -> bool:
    return host.exec("getent", "group", "dso", check=False).returncode == 0


def test_bootstrap_agent_sets_up_a_host_whose_agent_starts_and_passes_doctor(
    fresh: TestHost,
) -> None:
    host = fresh
    dry = host.exec("docker", "dso", "bootstrap", "agent", "--dry-run")
    assert "15 steps (dry run: nothing is changed)" in dry.stdout
    assert not any(exists(host, path) for path in CREATED) and not has_group(host)

    began = time.monotonic()
    first = host.exec("docker", "dso", "bootstrap", "agent")
    took = time.monotonic() - began
    print(f"\nbootstrap agent: {took:.2f} s (15 steps, verified)")
    assert "bootstrap agent: 15 changes applied and verified" in first.stdout
    assert first.stdout.rstrip().endswith("next: sudo docker dso system enable")
    assert has_group(host)
    assert modes(host, list(EXPECTED)) == EXPECTED

    validated = host.exec("docker", "dso", "config", "validate", "/etc/dso/dso.yaml")
    assert "/etc/dso/dso.yaml: valid" in validated.stderr
    verify = host.exec("systemd-analyze", "verify", UNIT)
    assert (verify.stdout, verify.stderr) == ("", "")

    second = host.exec("docker", "dso", "bootstrap", "agent")
    assert second.stdout.startswith("bootstrap agent: nothing to do: ")

    host.exec("systemctl", "start", "dso-agent", timeout=150)
    health = json.loads(
        host.exec("curl", "-s", "--unix-socket", "/run/dso/agent.sock", "http://health").stdout
    )
    assert health["live"] is True and health["status"] == "ok"
    # Members of group dso reach the socket; others do not.
    host.sh("useradd -M -G dso dsoop && useradd -M dsoother")
    as_member = host.exec(
        "runuser", "-u", "dsoop", "--",
        "curl", "-s", "--unix-socket", "/run/dso/agent.sock", "http://health",
    )  # fmt: skip
    assert json.loads(as_member.stdout)["live"] is True
    as_other = host.exec(
        "runuser", "-u", "dsoother", "--",
        "curl", "-s", "--unix-socket", "/run/dso/agent.sock", "http://health",
        check=False,
    )  # fmt: skip
    assert as_other.returncode != 0
    assert host.exec("runuser", "-u", "dsoop", "--", "ls", "/var/lib/dso", check=False).returncode

    # The unit's start gave /run/dso, /var/lib/dso and /var/log/dso the owners and modes the
    # bootstrap planned: a bootstrap after the start still has nothing to do.
    assert modes(host, list(EXPECTED)) == EXPECTED
    again = host.exec("docker", "dso", "bootstrap", "agent")
    assert again.stdout.startswith("bootstrap agent: nothing to do: ")

    doctor = host.exec("docker", "dso", "doctor", "--mode", "agent", check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "FAIL" not in doctor.stdout
    assert "dirs.modes" in doctor.stdout


def test_a_failure_midway_puts_the_host_back(fresh: TestHost) -> None:
    host = fresh
    # What was there: a state directory too open, a configuration of one's own.
    host.sh(
        """
        mkdir -p /var/lib/dso /etc/dso && chmod 755 /var/lib/dso /etc/dso
        printf 'version: 1\\n# mine\\n' > /etc/dso/dso.yaml && chmod 644 /etc/dso/dso.yaml
        """
    )
    before = modes(host, ["/var/lib/dso", "/etc/dso", "/etc/dso/dso.yaml"])
    # The unit's directory is read-only: the last file step fails, after the group, the
    # directories, the configuration's mode, the key and the vault.
    host.sh(
        "mount --bind /etc/systemd/system /etc/systemd/system && "
        "mount -o remount,ro,bind /etc/systemd/system"
    )
    try:
        failed = host.exec("docker", "dso", "bootstrap", "agent", check=False)
    finally:
        host.exec("umount", "/etc/systemd/system")
    assert failed.returncode == 8, failed.stdout + failed.stderr
    assert re.search(
        r"bootstrap agent failed: step \d+ of \d+ \(write systemd unit "
        r"/etc/systemd/system/dso-agent.service \(0644 root:root\)\) failed: .*read-only file "
        r"system.*; the changes made before it were undone",
        failed.stderr,
    ), failed.stderr
    assert "undone" in failed.stdout and "FAILED" in failed.stdout
    assert modes(host, ["/var/lib/dso", "/etc/dso", "/etc/dso/dso.yaml"]) == before
    assert host.exec("cat", "/etc/dso/dso.yaml").stdout == "version: 1\n# mine\n"
    assert host.exec("ls", "-A", "/var/lib/dso", "/etc/dso").stdout.split() == [
        "/etc/dso:",
        "dso.yaml",
        "/var/lib/dso:",
    ]
    for path in ("/var/log/dso", "/run/dso", UNIT):
        assert not exists(host, path), path
    assert not has_group(host)

    # Writable again: the same command completes, and keeps the configuration.
    done = host.exec("docker", "dso", "bootstrap", "agent")
    assert "changes applied and verified" in done.stdout
    assert host.exec("cat", "/etc/dso/dso.yaml").stdout == "version: 1\n# mine\n"
    assert modes(host, list(EXPECTED)) == EXPECTED


def test_without_a_terminal_it_takes_the_defaults_and_never_waits(fresh: TestHost) -> None:
    # stdin is a pipe that never ends: reading it would hang until the timeout.
    result = fresh.sh(
        """
        rm -f /tmp/never-ends && mkfifo /tmp/never-ends
        sleep 600 > /tmp/never-ends 2>/dev/null &
        writer=$!
        rc=0; timeout 60 docker dso bootstrap agent --json < /tmp/never-ends || rc=$?
        kill $writer; rm -f /tmp/never-ends; exit $rc
        """,
        timeout=90,
    )
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["changed"] is True
    text = fresh.exec("cat", "/etc/dso/dso.yaml").stdout
    assert "default_provider: local" in text and "type: local" in text


def test_systemd_analyze_security_with_and_without_the_hardening(fresh: TestHost) -> None:
    from kernel.system.unit import render_unit

    host = fresh
    host.exec("docker", "dso", "bootstrap", "agent")
    unit = render_unit()
    bare = unit[: unit.index("# Hardening")] + unit[unit.index("[Install]") :]
    host.exec("tee", "/etc/systemd/system/dso-agent-bare.service", input=bare)
    try:
        host.exec("systemctl", "daemon-reload")
        scores = {}
        for name in ("dso-agent", "dso-agent-bare"):
            out = host.exec("systemd-analyze", "security", name, "--no-pager", check=False).stdout
            found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
            assert found, out
            scores[name] = (float(found.group(1)), found.group(2))
            exposed = [line.split()[1] for line in out.splitlines() if line.startswith("✗")]
            print(f"\n{name}: {found.group(1)} {found.group(2)}; exposed: {' '.join(exposed)}")
    finally:
        host.exec("rm", "-f", "/etc/systemd/system/dso-agent-bare.service")
        host.exec("systemctl", "daemon-reload")
    hardened, _ = scores["dso-agent"]
    bare_score, _ = scores["dso-agent-bare"]
    assert hardened < 4.0 < bare_score
