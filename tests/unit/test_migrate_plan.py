"""What `docker dso migrate` proposes, read from the files as written (no compose, no docker)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from kernel.compose.migrate_plan import Options, OriginKind, Plan, build_plan, project_name
from kernel.compose.migrate_source import read_compose
from kernel.errors import ComposeError, InvalidSecretNameError, UsageError
from kernel.reference import Delivery
from tests.unit.migrate_fixtures import copy_fixture


@pytest.fixture
def shop(tmp_path: Path, canary: str) -> Path:
    return copy_fixture("shop", tmp_path / "shop", canary)


def plan_of(
    directory: Path,
    shell: Mapping[str, str] | None = None,
    files: tuple[str, ...] = ("compose.yaml",),
    **options: object,
) -> Plan:
    dotenv = [directory / ".env"] if (directory / ".env").is_file() else []
    return build_plan(
        [directory / f for f in files],
        directory,
        dotenv,
        shell or {},
        Options(**options),  # type: ignore[arg-type]
        show=lambda p: str(p.relative_to(directory)),
    )


def project(tmp_path: Path, compose: str, **files: str) -> Path:
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / "compose.yaml").write_text(textwrap.dedent(compose))
    for name, text in files.items():
        path = directory / name.replace("__", "/").replace("_env", ".env")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def summary(plan: Plan, root: Path) -> list[tuple[str, str, list[str], list[str]]]:
    return [
        (
            s.name,
            s.match.rule,
            [f"{o.kind}:{o.file.relative_to(root)}:{o.line}" for o in s.origins],
            [f"{u.service}.{u.variable}:{u.line}{'+' if u.item is None else ''}" for u in s.uses],
        )
        for s in plan.secrets
    ]


def test_shop_proposals_names_origins_and_uses(shop: Path) -> None:
    plan = plan_of(shop)
    assert plan.project == "shop"
    assert plan.problems == []
    assert summary(plan, shop) == [
        (
            "shop/DB_PASSWORD",
            "name",
            ["dotenv:.env:6"],
            ["api.DB_PASSWORD:18", "worker.DB_PASSWORD:36", "db.POSTGRES_PASSWORD:46"],
        ),
        (
            "shop/DATABASE_URL",
            "url-credentials",
            ["compose:compose.yaml:19", "dotenv:.env:6"],
            ["api.DATABASE_URL:19"],
        ),
        ("shop/STRIPE_KEY", "token-format", ["compose:compose.yaml:22"], ["api.STRIPE_KEY:22"]),
        (
            "shop/AWS_ACCESS_KEY_ID",
            "token-format",
            ["compose:compose.yaml:23"],
            ["api.AWS_ACCESS_KEY_ID:23"],
        ),
        (
            "shop/AWS_SECRET_ACCESS_KEY",
            "name",
            ["compose:compose.yaml:24"],
            ["api.AWS_SECRET_ACCESS_KEY:24"],
        ),
        ("shop/GITHUB_TOKEN", "name", ["dotenv:.env:9"], ["api.GITHUB_TOKEN:29"]),
        ("shop/QUEUE_URL", "url-credentials", ["compose:compose.yaml:38"], ["worker.QUEUE_URL:38"]),
        (
            "shop/SERVICE_CERT_KEY",
            "pem-private-key",
            ["dotenv:.env:10"],
            ["worker.SERVICE_CERT_KEY:39"],
        ),
        ("shop/SMTP_PASSWORD", "name", ["env_file:env/api.env:3"], ["api.SMTP_PASSWORD:12+"]),
        ("shop/SENTRY_DSN", "url-credentials", ["env_file:env/api.env:4"], ["api.SENTRY_DSN:12+"]),
    ]
    assert all(s.reference == f"dso://{s.name}" for s in plan.secrets)


def test_shop_values_are_what_compose_would_use(shop: Path, canary: str) -> None:
    values = {s.name: s.value.reveal().decode() for s in plan_of(shop).secrets}
    assert values["shop/DB_PASSWORD"] == f"db-{canary}"  # the later of two lines
    assert values["shop/DATABASE_URL"] == f"postgres://shop:db-{canary}@db:5432/shop"
    assert values["shop/STRIPE_KEY"] == "sk_test_4eC39HqLyjWDarjtT1zdp7dc"  # the default
    assert values["shop/AWS_SECRET_ACCESS_KEY"] == f"aws-{canary}"  # single-quoted in YAML
    assert values["shop/GITHUB_TOKEN"] == f"ghp-{canary}"  # single-quoted in .env
    assert values["shop/SERVICE_CERT_KEY"] == (
        f"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC{canary}\n"
        "-----END PRIVATE KEY-----"
    )
    assert values["shop/SMTP_PASSWORD"] == f"smtp-{canary}"
    assert values["shop/SENTRY_DSN"] == f"https://public:{canary}@sentry.example.com/42"


def test_shop_left_alone_and_warnings(shop: Path) -> None:
    plan = plan_of(shop)
    assert [(n.service, n.variable, n.line, n.reason) for n in plan.kept] == [
        ("api", "API_TOKEN", 25, "already a reference")
    ]
    assert [(n.service, n.variable, n.line, n.reason) for n in plan.skipped] == [
        ("api", "SESSION_SECRET", 26, "empty value"),
        (
            "api",
            "ADMIN_PASSWORD",
            27,
            ".env:8: the value of ADMIN_PASSWORD interpolates another variable",
        ),
        ("worker", "WEBHOOK_SECRET", 40, "empty value"),
    ]
    assert plan.warnings == [
        ".env: DB_PASSWORD is set on lines 4 and 6; line 6 wins, as in compose"
    ]


def test_delivery_prefix_include_and_exclude(shop: Path) -> None:
    plan = plan_of(
        shop,
        prefix="prod/",
        delivery=Delivery.FILE,
        include=frozenset({"DB_HOST"}),
        exclude=frozenset({"STRIPE_KEY", "SMTP_PASSWORD"}),
    )
    names = [s.name for s in plan.secrets]
    assert names[:2] == ["prod/shop/DB_HOST", "prod/shop/DB_PASSWORD"]
    assert "prod/shop/STRIPE_KEY" not in names and "prod/shop/SMTP_PASSWORD" not in names
    assert plan.secrets[0].match.why == "named with --include"
    assert plan.secrets[1].reference == "dsofile://prod/shop/DB_PASSWORD"
    excluded = [(n.variable, n.reason) for n in plan.skipped if "exclude" in n.reason]
    assert excluded == [
        ("STRIPE_KEY", "excluded with --exclude"),
        ("SMTP_PASSWORD", "excluded with --exclude"),
    ]


def test_a_variable_from_the_shell_is_not_migrated(shop: Path) -> None:
    plan = plan_of(shop, shell={"DB_PASSWORD": "from-the-shell", "GITHUB_TOKEN": "x"})
    names = [s.name for s in plan.secrets]
    assert "shop/DB_PASSWORD" not in names and "shop/DATABASE_URL" not in names
    reasons = {(n.service, n.variable): n.reason for n in plan.skipped}
    assert reasons[("db", "POSTGRES_PASSWORD")] == (
        "${DB_PASSWORD} comes from the shell environment, not a file"
    )
    assert reasons[("api", "GITHUB_TOKEN")] == (
        "no value here: compose takes it from the shell environment"
    )


def test_one_variable_with_different_values_gets_one_secret_per_service(tmp_path: Path) -> None:
    directory = project(
        tmp_path,
        """\
        services:
          a:
            image: x
            environment: {API_TOKEN: one-1111}
          b:
            image: x
            environment: [API_TOKEN=two-2222]
          c:
            image: x
            environment: {API_TOKEN: one-1111}
        """,
    )
    plan = plan_of(directory)
    assert [(s.name, [u.service for u in s.uses]) for s in plan.secrets] == [
        ("proj/a/API_TOKEN", ["a"]),
        ("proj/b/API_TOKEN", ["b"]),
        ("proj/c/API_TOKEN", ["c"]),
    ]


def test_different_values_in_one_service_are_a_problem(tmp_path: Path) -> None:
    directory = project(
        tmp_path,
        "services:\n  a:\n    image: x\n    environment: {API_TOKEN: one-1111}\n",
        override_yaml="services:\n  a:\n    environment: {API_TOKEN: two-2222}\n",
    )
    (directory / "override.yaml").write_text((directory / "override_yaml").read_text())
    plan = plan_of(directory, files=("compose.yaml", "override.yaml"))
    assert plan.secrets == []
    (problem,) = plan.problems
    assert isinstance(problem, UsageError)
    assert problem.message == (
        "service a, API_TOKEN: set to different values in compose.yaml:4, override.yaml:3"
    )


def test_invalid_prefix_is_a_problem_naming_the_variable(shop: Path) -> None:
    plan = plan_of(shop, prefix="bad prefix/")
    assert plan.secrets == []
    assert all(isinstance(p, InvalidSecretNameError) for p in plan.problems)
    assert plan.problems[0].message.startswith(
        "service api, DB_PASSWORD: secret name 'bad prefix/shop/DB_PASSWORD' contains whitespace"
    )


def test_env_files(tmp_path: Path) -> None:
    directory = project(
        tmp_path,
        """\
        services:
          a:
            image: x
            env_file:
              - common.env
              - path: optional.env
                required: false
              - path: missing.env
            environment:
              OVERRIDDEN_TOKEN: not-from-the-file
          b:
            image: x
            env_file: common.env
        """,
        common_env="""\
        # shared
        export SHARED_SECRET="s3cret-value"
        OVERRIDDEN_TOKEN=from-the-file
        BUILT_TOKEN=${OTHER}
        ESCAPED_TOKEN="a\\$b"
        PLAIN=1
        """,
    )
    plan = plan_of(directory)
    uses = [
        (s.name, [(u.service, u.env_file.name if u.env_file else None) for u in s.uses])
        for s in plan.secrets
    ]
    # b takes OVERRIDDEN_TOKEN from the file, a overrides it: two values, two secrets.
    assert uses == [
        ("proj/a/OVERRIDDEN_TOKEN", [("a", None)]),
        ("proj/b/OVERRIDDEN_TOKEN", [("b", "common.env")]),
        ("proj/SHARED_SECRET", [("a", "common.env"), ("b", "common.env")]),
        ("proj/ESCAPED_TOKEN", [("a", "common.env"), ("b", "common.env")]),
    ]
    assert plan.secrets[3].value.reveal() == b"a$b"
    assert [(n.service, n.variable, n.reason) for n in plan.skipped] == [
        (
            "a",
            "BUILT_TOKEN",
            "common.env:4: the value of BUILT_TOKEN interpolates another variable",
        ),
        (
            "b",
            "BUILT_TOKEN",
            "common.env:4: the value of BUILT_TOKEN interpolates another variable",
        ),
    ]
    assert plan.warnings == ["compose.yaml:8: env_file missing.env of service a does not exist"]


@pytest.mark.parametrize(
    ("compose", "shell", "dotenv", "expected"),
    [
        ("name: Shop_1\n", {}, "", "shop_1"),
        ("name: ${NAME:-fromdefault}\n", {}, "", "fromdefault"),
        ("name: x\n", {"COMPOSE_PROJECT_NAME": "Shell"}, "", "shell"),
        ("name: x\n", {}, "COMPOSE_PROJECT_NAME=dotenv\n", "dotenv"),
        ("services: {}\n", {}, "", "myapp_2"),
        ("name: '-.?'\n", {}, "", "project"),
    ],
)
def test_project_name(
    tmp_path: Path, compose: str, shell: dict[str, str], dotenv: str, expected: str
) -> None:
    directory = tmp_path / "My App_2"
    directory.mkdir()
    (directory / "compose.yaml").write_text(compose)
    (directory / ".env").write_text(dotenv)
    plan = plan_of(directory, shell=shell)
    assert plan.project == expected
    assert (
        project_name([read_compose(directory / "compose.yaml")], directory, shell, plan.dotenv_vars)
        == expected
    )


def test_yaml_errors_name_the_place_never_the_text(tmp_path: Path, canary: str) -> None:
    directory = project(tmp_path, f'services:\n  a:\n    environment:\n      PW: "{canary}\n')
    with pytest.raises(ComposeError) as caught:
        plan_of(directory)
    assert canary not in str(caught.value)
    assert str(caught.value) == "compose.yaml:5:1: not valid YAML: found unexpected end of stream"


def test_origin_kinds_are_documented_strings() -> None:
    assert [str(k) for k in OriginKind] == ["compose", "dotenv", "env_file"]
