"""`docker dso migrate` checked by the real compose: the migrated file is valid compose and every
reference in it resolves (`docker dso validate`)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess

import pytest

from tests.integration.compose_support import ComposeProject, project
from tests.unit.migrate_fixtures import copy_fixture, snapshot

pytestmark = pytest.mark.integration
__all__ = ["project"]


def test_migrated_shop_is_valid_compose_and_validates(project: ComposeProject) -> None:
    canary = "CANARY-" + secrets.token_hex(12)
    shutil.rmtree(project.dir)
    copy_fixture("shop", project.dir, canary)
    before = snapshot(project.dir)
    project.set_secret("app/api_token", f"{canary}-token")  # the reference already there

    applied = project.dso("migrate", "--apply")
    assert "dso: wrote compose.dso.yaml" in applied.stderr
    after = snapshot(project.dir)
    assert set(after) - set(before) == {"compose.dso.yaml"}
    assert {k: v for k, v in after.items() if k in before} == before

    config = subprocess.run(
        ["docker", "compose", "-f", "compose.dso.yaml", "config", "--format", "json"],
        cwd=project.dir,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert config.returncode == 0, config.stderr
    model = json.loads(config.stdout)
    name = project.name  # COMPOSE_PROJECT_NAME names the project, and so the secrets
    api = model["services"]["api"]["environment"]
    assert api["DB_PASSWORD"] == f"dso://{name}/DB_PASSWORD"
    assert api["GITHUB_TOKEN"] == f"dso://{name}/GITHUB_TOKEN"
    assert api["SMTP_PASSWORD"] == f"dso://{name}/SMTP_PASSWORD"  # overrides env/api.env
    assert api["SMTP_HOST"] == "smtp.example.com"
    assert api["API_TOKEN"] == "dsofile://app/api_token"
    assert model["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == (
        f"dso://{name}/DB_PASSWORD"
    )
    assert model["services"]["worker"]["environment"]["SERVICE_CERT_KEY"] == (
        f"dso://{name}/SERVICE_CERT_KEY"
    )
    assert model["services"]["api"]["image"] == "example/api:1.4"  # .env still interpolated

    validated = project.dso("validate", "-f", "compose.dso.yaml", ok=False)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stderr.endswith("13 secret references in 3 services: all valid\n")
    project.assert_no_output_contains(canary)
