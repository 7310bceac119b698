"""Help and ``version`` without loading what they do not print (issue 13, less fixed cost per
command): the root listing comes from ``SUMMARIES``, ``rotate --help`` does not import the
rotation engine, ``version`` is answered without click, and each prints what it printed before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from kernel.cli.main import COMMANDS, SUMMARIES
from kernel.cli.quick import quick_run
from kernel.cli.root import cli
from tests.conftest import RunDso

ROOT = Path(__file__).resolve().parents[2]


def _root_ctx(width: int) -> click.Context:
    ctx = cli.make_context("dso", [], resilient_parsing=True)
    ctx.terminal_width = ctx.max_content_width = width
    return ctx


def test_every_command_has_its_summary_and_it_is_its_help() -> None:
    ctx = _root_ctx(100)
    assert set(SUMMARIES) == set(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and not command.hidden and not command.short_help, name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert SUMMARIES[name] == first, f"SUMMARIES[{name!r}] differs from its help"


@pytest.mark.parametrize("width", [60, 80, 100, 200])
def test_the_root_listing_is_the_one_click_makes(width: int) -> None:
    ctx = _root_ctx(width)
    ours = click.HelpFormatter(width=width, max_width=width)
    cli.format_commands(ctx, ours)
    clicks = click.HelpFormatter(width=width, max_width=width)
    click.Group.format_commands(cli, ctx, clicks)  # imports every command
    assert ours.getvalue() == clicks.getvalue()


def _modules_after(*args: str) -> set[str]:
    """The modules ``dso ARGS`` has imported when it exits (a fresh interpreter)."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + ' '.join(sys.modules)))\n"
        "from kernel.cli.main import main\n"
        f"sys.argv = ['dso', *{list(args)!r}]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stderr.rpartition("MODULES ")[2].split())


def test_root_help_imports_no_command() -> None:
    modules = _modules_after("--help")
    assert not {m for m in modules if m.startswith("kernel.cli.") and m != "kernel.cli.main"} - {
        "kernel.cli.root",
        "kernel.cli.quick",
    }


def test_rotate_help_does_not_load_the_engine() -> None:
    modules = _modules_after("rotate", "--help")
    assert "kernel.rotation.engine" not in modules
    assert "docker" not in modules
    assert "kernel.runtime" not in modules
    assert "kernel.containers.view" not in modules


def test_version_does_not_import_click() -> None:
    assert "click" not in _modules_after("version", "--json")


def test_version_answered_quickly_is_what_the_full_cli_prints(
    run_dso: RunDso, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in (["version"], ["version", "--json"]):
        code = quick_run(args)
        quick = capsys.readouterr().out
        full = run_dso(*args, env={"DSO_LOG_LEVEL": "warning"})  # click reads it: the full CLI
        assert code == full.exit_code
        assert quick == full.stdout
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code = quick_run(["version", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 6
    assert doc["docker"]["reachable"] is False


def test_version_with_click_env_goes_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSO_VERSION_JSON", "1")
    assert quick_run(["version"]) is None


def test_rotate_offers_the_strategies_choose_knows() -> None:
    from kernel.cli import rotate
    from kernel.rotation import choose

    assert rotate.CHOICES == choose.CHOICES


def test_logging_is_set_up_for_commands_not_for_their_help(
    run_dso: RunDso, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kernel.log

    levels: list[str] = []
    monkeypatch.setattr(kernel.log, "configure", levels.append)
    for args in (
        ["rotate", "--help"],
        ["secret", "set", "-h"],
        ["--log-level", "debug", "up", "-h"],
    ):
        assert run_dso(*args).exit_code == 0
    assert levels == []
    run_dso("--log-level", "info", "secret", "list")  # fails (no vault): logging was set up
    run_dso("secret", "list", "--", "--help")  # after --, --help is an argument
    assert levels == ["info", "warning"]
    assert "kernel.log" not in _modules_after("rotate", "--help")
