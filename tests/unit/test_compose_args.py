"""Splitting `docker dso up …` into compose's global flags and the command's own."""

from __future__ import annotations

import pytest

from kernel.compose.args import split_args
from kernel.errors import UsageError


def test_global_flags_anywhere_are_taken_out_in_every_spelling() -> None:
    first = ["-d", "-f", "a.yml", "--file=b.yml", "-fc.yml", "--profile", "tools", "-p", "shop"]
    then = ["--env-file", "prod.env", "--project-directory=/srv", "--ansi=never", "web"]
    args = split_args([*first, *then])
    assert args.files == ("a.yml", "b.yml", "c.yml")
    assert args.profiles == ("tools",)
    assert args.project_name == "shop"
    assert args.env_files == ("prod.env",)
    assert args.project_directory == "/srv"
    assert args.rest == ("-d", "web")
    assert args.global_flags == (
        "--file=a.yml",
        "--file=b.yml",
        "--file=c.yml",
        "--profile=tools",
        "--project-name=shop",
        "--env-file=prod.env",
        "--project-directory=/srv",
        "--ansi=never",
    )
    # -f, -p and --project-directory are pinned by dso on the second call.
    assert args.shared_flags == ("--profile=tools", "--env-file=prod.env", "--ansi=never")


def test_boolean_globals_are_shared() -> None:
    args = split_args(["--dry-run", "-d", "--compatibility"])
    assert args.shared_flags == ("--dry-run", "--compatibility")
    assert args.rest == ("-d",)


def test_passthrough_stops_at_the_command_so_logs_f_means_follow() -> None:
    args = split_args(["-f", "a.yml", "logs", "-f", "web"], anywhere=False)
    assert args.files == ("a.yml",)
    assert args.rest == ("logs", "-f", "web")


def test_double_dash_ends_flag_parsing() -> None:
    assert split_args(["-d", "--", "-f"]).rest == ("-d", "--", "-f")


@pytest.mark.parametrize("argv", [["-f"], ["--profile"], ["-p"]])
def test_a_missing_value_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(UsageError, match="needs a value"):
        split_args(argv)


def test_compose_file_on_stdin_is_refused() -> None:
    with pytest.raises(UsageError, match="stdin"):
        split_args(["-f", "-"])
