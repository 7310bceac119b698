"""`docker dso system enable|disable|restart|status|logs` on a real systemd (a source test host):
the unit started and verified through the agent's health, its state, the journal filtered as
journalctl filters it, a restart with a new main pid, a refused configuration reported with the
journal's lines, and a disable that leaves running containers their secret files.

Each test brings the unit to the state it needs, so the tests may run in any order and on any
worker (each worker boots its own host). Run with ``-s`` to see the time from `system enable` to
healthy.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.systemd_host import TestHost, source_test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BIN = Path(sys.executable).parent
UNIT = "dso-agent.service"
IMAGE = "dso-test/busybox:1"
USER = "alice"
CONFIG_PATH = "/etc/dso/dso.yaml"
#: Seconds `system enable` took to healthy, over the module (printed at the end).
TIMES: list[float] = []


@pytest.fixture(scope="module")
def host(source_test_host: TestHost) -> Iterator[TestHost]:
    """The source test host, bootstrapped (`docker dso bootstrap agent`: group dso,
    directories, configuration with the local provider, the unit), with a member of group
    dso."""
    h = source_test_host
    h.exec("docker", "dso", "bootstrap", "agent")
    h.sh(f"id {USER} >/dev/null 2>&1 || useradd --create-home --groups dso {USER}")
    h.sh(f"cp -p {CONFIG_PATH} /root/dso.yaml.good")
    yield h
    if TIMES:
        print(
            f"\n`system enable`, systemctl start to healthy: median "
            f"{statistics.median(TIMES):.2f} s over "
            f"{len(TIMES)} ({', '.join(f'{t:.2f}' for t in TIMES)})",
            file=sys.stderr,
        )


def break_config(host: TestHost) -> None:
    """A configuration the agent refuses: an unknown key."""
    host.sh(f"echo 'bogus_key: 1' >> {CONFIG_PATH}")


def restore_config(host: TestHost) -> None:
    host.sh(f"cp -p /root/dso.yaml.good {CONFIG_PATH}")


def dso(host: TestHost, *args: str, user: str | None = None) -> CompletedProcess[str]:
    return host.exec("docker", "dso", *args, check=False, user=user, timeout=180)


def show(host: TestHost, prop: str) -> str:
    return host.exec("systemctl", "show", "-p", prop, "--value", UNIT).stdout.strip()


def health(host: TestHost) -> dict[str, object]:
    line = host.sh("""echo '{"action":"health"}' | nc -U -q1 /run/dso/agent.sock""").stdout
    answer = json.loads(line)
    assert answer["ok"], answer
    result: dict[str, object] = answer["result"]
    return result


def enable(host: TestHost) -> float:
    """`system enable`, asserted healthy; the seconds it says it took."""
    done = dso(host, "system", "enable")
    assert done.returncode == 0, done.stderr + done.stdout
    found = re.search(r"running and healthy after ([0-9.]+) s \(pid (\d+)", done.stdout)
    if found is None:
        assert "was already running and is healthy" in done.stdout, done.stdout
        return 0.0
    assert int(found.group(2)) == int(show(host, "MainPID"))
    return float(found.group(1))


def ensure_running(host: TestHost) -> None:
    if show(host, "ActiveState") != "active":
        restore_config(host)
        enable(host)


# -- enable, status -------------------------------------------------------------------------------


def test_enable_starts_the_agent_verifies_its_health_and_status_shows_it(host: TestHost) -> None:
    if show(host, "ActiveState") == "active":
        assert dso(host, "system", "disable").returncode == 0
    done = dso(host, "system", "enable")
    assert done.returncode == 0, done.stderr
    assert f"enabled {UNIT}: it starts at boot" in done.stderr
    assert "starting dso-agent.service (systemctl start)" in done.stderr
    assert re.search(r"is running and healthy after [0-9.]+ s \(pid \d+, version ", done.stdout)
    assert host.exec("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    assert host.exec("systemctl", "is-active", UNIT).stdout.strip() == "active"
    answer = health(host)
    assert answer["live"] is True and answer["pid"] == int(show(host, "MainPID"))

    # Enabling again changes nothing and says so.
    again = dso(host, "system", "enable")
    assert again.returncode == 0, again.stderr
    assert "was already enabled" in again.stderr
    assert "was already running and is healthy" in again.stdout

    status = dso(host, "system", "status")
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert text.startswith(f"{UNIT}: running, enabled\n")
    assert f"main pid {show(host, 'MainPID')}" in text
    assert "enabled: enabled (starts at boot)" in text
    assert "agent: live, version " in text
    assert "last activity:" in text and "rotation: none since the agent started" in text
    assert re.search(r"recent logs \(journalctl -u dso-agent.service -n \d+\):", text)
    assert "Listening on /run/dso/agent.sock" in text

    doc = json.loads(dso(host, "system", "status", "--json").stdout)
    assert (doc["installed"], doc["running"], doc["enabled"]) == (True, True, True)
    assert doc["systemd"]["main_pid"] == int(show(host, "MainPID"))
    assert doc["systemd"]["invocation_id"] == show(host, "InvocationID")
    assert doc["agent"]["answers"] and doc["agent"]["live"] and doc["agent"]["version"]
    assert doc["agent"]["uptime_seconds"] >= 0 and "poll" in doc["agent"]["last_event"]
    assert doc["logs"]["readable"] and 0 < len(doc["logs"]["lines"]) <= 10


def test_status_for_a_member_of_group_dso_says_the_journal_is_not_readable(
    host: TestHost,
) -> None:
    ensure_running(host)
    done = dso(host, "system", "status", user=USER)
    assert done.returncode == 0, done.stderr
    assert f"{UNIT}: running, enabled" in done.stdout
    assert "agent: live, version " in done.stdout  # the socket is root:dso 0660
    assert "recent logs: not readable (journalctl: " in done.stdout
    assert "systemd-journal" in done.stdout
    doc = json.loads(dso(host, "system", "status", "--json", user=USER).stdout)
    assert doc["logs"]["readable"] is False and doc["agent"]["live"] is True
    refused = dso(host, "system", "restart", user=USER)
    assert refused.returncode == 10
    assert "it needs root" in refused.stderr and "sudo docker dso system restart" in refused.stderr


def test_time_from_enable_to_healthy(host: TestHost) -> None:
    ensure_running(host)
    walls = []
    for _ in range(5):
        assert dso(host, "system", "disable").returncode == 0
        began = time.monotonic()
        seconds = enable(host)
        walls.append(time.monotonic() - began)
        assert 0 < seconds < walls[-1]
        TIMES.append(seconds)
    print(
        f"\n`docker dso system enable` as a whole (docker exec, the CLI's start, systemctl "
        f"enable): median {statistics.median(walls):.2f} s",
        file=sys.stderr,
    )


# -- logs -----------------------------------------------------------------------------------------


def test_logs_lines_priority_since_and_json(host: TestHost) -> None:
    ensure_running(host)
    # An error in the agent's journal: a SIGHUP with a configuration it refuses (kept running).
    break_config(host)
    host.exec("systemctl", "reload", UNIT)
    deadline = time.monotonic() + 30
    while "configuration not reloaded" not in host.journal(UNIT, "-p", "err"):
        assert time.monotonic() < deadline, host.journal(UNIT, "-n", "20")
        time.sleep(0.2)
    restore_config(host)

    last = dso(host, "system", "logs", "-n", "5")
    assert last.returncode == 0, last.stderr
    assert 1 <= len(last.stdout.splitlines()) <= 5

    default = dso(host, "system", "logs")
    assert default.returncode == 0 and len(default.stdout.splitlines()) == 20

    errors = dso(host, "system", "logs", "-p", "err", "-n", "100")
    assert errors.returncode == 0, errors.stderr
    assert "configuration not reloaded, the running one is kept" in errors.stdout
    assert "Listening on" not in errors.stdout and "[INFO]" not in errors.stdout
    assert dso(host, "system", "logs", "-p", "error").stdout == errors.stdout

    recent = dso(host, "system", "logs", "--since", "1h", "-n", "1000")
    assert recent.returncode == 0 and "Listening on /run/dso/agent.sock" in recent.stdout
    future = dso(host, "system", "logs", "--until", "1h")
    assert future.returncode == 0 and "Listening on" not in future.stdout

    as_json = dso(host, "system", "logs", "-o", "json", "-p", "err", "-n", "3")
    docs = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert docs and all(int(d["PRIORITY"]) <= 3 for d in docs)

    unknown = dso(host, "system", "logs", "--trace", "0" * 32)
    assert unknown.returncode == 0 and "Listening on" not in unknown.stdout

    bad = dso(host, "system", "logs", "-p", "loud")
    assert bad.returncode == 2 and "unknown log priority 'loud'" in bad.stderr


def test_logs_follow_prints_new_lines_until_ctrl_c(host: TestHost) -> None:
    ensure_running(host)
    # As a terminal does on Ctrl-C: SIGINT to the whole foreground group (docker, the plugin,
    # journalctl); the command ends with 0 and leaves no journalctl behind.
    script = """
import os, signal, subprocess, sys, time
p = subprocess.Popen(["docker", "dso", "system", "logs", "-f", "-n", "0"],
                     stdout=subprocess.PIPE, text=True, start_new_session=True)
time.sleep(2)
subprocess.run(["systemctl", "reload", "dso-agent"], check=True)
deadline = time.monotonic() + 30
seen = []
while time.monotonic() < deadline:
    line = p.stdout.readline()
    seen.append(line)
    if "Configuration reloaded" in line:
        break
os.killpg(p.pid, signal.SIGINT)
print(p.wait(timeout=15))
print("".join(seen))
"""
    done = host.exec("python3", "-c", script, timeout=60)
    code, _, followed = done.stdout.partition("\n")
    assert code == "0", done.stdout + done.stderr
    assert "Configuration reloaded" in followed
    left = host.exec("pgrep", "-x", "journalctl", check=False)
    assert left.returncode == 1, left.stdout

    # dso killed outright: its journalctl follows it (parent-death signal), not left running.
    script = """
import os, signal, subprocess, time
def found(*args):
    return subprocess.run(["pgrep", *args], stdout=subprocess.DEVNULL).returncode == 0
p = subprocess.Popen(["dso", "system", "logs", "-f"], stdout=subprocess.DEVNULL)
deadline = time.monotonic() + 30
while not found("-P", str(p.pid), "journalctl"):
    assert time.monotonic() < deadline, "journalctl did not start"
    time.sleep(0.1)
os.kill(p.pid, signal.SIGKILL)
p.wait()
deadline = time.monotonic() + 10
while found("-x", "journalctl"):
    assert time.monotonic() < deadline, "journalctl outlived dso"
    time.sleep(0.1)
"""
    host.exec("python3", "-c", script, timeout=60)


def main_pid(host: TestHost) -> int:
    shown = host.exec("systemctl", "show", "-p", "MainPID", "--value", "dso-agent")
    return int(shown.stdout.strip() or 0)


# -- restart --------------------------------------------------------------------------------------


def test_restart_starts_a_new_agent_and_verifies_it(host: TestHost) -> None:
    ensure_running(host)
    before = show(host, "MainPID")
    done = dso(host, "system", "restart")
    assert done.returncode == 0, done.stderr
    assert "restarting dso-agent.service (systemctl restart)" in done.stderr
    after = show(host, "MainPID")
    assert after not in ("0", before)
    assert "is running and healthy after " in done.stdout and f"(pid {after}," in done.stdout
    assert health(host)["pid"] == int(after)


def test_restart_with_a_refused_configuration_fails_with_the_journals_lines(
    host: TestHost,
) -> None:
    ensure_running(host)
    pid = main_pid(host)
    break_config(host)
    try:
        # Without --force: refused before anything is stopped; the running agent is kept.
        refused = dso(host, "system", "restart")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "bogus_key" in refused.stderr and "the running agent is left as it is" in (
            refused.stderr
        )
        assert main_pid(host) == pid and health(host)["live"] is True
        began = time.monotonic()
        done = dso(host, "system", "restart", "--force")
        took = time.monotonic() - began
        assert done.returncode == 10, done.stdout + done.stderr
        assert took < 10, "failed as soon as the agent exited, not after RestartSec or --timeout"
        assert "the journal of this start (journalctl -u dso-agent _SYSTEMD_INVOCATION_ID=" in (
            done.stderr
        )
        assert "bogus_key: unknown key 'bogus_key'" in done.stderr
        assert (
            "error: dso-agent.service did not start: the agent exited before it was healthy: "
            "exit status 3" in done.stderr
        )
        assert "docker dso config validate" in done.stderr
        status = dso(host, "system", "status")
        assert status.returncode == 10 and "agent: does not answer" in status.stdout
    finally:
        restore_config(host)
    # Fixed: a restart works at once (the failed state is reset, no "start request repeated
    # too quickly").
    fixed = dso(host, "system", "restart")
    assert fixed.returncode == 0, fixed.stderr
    assert health(host)["live"] is True


# -- disable --------------------------------------------------------------------------------------


def test_disable_stops_the_agent_and_containers_keep_their_secret_files(
    host: TestHost, canary: str
) -> None:
    ensure_running(host)
    host.load_image(IMAGE)
    compose = f"""\
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
    environment:
      TOKEN_FILE: dsofile://app/token
"""
    host.sh("mkdir -p /srv/app && cat > /srv/app/compose.yaml", input=compose)
    # On a bootstrapped host, root's commands work on the host agent's installation: the value
    # goes to its vault, the file to /run/dso/secrets, the container is the agent's to manage.
    host.exec("docker", "dso", "secret", "set", "app/token", input=canary)
    up = host.sh("cd /srv/app && docker dso up -d")
    files = host.exec("find", "/run/dso/secrets", "-name", "TOKEN_FILE").stdout
    assert "/run/dso/secrets/app/web/" in files
    read = "cat $TOKEN_FILE"
    assert host.exec("docker", "exec", "app-web-1", "sh", "-c", read).stdout == canary
    pid = show(host, "MainPID")

    done = dso(host, "system", "disable")
    assert done.returncode == 0, done.stderr
    assert f"{UNIT}: stopped and disabled" in done.stdout
    assert f"stopping {UNIT} (pid {pid})" in done.stderr
    assert "Containers keep running with their secret files" in done.stderr
    assert host.exec("systemctl", "is-enabled", UNIT, check=False).stdout.strip() == "disabled"
    assert host.exec("systemctl", "is-active", UNIT, check=False).stdout.strip() == "inactive"
    assert host.exec("test", "-S", "/run/dso/agent.sock", check=False).returncode != 0

    # RuntimeDirectoryPreserve=yes: /run/dso stays, and so do the files under it.
    state = host.exec("docker", "inspect", "-f", "{{.State.Status}}", "app-web-1").stdout
    assert state.strip() == "running"
    assert host.exec("docker", "exec", "app-web-1", "sh", "-c", read).stdout == canary

    status = dso(host, "system", "status")
    assert status.returncode == 10
    assert status.stdout.startswith(f"{UNIT}: STOPPED, disabled\n")
    assert "agent: does not answer" in status.stdout
    for output in (up, done, status):
        assert canary not in output.stdout + output.stderr
    assert canary not in host.journal(UNIT)
    host.sh("cd /srv/app && docker dso down")


# -- without the unit -----------------------------------------------------------------------------


def test_a_missing_unit_is_an_error_that_says_to_bootstrap(host: TestHost) -> None:
    unit_file = f"/etc/systemd/system/{UNIT}"
    if show(host, "ActiveState") == "active":
        assert dso(host, "system", "disable").returncode == 0
    host.sh(f"mv {unit_file} /root/{UNIT} && systemctl daemon-reload")
    try:
        for command in ("enable", "restart", "disable"):
            done = dso(host, "system", command)
            assert done.returncode == 10, done.stdout + done.stderr
            assert f"{UNIT} is not installed (LoadState=not-found)" in done.stderr
            assert "sudo docker dso bootstrap agent" in done.stderr
        status = dso(host, "system", "status")
        assert status.returncode == 10
        assert status.stdout.startswith(f"{UNIT}: NOT INSTALLED")
    finally:
        host.sh(f"mv /root/{UNIT} {unit_file} && systemctl daemon-reload")


# -- without systemd (this machine) ---------------------------------------------------------------


def test_without_systemd_logs_shows_the_local_agents_log_file(tmp_path: Path) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here")
    home = tmp_path / "dso-home"
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "dso.log").write_text("".join(f"line {i}\n" for i in range(30)))
    env = {**os.environ, "DSO_HOME": str(home)}
    done = subprocess.run(
        [BIN / "dso", "system", "logs", "-n", "3"], env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "line 27\nline 28\nline 29\n"
    log = home / "logs" / "dso.log"
    assert f"no systemd on this host: the local agent's log, {log}" in done.stderr
    default = subprocess.run(
        [BIN / "dso", "system", "logs"], env=env, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert default.stdout.splitlines() == [f"line {i}" for i in range(10, 30)]
