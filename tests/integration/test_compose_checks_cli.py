"""`docker dso up SERVICE…` checks only what it starts; `up` and `validate` refuse variable names
a shell drops and a secrets directory over /dev, with the reason."""

from __future__ import annotations

import json

import pytest

from tests.integration.compose_support import IMAGE, ComposeProject, docker, project

pytestmark = pytest.mark.integration
__all__ = ["project"]

TWO_SERVICES = f"""
services:
  a:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 600"]
    stop_grace_period: 1s
    depends_on: [db]
    links: [cache]
    environment:
      TOKEN: dso://app/token
  db:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 600"]
    stop_grace_period: 1s
  cache:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 600"]
    stop_grace_period: 1s
  b:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 600"]
    stop_grace_period: 1s
    environment:
      MISSING: dso://app/missing
"""


def services_created(project: ComposeProject) -> list[str]:
    done = docker(
        "ps",
        "-a",
        f"--filter=label=com.docker.compose.project={project.name}",
        '--format={{.Label "com.docker.compose.service"}}',
    )
    return sorted(done.stdout.split())


def test_up_with_a_service_checks_only_it_and_its_dependencies(project: ComposeProject) -> None:
    project.set_secret("app/token", "t0ken")
    project.write("compose.yaml", TWO_SERVICES)

    project.dso("up", "-d", "a")

    assert services_created(project) == ["a", "cache", "db"]
    assert project.exec("a", "sh", "-c", 'printf %s "$TOKEN"') == "t0ken"

    everything = project.dso("up", "-d", ok=False)
    assert everything.returncode == 5, everything.stderr
    assert "service b, MISSING: dso://app/missing: provider 'local': no secret" in everything.stderr
    assert services_created(project) == ["a", "cache", "db"]  # nothing more was started

    only_b = project.dso("up", "-d", "b", ok=False)
    assert only_b.returncode == 5 and "service b, MISSING" in only_b.stderr


BAD_NAMES = f"""
services:
  api:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 600"]
    environment:
      1BAD: dso://app/token
      ÜNI: dsofile://app/token
      _OK: dso://app/token
"""


def test_names_a_shell_drops_are_refused_by_validate_and_up(project: ComposeProject) -> None:
    project.set_secret("app/token", "t0ken")
    project.write("compose.yaml", BAD_NAMES)

    checked = project.dso("validate", ok=False)
    assert checked.returncode == 1
    assert "service api, 1BAD: the variable name '1BAD' starts with a digit: shells drop" in (
        checked.stdout
    )
    assert "service api, ÜNI: the variable name 'ÜNI' contains 'Ü'" in checked.stdout
    assert "_OK" not in checked.stdout
    assert "2 problems" in checked.stderr

    up = project.dso("up", "-d", ok=False)
    assert up.returncode == 3
    assert "'1BAD' starts with a digit" in up.stderr and "'ÜNI' contains 'Ü'" in up.stderr
    assert services_created(project) == []


def test_a_secrets_directory_over_dev_is_refused(project: ComposeProject) -> None:
    project.set_secret("app/token", "t0ken")
    project.write(
        "compose.yaml",
        f"""
        services:
          api:
            image: {IMAGE}
            labels:
              dso.secrets.path: /dev/x
            environment:
              TOKEN_FILE: dsofile://app/token
        """,
    )

    checked = project.dso("validate", ok=False)
    assert checked.returncode == 1
    assert "label dso.secrets.path='/dev/x' is inside /dev" in checked.stdout
    up = project.dso("up", "-d", ok=False)
    assert up.returncode == 3 and "is inside /dev" in up.stderr
    assert services_created(project) == []


def test_validate_checks_a_swarm_stack_file_as_stack_deploy_reads_it(
    project: ComposeProject,
) -> None:
    project.set_secret("app/db", "stack-canary-Zq81")
    project.write(
        "stack.yaml",
        """\
        x-app: &app
          image: busybox
          environment:
            DB_FILE: dsofile://app/db
        services:
          a: *app
          b:
            <<: *app
            environment:
              TOKEN: dso://app/db
              MISSING: dsofile://app/missing
        """,
    )
    checked = project.dso("validate", "--stack", "stack.yaml", ok=False)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines if not line.startswith("  ")] == [
        ["stack.yaml:10", "service b, TOKEN"],
        ["stack.yaml:11", "service b, MISSING"],
    ]
    assert "dso:// cannot be used with Swarm" in checked.stdout
    assert "deliver it as a file: dsofile://app/db" in checked.stdout
    assert "2 problems" in checked.stderr

    project.write(
        "good.yaml",
        "services:\n  a:\n    image: busybox\n    environment:\n      DB_FILE: dsofile://app/db\n",
    )
    valid = project.dso("validate", "--stack", "good.yaml", "--json")
    doc = json.loads(valid.stdout)
    assert doc["valid"] is True and doc["stack_file"] == "good.yaml"
    assert [r["path"] for r in doc["references"]] == ["/run/secrets/dso/DB_FILE"]
    project.assert_no_output_contains("stack-canary-Zq81")
