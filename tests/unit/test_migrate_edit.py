"""The new compose text: only the planned values change, everything else stays byte for byte."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

import kernel.compose.migrate_edit as migrate_edit
from kernel.compose.migrate_edit import Rewritten, rewrite, unused_lines
from kernel.compose.migrate_plan import Options, Plan, build_plan
from kernel.errors import ComposeError
from tests.unit.migrate_fixtures import copy_fixture, expected


def migrate(directory: Path, **options: object) -> tuple[Plan, dict[Path, Rewritten]]:
    dotenv = [directory / ".env"] if (directory / ".env").is_file() else []
    plan = build_plan(
        [directory / "compose.yaml"],
        directory,
        dotenv,
        {},
        Options(**options),  # type: ignore[arg-type]
        show=lambda p: str(p.relative_to(directory)),
    )
    return plan, rewrite(plan)


def new_text(tmp_path: Path, compose: str, dotenv: str = "", **files: str) -> str:
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / "compose.yaml").write_bytes(compose.encode())
    if dotenv:
        (directory / ".env").write_text(dotenv)
    for name, text in files.items():
        (directory / name.replace("_env", ".env")).write_text(text)
    plan, rewritten = migrate(directory)
    assert plan.problems == []
    return rewritten[directory / "compose.yaml"].text


def test_shop_golden_file(tmp_path: Path, canary: str) -> None:
    shop = copy_fixture("shop", tmp_path / "shop", canary)
    plan, rewritten = migrate(shop)
    assert plan.problems == []
    assert list(rewritten) == [shop / "compose.yaml"]
    result = rewritten[shop / "compose.yaml"]
    assert result.text == expected("shop")
    assert result.changes == 12
    assert canary not in result.text


def test_unused_dotenv_lines_of_the_shop(tmp_path: Path, canary: str) -> None:
    shop = copy_fixture("shop", tmp_path / "shop", canary)
    plan, rewritten = migrate(shop)
    unused = [
        (str(line.file.relative_to(shop)), line.line, name)
        for line, name in unused_lines(plan, rewritten)
    ]
    # DB_PASSWORD (lines 4 and 6) stays: ADMIN_PASSWORD, still interpolated, uses it in .env.
    assert unused == [
        (".env", 9, "GITHUB_TOKEN"),
        (".env", 10, "SERVICE_CERT_KEY"),
        ("env/api.env", 3, "SMTP_PASSWORD"),
        ("env/api.env", 4, "SENTRY_DSN"),
    ]


def test_every_line_of_a_variable_no_longer_interpolated_is_unused(tmp_path: Path) -> None:
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / ".env").write_text("DB_PASSWORD=old\nAPI_TOKEN=tok-1\nDB_PASSWORD=new\n")
    (directory / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    command: echo ${API_TOKEN}\n"
        "    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n      API_TOKEN: ${API_TOKEN}\n"
    )
    plan, rewritten = migrate(directory)
    unused = [(line.line, name) for line, name in unused_lines(plan, rewritten)]
    assert unused == [(1, "DB_PASSWORD"), (3, "DB_PASSWORD")]  # API_TOKEN: still in command


def test_crlf_line_ends_are_kept(tmp_path: Path) -> None:
    compose = (
        "services:\r\n  a:\r\n    image: x\r\n    env_file: a.env\r\n"
        "    environment:\r\n      DB_PASSWORD: hunter2   # c\r\n"
    )
    text = new_text(tmp_path, compose, a_env="API_TOKEN=tok-123\n")
    assert text == (
        "services:\r\n  a:\r\n    image: x\r\n    env_file: a.env\r\n"
        "    environment:\r\n      DB_PASSWORD: dso://proj/DB_PASSWORD   # c\r\n"
        "      API_TOKEN: dso://proj/API_TOKEN\r\n"
    )


def test_block_scalars_null_values_and_quotes(tmp_path: Path) -> None:
    compose = textwrap.dedent(
        """\
        services:
          a:
            image: x
            environment:
              TLS: |
                -----BEGIN PRIVATE KEY-----
                abc
                -----END PRIVATE KEY-----

              A_TOKEN:
              B_TOKEN: ~
              C_TOKEN: null   # comment
              D_TOKEN: "quoted-1"
              E_TOKEN: >-
                folded-2
              OTHER: 1
          b:
            image: x
            environment:
              - A_TOKEN
              - "D_TOKEN=quoted-1"
              - 'F_TOKEN=single-3'
        """
    )
    dotenv = "A_TOKEN=a-1\nB_TOKEN=b-2\nC_TOKEN=c-3\n"
    assert new_text(tmp_path, compose, dotenv) == textwrap.dedent(
        """\
        services:
          a:
            image: x
            environment:
              TLS: dso://proj/TLS

              A_TOKEN: dso://proj/A_TOKEN
              B_TOKEN: dso://proj/B_TOKEN
              C_TOKEN: dso://proj/C_TOKEN   # comment
              D_TOKEN: "dso://proj/D_TOKEN"
              E_TOKEN: dso://proj/E_TOKEN
              OTHER: 1
          b:
            image: x
            environment:
              - A_TOKEN=dso://proj/A_TOKEN
              - "D_TOKEN=dso://proj/D_TOKEN"
              - 'F_TOKEN=dso://proj/F_TOKEN'
        """
    )


def test_env_file_variables_create_an_environment_with_the_file_indentation(
    tmp_path: Path,
) -> None:
    compose = (
        "services:\n    a:\n        image: x\n        env_file: [a.env]   # x\n        ports: []\n"
    )
    text = new_text(tmp_path, compose, a_env="API_TOKEN=tok-123\nSMTP_PASSWORD=pw\n")
    assert text == (
        "services:\n    a:\n        image: x\n        env_file: [a.env]   # x\n"
        "        environment:\n            API_TOKEN: dso://proj/API_TOKEN\n"
        "            SMTP_PASSWORD: dso://proj/SMTP_PASSWORD\n        ports: []\n"
    )


def test_env_file_variables_are_appended_to_a_list_environment(tmp_path: Path) -> None:
    compose = textwrap.dedent(
        """\
        services:
          a:
            image: x
            env_file:
              - a.env
            environment:
            - LOG=1
            - DEBUG=0   # last
            # a trailing comment
          b:
            image: x
        """
    )
    text = new_text(tmp_path, compose, a_env="API_TOKEN=tok-123\n")
    assert text == compose.replace(
        "- DEBUG=0   # last\n", "- DEBUG=0   # last\n    - API_TOKEN=dso://proj/API_TOKEN\n"
    )


def test_an_anchor_shared_by_two_services_is_edited_once(tmp_path: Path) -> None:
    compose = textwrap.dedent(
        """\
        x-env: &env
          API_TOKEN: tok-123456
        services:
          a:
            image: x
            environment: *env
          b:
            image: x
            environment:
              <<: *env
              OTHER: 1
        """
    )
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / "compose.yaml").write_text(compose)
    plan, rewritten = migrate(directory)
    (secret,) = plan.secrets
    assert [(u.service, u.line) for u in secret.uses] == [("a", 2), ("b", 2)]
    text = rewritten[directory / "compose.yaml"].text
    assert text == compose.replace("tok-123456", "dso://proj/API_TOKEN")


def test_a_flow_style_environment_cannot_take_new_entries(tmp_path: Path) -> None:
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / "a.env").write_text("API_TOKEN=tok-123\n")
    (directory / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    env_file: a.env\n    environment: {LOG: 1}\n"
    )
    plan, _rewritten = migrate(directory)
    (problem,) = plan.problems
    assert isinstance(problem, ComposeError)
    assert problem.message == (
        "compose.yaml: service a: cannot add API_TOKEN to its environment (it is empty, in "
        "flow style {…} / […], or a YAML alias)"
    )
    assert problem.hint == "write the environment as a block, or --exclude the variables"


def test_a_text_that_does_not_read_back_as_planned_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    environment: {API_TOKEN: tok-123456}\n"
    )
    original = migrate_edit._apply
    monkeypatch.setattr(
        migrate_edit, "_apply", lambda text, edits: original(text, edits) + "extra: 1\n"
    )
    plan, rewritten = migrate(directory)
    assert rewritten == {}
    (problem,) = plan.problems
    assert problem.message.endswith(
        "compose.yaml: the edited file does not read back as planned; nothing was written "
        "(please report this as a bug)"
    )


def test_the_new_file_loads_as_the_old_one_with_references(tmp_path: Path, canary: str) -> None:
    shop = copy_fixture("shop", tmp_path / "shop", canary)
    _plan, rewritten = migrate(shop)
    old = yaml.safe_load((shop / "compose.yaml").read_text())
    new = yaml.safe_load(rewritten[shop / "compose.yaml"].text)
    assert old["services"]["cache"] == new["services"]["cache"]
    assert new["services"]["db"]["environment"] == {
        "POSTGRES_USER": "shop",
        "POSTGRES_PASSWORD": "dso://shop/DB_PASSWORD",
        "PGDATA": "/var/lib/postgresql/data/pgdata",
    }
    assert new["services"]["api"]["environment"]["SMTP_PASSWORD"] == "dso://shop/SMTP_PASSWORD"
