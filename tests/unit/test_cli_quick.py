"""``status --json`` answered without click (kernel.cli.quick): the same bytes, exit code and
messages as the full CLI, which still answers every case the quick path cannot vouch for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from kernel.agent.api.client import AgentClient
from kernel.agent.daemon import Agent
from kernel.cli import quick, root
from kernel.cli.json_output import json_text
from kernel.cli.quick import CLICK_ENV, quick_run
from kernel.config import agent_socket
from tests.conftest import CliResult, RunDso
from tests.status_schema import validate_status
from tests.unit.status_fixtures import FakeHost, make_agent, provider

#: Makes the full CLI answer: click reads DSO_LOG_LEVEL, and "warning" is its default anyway.
FULL = {"DSO_LOG_LEVEL": "warning"}

#: What JSON printing can trip on: non-ASCII, escapes, empties, numbers, nesting, a non-JSON
#: value (printed through str()), int and float keys.
AWKWARD: dict[str, Any] = {
    "schema": 1,
    "names": ["ünï", "tab\there", 'quote"back\\slash', "\x1b[31mred\x1b[0m", ""],
    "empty": {"list": [], "dict": {}, "nested": [[], {}, [[]]]},
    "numbers": [0, -1, 2**70, 1.5, 1e-7, float("inf"), float("-inf"), float("nan"), True],
    "none": None,
    "path": Path("/run/dso/agent.sock"),
    1: "int key",
    2.5: "float key",
}


@pytest.fixture
def serving(dso_home: Path) -> Iterator[Agent]:
    """An agent of ``dso_home`` whose socket answers (its other threads are not running)."""
    from kernel.agent.api.server import ApiServer

    agent = make_agent(dso_home, host=FakeHost({"local": provider("local")}))
    server = ApiServer.for_agent(agent)
    agent._api = server
    server.start()
    try:
        yield agent
    finally:
        server.stop()
        agent.bus.close()


@pytest.fixture
def full_cli_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every command the full (click) CLI ran."""
    ran: list[list[str]] = []
    real = root.cli.main

    def spy(*args: Any, **kwargs: Any) -> Any:
        ran.append(list(kwargs["args"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(root.cli, "main", spy)
    return ran


def same(quick_result: CliResult, full_result: CliResult) -> None:
    assert (quick_result.exit_code, quick_result.stdout, quick_result.stderr) == (
        full_result.exit_code,
        full_result.stdout,
        full_result.stderr,
    )


@pytest.mark.usefixtures("serving")
def test_the_running_agent_is_asked_without_click(
    run_dso: RunDso, full_cli_runs: list[list[str]]
) -> None:
    result = run_dso("status", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    validate_status(doc)
    assert doc["source"] == "agent"
    assert full_cli_runs == []


@pytest.mark.usefixtures("serving")
def test_the_quick_answer_is_the_full_clis_byte_for_byte(
    run_dso: RunDso, full_cli_runs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AgentClient, "call", lambda self, action, **params: AWKWARD)

    quick_result = run_dso("status", "--json")
    full_result = run_dso("status", "--json", env=FULL)

    assert full_cli_runs == [["status", "--json"]]  # the first never reached click
    same(quick_result, full_result)
    assert quick_result.stdout == json.dumps(AWKWARD, indent=2, default=str) + "\n"


@pytest.mark.usefixtures("serving")
def test_ctrl_c_while_the_agent_thinks_ends_as_in_the_full_cli(
    run_dso: RunDso, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: AgentClient, action: str, **params: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(AgentClient, "call", interrupted)

    quick_result = run_dso("status", "--json")
    full_result = run_dso("status", "--json", env=FULL)

    same(quick_result, full_result)
    assert quick_result.exit_code == 130
    assert quick_result.stderr.strip() == "Interrupted."


@pytest.mark.usefixtures("serving")
@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["status"], {}),
        (["status", "--json", "--watch"], {}),
        (["status", "--json", "--mode", "local"], {}),
        (["--log-level", "warning", "status", "--json"], {}),
        (["status", "--json"], {"DSO_LOG_LEVEL": "warning"}),
        (["status", "--json"], {"DSO_CONFIG": "/nowhere.yaml"}),
        (["status", "--json"], {"DSO_STATUS_WATCH": "1"}),
        (["status", "--json"], {"DSO_MODE": "bogus"}),
        (["status", "--json"], {"_DOCKER DSO_COMPLETE": "bash_complete"}),
    ],
)
def test_anything_but_plain_status_json_goes_to_the_full_cli(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert quick_run(argv) is None


def test_no_agent_goes_to_the_full_cli_for_the_state_files(
    run_dso: RunDso, full_cli_runs: list[list[str]]
) -> None:
    result = run_dso("status", "--json")

    assert full_cli_runs == [["status", "--json"]]
    assert result.exit_code == 10
    assert json.loads(result.stdout)["source"] == "state_files"
    assert "the agent is not running" in result.stderr


def test_a_configured_socket_wins_also_once_recorded(
    run_dso: RunDso,
    serving: Agent,
    dso_home: Path,
    full_cli_runs: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The agent answers on the layout's socket; the configuration points somewhere else.
    monkeypatch.setattr(agent_socket, "SETTLE", 0.0)
    (dso_home / "cache").mkdir()  # as `dso init` makes it
    elsewhere = dso_home / "elsewhere.sock"
    config = dso_home / "config.yaml"
    config.write_text(f"version: 1\nagent:\n  socket: {elsewhere}\n")
    config.chmod(0o600)

    for _ in range(2):  # the full load, then the record
        result = run_dso("status", "--json")
        assert result.exit_code == 10
        assert f"no socket at {elsewhere}" in result.stderr

    assert (dso_home / "cache" / agent_socket.RECORD_NAME).exists()
    assert quick_run(["status", "--json"]) is None  # the record is used; nothing answers there


@pytest.mark.usefixtures("serving")
def test_a_recorded_configuration_is_answered_quickly(
    run_dso: RunDso, dso_home: Path, full_cli_runs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_socket, "SETTLE", 0.0)
    (dso_home / "cache").mkdir()  # as `dso init` makes it
    config = dso_home / "config.yaml"
    config.write_text("version: 1\ndefault_provider: local\n")
    config.chmod(0o600)

    first = run_dso("status", "--json")
    second = run_dso("status", "--json")

    assert full_cli_runs == [["status", "--json"]]  # loaded once, then the record answered
    assert first.exit_code == second.exit_code == 0
    assert json.loads(second.stdout)["source"] == "agent"


@pytest.mark.usefixtures("serving")
def test_an_invalid_configuration_is_reported_every_time(
    run_dso: RunDso, dso_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_socket, "SETTLE", 0.0)
    config = dso_home / "config.yaml"
    config.write_text("version: 1\nagent:\n  sokcet: /run/x.sock\n")
    config.chmod(0o600)

    for _ in range(2):
        result = run_dso("status", "--json")
        assert result.exit_code == 0  # the default socket answered
        assert result.stderr.startswith("warning: configuration not loaded (")
        assert "agent.sokcet" in result.stderr
        assert result.stderr.rstrip().endswith("; trying the default socket")


def test_the_quick_path_knows_every_variable_click_reads_for_status() -> None:
    status = root.cli.get_command(click.Context(root.cli), "status")
    assert status is not None
    names: set[str] = set()
    for command, prefix in ((root.cli, "DSO"), (status, "DSO_STATUS")):
        ctx = click.Context(command)
        for param in command.get_params(ctx):
            envvar = param.envvar
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
            if isinstance(param, click.Option) and param.allow_from_autoenv and param.name:
                names.add(f"{prefix}_{param.name.upper()}")
    unknown = {
        n
        for n in names
        if n not in CLICK_ENV and n != "DSO_MODE" and not n.startswith("DSO_STATUS_")
    }
    assert unknown == set()


def test_the_modes_are_the_agent_commands() -> None:
    from kernel.cli.modes import MODES

    assert quick.MODES == MODES


def test_every_json_output_is_printed_alike(capsys: pytest.CaptureFixture[str]) -> None:
    from kernel.cli.app import Application

    Application(prog="dso", config_path=None, log_level="warning").out_json(AWKWARD)
    assert capsys.readouterr().out == json_text(AWKWARD) + "\n"
