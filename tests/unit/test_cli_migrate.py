"""`docker dso migrate` as a user sees it: the plan, exit codes, files written, the vault.

Runs in-process (run_dso) on a copy of tests/unit/fixtures/migrate/shop whose secret values hold
a fresh canary: no output, --json included, may ever contain one of them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from kernel.errors import StorageError
from kernel.paths import local_layout
from kernel.secret_value import SecretValue
from kernel.vault import Vault, open_local
from tests.conftest import CliResult, RunDso
from tests.unit.migrate_fixtures import copy_fixture, expected, snapshot

PLAN = [
    "secret shop/DB_PASSWORD{new}: name contains PASSWORD; value from .env:6",
    "  compose.yaml:18: service api, DB_PASSWORD -> dso://shop/DB_PASSWORD",
    "  compose.yaml:36: service worker, DB_PASSWORD -> dso://shop/DB_PASSWORD",
    "  compose.yaml:46: service db, POSTGRES_PASSWORD -> dso://shop/DB_PASSWORD",
    "secret shop/DATABASE_URL{new}: value is a URL with a password (user:pass@); "
    "value from compose.yaml:19 and .env:6",
    "  compose.yaml:19: service api, DATABASE_URL -> dso://shop/DATABASE_URL",
    "secret shop/STRIPE_KEY{new}: value looks like a Stripe secret key; value from compose.yaml:22",
    "  compose.yaml:22: service api, STRIPE_KEY -> dso://shop/STRIPE_KEY",
    "secret shop/AWS_ACCESS_KEY_ID{new}: value looks like an AWS access key id; "
    "value from compose.yaml:23",
    "  compose.yaml:23: service api, AWS_ACCESS_KEY_ID -> dso://shop/AWS_ACCESS_KEY_ID",
    "secret shop/AWS_SECRET_ACCESS_KEY{new}: name contains SECRET; value from compose.yaml:24",
    "  compose.yaml:24: service api, AWS_SECRET_ACCESS_KEY -> dso://shop/AWS_SECRET_ACCESS_KEY",
    "secret shop/GITHUB_TOKEN{new}: name contains TOKEN; value from .env:9",
    "  compose.yaml:29: service api, GITHUB_TOKEN -> dso://shop/GITHUB_TOKEN",
    "secret shop/QUEUE_URL{new}: value is a URL with a password (user:pass@); "
    "value from compose.yaml:38",
    "  compose.yaml:38: service worker, QUEUE_URL -> dso://shop/QUEUE_URL",
    "secret shop/SERVICE_CERT_KEY{new}: value is a PEM private key; value from .env:10",
    "  compose.yaml:39: service worker, SERVICE_CERT_KEY -> dso://shop/SERVICE_CERT_KEY",
    "secret shop/SMTP_PASSWORD{new}: name contains PASSWORD; value from env/api.env:3",
    "  compose.yaml:12: service api, SMTP_PASSWORD -> dso://shop/SMTP_PASSWORD "
    "(added to environment; was in env_file env/api.env)",
    "secret shop/SENTRY_DSN{new}: value is a URL with a password (user:pass@); "
    "value from env/api.env:4",
    "  compose.yaml:12: service api, SENTRY_DSN -> dso://shop/SENTRY_DSN "
    "(added to environment; was in env_file env/api.env)",
    "left alone: compose.yaml:25: service api, API_TOKEN: already a reference",
    "left alone: compose.yaml:26: service api, SESSION_SECRET: empty value",
    "left alone: compose.yaml:27: service api, ADMIN_PASSWORD: .env:8: the value of "
    "ADMIN_PASSWORD interpolates another variable",
    "left alone: compose.yaml:40: service worker, WEBHOOK_SECRET: empty value",
    "unused after migration: .env:9: GITHUB_TOKEN",
    "unused after migration: .env:10: SERVICE_CERT_KEY",
    "unused after migration: env/api.env:3: SMTP_PASSWORD",
    "unused after migration: env/api.env:4: SENTRY_DSN",
    "{write}: compose.dso.yaml (from compose.yaml, 12 references)",
]
DUPLICATE = "warning: .env: DB_PASSWORD is set on lines 4 and 6; line 6 wins, as in compose"
ENV_NOTE = (
    "dso: note: dso:// values are in the containers' environment, where `docker inspect` "
    "shows them; --delivery file delivers files instead"
)
SUMMARY = "10 secrets for 12 variables in 3 services of project shop"


def plan_lines(action: str = "", write: str = "write") -> list[str]:
    return [line.format(new=action, write=write) for line in PLAN]


@pytest.fixture
def shop(dso_home: Path, canary: str) -> Path:
    """The shop project as the working directory."""
    directory = copy_fixture("shop", Path.cwd() / "shop", canary)
    os.chdir(directory)
    return directory


@pytest.fixture
def dso(run_dso: RunDso) -> RunDso:
    assert run_dso("init").exit_code == 0
    return run_dso


def secret_values(directory: Path) -> list[str]:
    """Every secret value of the shop, as it appears in its files."""
    env = (directory / ".env").read_text() + (directory / "env" / "api.env").read_text()
    found = ["AKIAIOSFODNN7EXAMPLE", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"]
    for line in env.splitlines():
        if "CANARY" in line:
            found.append(line.partition("=")[2].split("  #")[0].strip("'\" ") or line)
    return found


def assert_clean(result: CliResult, canary: str, directory: Path) -> None:
    assert canary not in result.output
    for value in secret_values(directory):
        assert value not in result.output


def vault() -> Vault:
    return open_local(local_layout())


def test_dry_run_prints_the_plan_and_changes_nothing(dso: RunDso, shop: Path, canary: str) -> None:
    before = snapshot(shop)
    result = dso("migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == plan_lines(" (new)")
    assert result.stderr.splitlines() == [
        DUPLICATE,
        ENV_NOTE,
        f"dso: dry run: {SUMMARY}; nothing was changed (--apply to migrate)",
    ]
    assert snapshot(shop) == before
    assert vault().list() == []
    assert_clean(result, canary, shop)


def test_dry_run_without_a_vault_says_how_to_make_one(run_dso: RunDso, shop: Path) -> None:
    result = run_dso("migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == plan_lines()
    assert result.stderr.splitlines()[0] == (
        "warning: no local vault yet: `docker dso init` creates one; --apply needs it"
    )


def test_json_plan_never_holds_a_value(dso: RunDso, shop: Path, canary: str) -> None:
    result = dso("migrate", "--json")
    assert result.exit_code == 0, result.output
    assert_clean(result, canary, shop)
    doc = json.loads(result.stdout)
    assert doc["project"] == "shop"
    assert (doc["dry_run"], doc["applied"], doc["delivery"]) == (True, False, "env")
    assert doc["compose_files"] == ["compose.yaml"]
    assert doc["env_files"] == [".env", "env/api.env"]
    assert doc["outputs"] == [
        {"source": "compose.yaml", "output": "compose.dso.yaml", "references": 12}
    ]
    first = doc["secrets"][0]
    assert first == {
        "name": "shop/DB_PASSWORD",
        "reference": "dso://shop/DB_PASSWORD",
        "action": "created",
        "version": 1,
        "rule": "name",
        "why": "name contains PASSWORD",
        "origins": [{"kind": "dotenv", "file": ".env", "line": 6, "variable": "DB_PASSWORD"}],
        "uses": [
            {
                "service": service,
                "variable": variable,
                "file": "compose.yaml",
                "line": line,
                "added": False,
                "env_file": None,
            }
            for service, variable, line in [
                ("api", "DB_PASSWORD", 18),
                ("worker", "DB_PASSWORD", 36),
                ("db", "POSTGRES_PASSWORD", 46),
            ]
        ],
    }
    assert [s["name"] for s in doc["secrets"]][-1] == "shop/SENTRY_DSN"
    assert doc["secrets"][-1]["uses"][0]["env_file"] == "env/api.env"
    assert doc["kept"] == [
        {
            "service": "api",
            "variable": "API_TOKEN",
            "file": "compose.yaml",
            "line": 25,
            "reason": "already a reference",
        }
    ]
    assert [s["variable"] for s in doc["skipped"]] == [
        "SESSION_SECRET",
        "ADMIN_PASSWORD",
        "WEBHOOK_SECRET",
    ]
    assert doc["unused_lines"][0] == {"file": ".env", "line": 9, "variable": "GITHUB_TOKEN"}
    assert doc["warnings"] == [DUPLICATE.removeprefix("warning: ")]
    assert doc["problems"] == []


def test_apply_imports_in_one_transaction_and_writes_a_new_file(
    dso: RunDso, shop: Path, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(shop)
    calls: list[bool] = []
    original = Vault.set_many

    def counting(self: Vault, items: dict[str, SecretValue], *, dry_run: bool = False) -> object:
        calls.append(dry_run)
        return original(self, items, dry_run=dry_run)

    monkeypatch.setattr(Vault, "set_many", counting)
    result = dso("migrate", "--apply")
    assert result.exit_code == 0, result.output
    assert calls == [True, False]  # one dry run to check, one transaction to import
    assert result.stdout.splitlines() == plan_lines(" (new)", "wrote")
    assert result.stderr.splitlines() == [
        DUPLICATE,
        ENV_NOTE,
        f"dso: imported {SUMMARY} into the local vault (10 new)",
        "dso: wrote compose.dso.yaml; compose.yaml is unchanged and still holds the plaintext "
        "values: replace it once the new file works",
        "dso: the lines listed as unused can be removed from their files",
        "dso: next: docker dso validate -f compose.dso.yaml "
        "&& docker dso up -d -f compose.dso.yaml",
    ]
    assert_clean(result, canary, shop)
    after = snapshot(shop)
    assert after.pop("compose.dso.yaml").decode() == expected("shop")
    assert after == before  # originals byte for byte, .env and env_file included
    stored = {e.name: e.value.reveal().decode() for e in map(vault().get, _names())}
    assert stored["shop/DB_PASSWORD"] == f"db-{canary}"
    assert stored["shop/SMTP_PASSWORD"] == f"smtp-{canary}"
    assert stored["shop/STRIPE_KEY"] == "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
    assert len(stored) == 10
    assert (shop / "compose.dso.yaml").stat().st_mode & 0o777 == (
        (shop / "compose.yaml").stat().st_mode & 0o777
    )


def _names() -> list[str]:
    return [info.name for info in vault().list()]


def test_apply_again_refuses_to_overwrite_then_force_replaces(dso: RunDso, shop: Path) -> None:
    assert dso("migrate", "--apply").exit_code == 0
    (shop / "compose.dso.yaml").write_text("# edited by hand\n")
    again = dso("migrate", "--apply")
    assert again.exit_code == 2
    assert again.stderr.splitlines()[-3:] == [
        "problem: compose.dso.yaml already exists; it is not overwritten",
        "  hint: pass --force to replace it, or choose another --output",
        "dso: error: 1 problem; nothing was changed",
    ]
    assert (shop / "compose.dso.yaml").read_text() == "# edited by hand\n"
    forced = dso("migrate", "--apply", "--force")
    assert forced.exit_code == 0, forced.output
    assert "secret shop/DB_PASSWORD (in the vault): " in forced.stdout
    assert (shop / "compose.dso.yaml").read_text() == expected("shop")
    assert [p.name for p in shop.iterdir() if p.name.startswith(".compose")] == []


def test_a_different_value_in_the_vault_needs_force(dso: RunDso, shop: Path, canary: str) -> None:
    vault().set("shop/DB_PASSWORD", SecretValue("something else"))
    result = dso("migrate", "--apply")
    assert result.exit_code == 4
    assert (
        "problem: shop/DB_PASSWORD already exists in the local vault with another value "
        "(version 1)" in result.stderr
    )
    assert not (shop / "compose.dso.yaml").exists()
    assert _names() == ["shop/DB_PASSWORD"]
    forced = dso("migrate", "--apply", "--force")
    assert forced.exit_code == 0, forced.output
    assert "secret shop/DB_PASSWORD (replaces a different value): " in forced.stdout
    assert vault().get("shop/DB_PASSWORD").version == 2
    assert_clean(forced, canary, shop)


def test_apply_without_a_vault_changes_nothing(run_dso: RunDso, shop: Path) -> None:
    before = snapshot(shop)
    result = run_dso("migrate", "--apply")
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-3:] == [
        f"problem: no vault at {local_layout().vault}",
        "  hint: create one with `docker dso init`",
        "dso: error: 1 problem; nothing was changed",
    ]
    assert snapshot(shop) == before


def test_a_failed_import_removes_the_new_file(
    dso: RunDso, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(shop)
    original = Vault.set_many

    def failing(self: Vault, items: dict[str, SecretValue], *, dry_run: bool = False) -> object:
        if not dry_run:
            raise StorageError("could not write vault.enc: no space left on device")
        return original(self, items, dry_run=dry_run)

    monkeypatch.setattr(Vault, "set_many", failing)
    result = dso("migrate", "--apply")
    assert result.exit_code == 8
    assert result.stderr.splitlines()[-1] == (
        "dso: error: could not write vault.enc: no space left on device"
    )
    assert snapshot(shop) == before
    assert _names() == []


def test_output_and_delivery_file(dso: RunDso, shop: Path) -> None:
    result = dso("migrate", "--apply", "--delivery", "file", "--output", "secrets.yaml")
    assert result.exit_code == 0, result.output
    assert "dso: note: with dsofile:// each variable holds the path of a file " in result.stderr
    assert "wrote: secrets.yaml (from compose.yaml, 12 references)" in result.stdout
    # The same file with dsofile://; comments keep their column, so spacing differs.
    text = re.sub(" +#", " #", (shop / "secrets.yaml").read_text())
    assert text == re.sub(" +#", " #", expected("shop").replace("dso://", "dsofile://"))
    assert not (shop / "compose.dso.yaml").exists()


@pytest.mark.parametrize("target", ["compose.yaml", ".env", "env/api.env"])
def test_an_original_is_never_an_output(dso: RunDso, shop: Path, target: str) -> None:
    before = snapshot(shop)
    result = dso("migrate", "--apply", "--force", "--output", target)
    assert result.exit_code == 2
    assert f"problem: {target} is one of the project's own files; it is never overwritten" in (
        result.stderr
    )
    assert snapshot(shop) == before


def test_prefix_exclude_and_include(dso: RunDso, shop: Path) -> None:
    result = dso("migrate", "--prefix", "prod/", "--exclude", "DB_PASSWORD", "--include", "DB_HOST")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == "secret prod/shop/DB_HOST (new): named with --include; value from compose.yaml:16"
    )
    assert "left alone: compose.yaml:18: service api, DB_PASSWORD: excluded with --exclude" in lines
    assert (
        "left alone: compose.yaml:46: service db, POSTGRES_PASSWORD: excluded with --exclude "
        "(${DB_PASSWORD})" in lines
    )
    assert not any("prod/shop/DB_PASSWORD" in line for line in lines)


def test_invalid_prefix_fails_before_anything_is_written(dso: RunDso, shop: Path) -> None:
    result = dso("migrate", "--apply", "--prefix", "../")
    assert result.exit_code == 5
    assert (
        "problem: service api, DB_PASSWORD: secret name '../shop/DB_PASSWORD' has a '..' "
        "segment; names are not relative paths" in result.stderr
    )
    assert result.stderr.endswith("dso: error: 10 problems; nothing was changed\n")
    assert not (shop / "compose.dso.yaml").exists()


def test_nothing_to_migrate(dso: RunDso, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    environment: [A=1]\n"
    )
    result = dso("migrate", "--apply")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        "dso: nothing to migrate: no variable with a literal value looks like a secret\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "compose.yaml",
        "dso-home",
        "home",
        "work",
    ]


def test_no_compose_file(dso: RunDso, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    os.chdir(empty)
    result = dso("migrate")
    assert result.exit_code == 2
    assert result.stderr == (
        "dso: error: no compose file here or in a parent directory\n  hint: name one with -f FILE\n"
    )


def test_broken_files_are_named_never_quoted(dso: RunDso, shop: Path, canary: str) -> None:
    (shop / ".env").write_text(f"GOOD=1\nBAD {canary}\n")
    result = dso("migrate")
    assert result.exit_code == 2
    assert result.stderr == "dso: error: .env:2: expected NAME=VALUE (this line has no '=')\n"
    (shop / ".env").write_text("")
    (shop / "compose.yaml").write_text(f'services:\n  a:\n    environment: ["A={canary}\n')
    result = dso("migrate", "--json")
    assert result.exit_code == 3
    assert canary not in result.output
    assert result.stderr == (
        "dso: error: compose.yaml:4:1: not valid YAML: found unexpected end of stream\n"
    )


def test_explicit_files_and_env_file(dso: RunDso, shop: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    (shop / ".env").rename(shop / "prod.env")
    result = dso("migrate", "-f", "work/shop/compose.yaml", "--env-file", "work/shop/prod.env")
    assert result.exit_code == 0, result.output
    assert (
        "secret shop/DB_PASSWORD (new): name contains PASSWORD; value from work/shop/prod.env:6"
        in (result.stdout)
    )
    missing = dso("migrate", "-f", "work/shop/compose.yaml", "--env-file", "nope.env")
    assert (missing.exit_code, missing.stderr) == (
        2,
        "dso: error: --env-file nope.env: no such file\n",
    )
