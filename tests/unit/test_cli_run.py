"""`kernel.cli.main.run`: how an interrupted or aborted command ends (message and exit code)."""

from __future__ import annotations

import io

import click
import pytest

from kernel.cli import main
from kernel.errors import ExitCode


def _install(monkeypatch: pytest.MonkeyPatch, name: str, command: click.Command) -> None:
    monkeypatch.setitem(main.COMMANDS, name, f"{__name__}:{name.replace('-', '_')}")
    monkeypatch.setitem(globals(), name.replace("-", "_"), command)


@click.command()
def interrupted() -> None:
    raise KeyboardInterrupt


@click.command()
def declined() -> None:
    click.confirm("go on?", abort=True)


def test_ctrl_c_inside_a_command_says_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(monkeypatch, "interrupted", interrupted)
    assert main.run(["interrupted"]) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err.strip() == "Interrupted."


def test_a_declined_confirmation_says_aborted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(monkeypatch, "declined", declined)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main.run(["declined"]) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err.strip().endswith("Aborted.")
