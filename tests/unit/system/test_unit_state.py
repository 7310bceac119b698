"""What `systemctl show` says of the unit, parsed once for `system …` and the doctor."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kernel.system import service
from kernel.system.service import (
    PROPERTIES,
    STATE_PROPERTIES,
    UnitState,
    no_systemd_detail,
    parse_properties,
    show_argv,
    systemd_booted,
)

RUNNING = """\
LoadState=loaded
UnitFileState=enabled
ActiveState=active
SubState=running
Result=success
FragmentPath=/etc/systemd/system/dso-agent.service
MainPID=363
InvocationID=7e9c2ff29d1349ae8397803db30e699e
NRestarts=0
ExecMainStatus=0
ExecMainCode=0
ActiveEnterTimestampMonotonic={active}
InactiveEnterTimestampMonotonic=0
DropInPaths=/etc/systemd/system/dso-agent.service.d/a.conf /run/systemd/system/x.d/b.conf
Job=
"""


def test_show_argv_asks_every_property_the_state_needs() -> None:
    assert show_argv() == [
        *("systemctl", "show", "dso-agent.service"),
        "--property=" + ",".join(PROPERTIES),
    ]
    assert PROPERTIES[: len(STATE_PROPERTIES)] == STATE_PROPERTIES


def test_parse_properties_keeps_values_with_equals_signs_and_skips_other_lines() -> None:
    text = "A=1\nEnvironment=X=1 Y=2\n\nnot a property\n=orphan\nEmpty=\n"
    assert parse_properties(text) == {"A": "1", "Environment": "X=1 Y=2", "Empty": ""}


def test_a_running_unit() -> None:
    now = time.time()
    started = int((time.monotonic() - 120) * 1e6)
    unit = UnitState.from_properties(parse_properties(RUNNING.format(active=started)), now=now)
    assert unit.installed and unit.running and unit.enabled and not unit.exited
    assert unit.state == "active (running)"
    assert unit.main_pid == 363
    assert unit.invocation_id == "7e9c2ff29d1349ae8397803db30e699e"
    assert unit.since is not None and abs(unit.since - (now - 120)) < 1.0
    assert unit.drop_ins == (
        "/etc/systemd/system/dso-agent.service.d/a.conf",
        "/run/systemd/system/x.d/b.conf",
    )
    doc = unit.as_dict()
    assert doc["main_pid"] == 363 and doc["active_state"] == "active"
    assert doc["fragment_path"] == "/etc/systemd/system/dso-agent.service"


def test_a_missing_unit() -> None:
    props = parse_properties("LoadState=not-found\nActiveState=inactive\nSubState=dead\n")
    unit = UnitState.from_properties(props)
    assert not unit.installed and not unit.running and not unit.enabled
    assert unit.since is None and unit.main_pid == 0
    assert unit.as_dict()["main_pid"] is None


@pytest.mark.parametrize(
    ("props", "exited", "ended"),
    [
        # A config error: the agent exits 3, Restart=on-failure waits RestartSec.
        (
            "ActiveState=activating\nSubState=auto-restart\nResult=exit-code\n"
            "ExecMainCode=1\nExecMainStatus=3",
            True,
            "exit status 3",
        ),
        (
            "ActiveState=failed\nSubState=failed\nResult=signal\nExecMainCode=2\nExecMainStatus=9",
            True,
            "killed by signal 9",
        ),
        (
            "ActiveState=failed\nSubState=failed\nResult=watchdog\nExecMainCode=2\n"
            "ExecMainStatus=6",
            True,
            "killed by signal 6, watchdog",
        ),
        (
            "ActiveState=failed\nSubState=failed\nResult=start-limit-hit\nExecMainCode=1\n"
            "ExecMainStatus=3",
            True,
            "exit status 3, start-limit-hit",
        ),
        ("ActiveState=inactive\nSubState=dead\nResult=success", True, "success"),
        ("ActiveState=activating\nSubState=start", False, "stopped"),
        ("ActiveState=deactivating\nSubState=stop-sigterm", False, "stopped"),
    ],
)
def test_how_a_run_ended(props: str, exited: bool, ended: str) -> None:
    unit = UnitState.from_properties(parse_properties(props))
    assert unit.exited is exited
    assert unit.how_it_ended() == ended


def test_enabled_states() -> None:
    for state, enabled in [
        ("enabled", True),
        ("enabled-runtime", True),
        ("static", True),
        ("disabled", False),
        ("masked", False),
        ("", False),
    ]:
        unit = UnitState.from_properties({"UnitFileState": state, "LoadState": "loaded"})
        assert unit.enabled is enabled, state


def test_systemd_is_here_when_it_made_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert systemd_booted(tmp_path) is True
    assert systemd_booted(tmp_path / "nope") is False
    monkeypatch.setattr(service, "SYSTEMD_DIR", tmp_path / "run-systemd-system")
    assert systemd_booted() is False
    detail = no_systemd_detail()
    assert detail.startswith(f"systemd is not PID 1 here ({tmp_path / 'run-systemd-system'} ")
    assert "PID 1 is " in detail
