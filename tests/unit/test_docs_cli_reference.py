"""docs/cli-reference.md is generated from the click tree and must match it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from kernel.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = _generator().render()
    actual = (ROOT / "docs" / "cli-reference.md").read_text()
    assert actual == expected, "run: .venv/bin/python scripts/gen_cli_reference.py"


def _commands(group: click.Group, ctx: click.Context) -> list[click.Command]:
    found: list[click.Command] = []
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None, f"command {name!r} is registered but does not load"
        found.append(sub)
        if isinstance(sub, click.Group):
            found += _commands(sub, click.Context(sub, info_name=name, parent=ctx))
    return found


def test_every_command_has_help_with_examples() -> None:
    ctx = click.Context(cli, info_name="dso")
    for command in _commands(cli, ctx):
        assert command.help, f"{command.name} has no help text"
        if not isinstance(command, click.Group):
            assert "Example" in command.help, f"{command.name}: add an Examples block"
