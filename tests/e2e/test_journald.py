"""The agent under a real systemd and journald (the source test host): ``Type=notify`` start that
waits for READY=1, STATUS= in ``systemctl``, priorities ``journalctl -p`` filters on, the
``dso-agent`` identifier and ``DSO_*`` fields in ``-o json``, the watchdog (a stopped agent is
restarted after ``WatchdogSec``), and ``logging.file``.

The agent runs as a transient unit (``systemd-run``) with the properties this needs, on a local
dso home, so the test depends on the agent only (the product unit and the full journey are
tests/e2e's systemd suite). Run with ``-s`` for the timings.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.systemd_host import TestHost, source_test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HOME = "/var/tmp/dso-journald"
CONFIG = """\
version: 1
default_provider: local
providers:
  local:
    type: local
logging:
  file: /var/log/dso-journald/agent.log
  max_size: 8Ki
  backups: 2
"""


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check.__doc__ or check}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def agent(source_test_host: TestHost) -> Iterator[tuple[TestHost, str, float]]:
    """The agent as a transient Type=notify unit with WatchdogSec=2s; the seconds
    ``systemd-run`` took (it returns once the unit is started: after READY=1)."""
    host = source_test_host
    unit = f"dso-agent-{secrets.token_hex(3)}"
    host.sh(f"mkdir -p {HOME} && umask 077 && cat > {HOME}/config.yaml", input=CONFIG)
    began = time.monotonic()
    host.exec(
        "systemd-run",
        f"--unit={unit}",
        "--property=Type=notify",
        "--property=WatchdogSec=2s",
        "--property=Restart=on-failure",
        "--property=RestartSec=1s",
        "--property=SyslogIdentifier=dso-agent",
        f"--setenv=DSO_HOME={HOME}",
        "/usr/local/bin/dso",
        "agent",
    )
    started = time.monotonic() - began
    try:
        yield host, unit, started
    finally:
        host.exec("systemctl", "stop", unit, check=False)
        host.exec("systemctl", "reset-failed", unit, check=False)


def show(host: TestHost, unit: str, prop: str) -> str:
    return host.exec("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()


def entries(host: TestHost, unit: str, *args: str) -> list[dict[str, Any]]:
    out = host.journal(unit, "-o", "json", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_start_waits_for_ready_and_status_says_what_the_agent_does(
    agent: tuple[TestHost, str, float],
) -> None:
    host, unit, started = agent
    print(f"\nsystemd-run → active (READY=1): {started:.2f} s")
    # systemd-run returned after the start job: READY=1 came, so the socket already answers.
    assert show(host, unit, "ActiveState") == "active"
    health = host.exec(
        "curl", "-s", "--unix-socket", f"{HOME}/agent.sock", "http://health", check=False
    )
    assert health.returncode == 0 and '"ok"' in health.stdout.replace(" ", ""), health.stdout
    assert show(host, unit, "StatusText").startswith("serving: 0 managed containers")
    dso = [e for e in entries(host, unit) if e.get("SYSLOG_IDENTIFIER") == "dso-agent"]
    messages = [e["MESSAGE"] for e in dso]
    recovery = next(i for i, m in enumerate(messages) if "recovery: no interrupted rotation" in m)
    listening = next(i for i, m in enumerate(messages) if "Listening on" in m)
    assert recovery < listening


def test_journal_entries_have_priorities_and_dso_fields(
    agent: tuple[TestHost, str, float],
) -> None:
    host, unit, _ = agent
    native = [e for e in entries(host, unit) if "DSO_LOGGER" in e]
    assert native, "no entry came through journald's native protocol"
    assert {e["SYSLOG_IDENTIFIER"] for e in native} == {"dso-agent"}
    started = next(e for e in native if "Agent started, version" in e["MESSAGE"])
    assert started["PRIORITY"] == "6" and started["DSO_MODE"] == "local"
    assert started["_SYSTEMD_UNIT"] == f"{unit}.service"
    assert host.journal(unit, "-p", "err", "-q").strip() == ""

    # A SIGHUP finds a broken configuration: one error, shown by -p err and -p warning.
    host.sh(f"cp {HOME}/config.yaml {HOME}/good.yaml && echo 'nonsense: 1' >> {HOME}/config.yaml")
    host.exec("systemctl", "kill", "-s", "HUP", "--kill-whom=main", unit)
    wait_for(lambda: "configuration not reloaded" in host.journal(unit, "-p", "err"))
    host.sh(f"mv {HOME}/good.yaml {HOME}/config.yaml")
    errors = [line for line in host.journal(unit, "-p", "err", "-q").splitlines() if line]
    assert len(errors) == 1 and "dso-agent[" in errors[0], errors
    warnings = host.journal(unit, "-p", "warning", "-q", "-o", "cat").splitlines()
    assert all("[WARNING]" in w or "[ERROR]" in w for w in warnings), warnings
    refused = [e for e in entries(host, unit, "-p", "err") if "DSO_LOGGER" in e]
    assert refused and refused[0]["PRIORITY"] == "3"
    # After the refused reload, READY=1 again: still active, serving.
    wait_for(lambda: show(host, unit, "StatusText").startswith("serving"))


def test_the_log_file_is_written_with_its_modes(agent: tuple[TestHost, str, float]) -> None:
    host, _, _ = agent
    modes = host.exec(
        "stat", "-c", "%a %n", "/var/log/dso-journald", "/var/log/dso-journald/agent.log"
    ).stdout.split("\n")
    # A local dso home (DSO_HOME): 0700/0600; the host agent's are 0750/0640 (unit-tested).
    assert modes[0].startswith("700 ") and modes[1].startswith("600 ")
    text = host.exec("cat", "/var/log/dso-journald/agent.log").stdout
    assert "[INFO] dso.agent: Agent started, version" in text


def test_the_watchdog_restarts_an_agent_whose_main_loop_stopped(
    agent: tuple[TestHost, str, float],
) -> None:
    host, unit, _ = agent
    time.sleep(3)  # longer than WatchdogSec: the pings keep it alive
    assert show(host, unit, "NRestarts") == "0"
    first = show(host, unit, "MainPID")
    host.exec("kill", "-STOP", first)  # nothing runs: no ping
    began = time.monotonic()
    wait_for(lambda: show(host, unit, "MainPID") not in ("0", first), timeout=30)
    wait_for(lambda: show(host, unit, "ActiveState") == "active", timeout=30)
    took = time.monotonic() - began
    print(f"\nSIGSTOP → restarted by the watchdog and READY again: {took:.1f} s")
    assert show(host, unit, "NRestarts") == "1"
    assert "Watchdog timeout" in host.exec("journalctl", "-u", unit, "--no-pager").stdout
