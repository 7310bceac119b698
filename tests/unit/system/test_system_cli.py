"""`docker dso system …` where systemd is not PID 1 (this machine, a container, local mode): each
command says so and what to do instead; `logs` shows the local agent's log file. Also the help
texts carry the spec's examples. (With systemd: tests/e2e/test_system_commands.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.system import service
from tests.conftest import RunDso


@pytest.fixture(autouse=True)
def no_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "SYSTEMD_DIR", tmp_path / "run" / "systemd" / "system")


@pytest.mark.parametrize(
    ("command", "instead"),
    [
        ("enable", "docker dso agent"),
        ("disable", "docker dso agent stop"),
        ("restart", "docker dso agent stop"),
        ("status", "docker dso status"),
    ],
)
def test_without_systemd_each_command_says_so_and_what_to_do_instead(
    run_dso: RunDso, command: str, instead: str
) -> None:
    result = run_dso("system", command)
    assert result.exit_code == 10, result.output
    assert "error: no systemd on this host: systemd is not PID 1 here" in result.stderr
    assert "hint:" in result.stderr and instead in result.stderr
    assert result.stdout == ""


def test_without_systemd_logs_shows_the_local_agents_log_or_says_where_it_would_be(
    run_dso: RunDso, dso_home: Path
) -> None:
    result = run_dso("system", "logs")
    assert result.exit_code == 10, result.output
    log = dso_home / "logs" / "dso.log"
    assert f"no local agent log at {log}" in result.stderr
    assert "docker dso up -d" in result.stderr and "docker dso agent" in result.stderr


def test_without_systemd_the_journal_only_filters_are_refused(
    run_dso: RunDso, dso_home: Path
) -> None:
    log = dso_home / "logs" / "dso.log"
    log.parent.mkdir(parents=True)
    log.write_text("[INFO] dso.agent: Agent started\n")
    result = run_dso("system", "logs", "-p", "err", "--since", "1h", "DSO_SERVICE=web")
    assert result.exit_code == 2, result.output
    assert "-p, --since, FIELD=VALUE need the journal" in result.stderr
    assert str(log) in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", "loud"), "unknown log priority 'loud'"),
        (("--trace", "a b"), "not a trace id"),
        (("service=web",), "not a journal field match"),
        (("-o", "xml"), "Invalid value for '-o' / '--output'"),
        (("-n", "-1"), "Invalid value for '-n' / '--lines'"),
    ],
)
def test_bad_log_options_are_usage_errors_before_journalctl_runs(
    run_dso: RunDso,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    here = tmp_path / "systemd-here"
    here.mkdir()
    monkeypatch.setattr(service, "SYSTEMD_DIR", here)
    result = run_dso("system", "logs", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_help_texts_carry_the_specs_examples(run_dso: RunDso) -> None:
    text = run_dso("system", "--help").stdout
    for example in (
        "docker dso system status",
        "sudo docker dso system enable",
        "sudo docker dso system disable",
        "sudo docker dso system restart",
        "docker dso system logs\n",
        "docker dso system logs -f",
        "docker dso system logs -n 100",
        "docker dso system logs -p err",
        "docker dso system logs --since 1h",
    ):
        assert example in text, example
    for command in ("enable", "disable", "restart", "status", "logs"):
        help_text = run_dso("system", command, "--help")
        assert help_text.exit_code == 0
        assert "Examples:" in help_text.stdout, command
