"""Rewriting a stack file for Swarm (kernel.swarm.stack): no Docker needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kernel.compose.scan import Problem
from kernel.errors import ComposeError, SecretNotFoundError
from kernel.swarm.stack import dump, locate_problems, problems_error, read_stack, rewrite

STACK = """\
version: "3.3"
services:
  web:
    image: nginx:alpine
    user: "1000:1001"
    environment:
      DB_PASSWORD: dsofile://app/db_password
      PLAIN: hello
    deploy:
      replicas: 2
      update_config:
        order: stop-first
  worker:
    image: busybox
    environment:
      - DB_PASSWORD=dsofile://app/db_password
      - API=dsofile://app/api#token
    labels:
      dso.secrets.path: /run/app
  other:
    image: busybox
secrets:
  mine:
    file: ./mine.txt
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def test_dsofile_references_become_external_versioned_secrets(tmp_path: Path) -> None:
    found = read_stack(_write(tmp_path, STACK), "shop")
    assert not found.problems
    refs = found.references()
    assert [r.uri() for r in refs] == ["dsofile://app/db_password", "dsofile://app/api#token"]
    assert found.services_of(refs[0]) == ["web", "worker"]
    names = {refs[0]: "shop_app_db_password_0123456789", refs[1]: "shop_app_api.token_abcdef0123"}
    doc = yaml.safe_load(dump(rewrite(found, names)))
    assert doc["version"] == "3.8"
    assert doc["secrets"]["mine"] == {"file": "./mine.txt"}
    assert doc["secrets"]["dso_app_db_password"] == {
        "external": True,
        "name": "shop_app_db_password_0123456789",
    }
    web = doc["services"]["web"]
    assert web["environment"] == {
        "DB_PASSWORD": "/run/secrets/dso/DB_PASSWORD",
        "PLAIN": "hello",
    }
    assert web["secrets"] == [
        {
            "source": "dso_app_db_password",
            "target": "/run/secrets/dso/DB_PASSWORD",
            "uid": "1000",
            "gid": "1001",
            "mode": 0o400,
        }
    ]
    # The file's own choice is kept; what it leaves open gets dso's proposal.
    assert web["deploy"]["update_config"] == {"order": "stop-first", "failure_action": "rollback"}
    assert web["deploy"]["rollback_config"] == {"order": "start-first"}
    assert web["deploy"]["labels"]["dso.refs"] == '{"DB_PASSWORD": "dsofile://app/db_password"}'
    worker = doc["services"]["worker"]
    assert worker["environment"] == [
        "DB_PASSWORD=/run/app/DB_PASSWORD",
        "API=/run/app/API",
    ]
    assert {(s["target"], s["uid"], s["gid"]) for s in worker["secrets"]} == {
        ("/run/app/DB_PASSWORD", "0", "0"),
        ("/run/app/API", "0", "0"),
    }
    assert worker["deploy"]["update_config"]["order"] == "start-first"
    assert doc["services"]["other"] == {"image": "busybox"}


def test_dso_env_references_are_refused_with_file_line_and_a_suggestion(tmp_path: Path) -> None:
    text = STACK.replace("      PLAIN: hello\n", "      TOKEN: dso://app/token\n")
    path = _write(tmp_path, text)
    found = read_stack(path, "shop", shown="stack.yaml")
    (problem,) = found.problems
    assert problem.line == 8 and problem.problem.variable == "TOKEN"
    error = problems_error("shop", found.problems)
    assert isinstance(error, ComposeError)
    assert error.message.startswith("stack.yaml:8: service web, TOKEN: dso://app/token: dso://")
    assert "in the clear" in error.message
    assert error.hint is not None and "dsofile://app/token" in error.hint
    with pytest.raises(ComposeError):
        rewrite(found, {})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("services: [\n", "stack.yaml:2"),
        ("just: text\n", "not a stack file"),
    ],
)
def test_files_that_are_not_stack_files_say_so(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ComposeError, match=match):
        read_stack(_write(tmp_path, text), "shop", shown="stack.yaml")


def test_a_named_user_is_a_problem_a_dso_key_clash_too(tmp_path: Path) -> None:
    text = STACK.replace('user: "1000:1001"', "user: www-data").replace(
        "  mine:\n", "  dso_app_db_password:\n"
    )
    found = read_stack(_write(tmp_path, text), "shop")
    messages = " | ".join(str(p) for p in found.problems)
    assert "numeric uid" in messages
    assert "already declares a secret 'dso_app_db_password'" in messages


def test_a_reference_that_does_not_resolve_is_located(tmp_path: Path) -> None:
    found = read_stack(_write(tmp_path, STACK), "shop", shown="stack.yaml")
    missing = SecretNotFoundError("dsofile://app/api#token: no secret named 'app/api'")
    located = locate_problems(found, [Problem("worker", "API", "dsofile://app/api#token", missing)])
    error = problems_error("shop", located)
    assert isinstance(error, SecretNotFoundError) and error.exit_code == 5
    assert error.message.startswith("stack.yaml:17: service worker, API: dsofile://app/api#token")


def test_the_exec_health_label_becomes_the_healthcheck_and_services_without_one_are_named(
    tmp_path: Path,
) -> None:
    text = STACK.replace(
        "    labels:\n      dso.secrets.path: /run/app\n",
        "    labels:\n      dso.secrets.path: /run/app\n"
        '      dso.health.exec: \'["test", "-s", "/run/app/API"]\'\n',
    )
    found = read_stack(_write(tmp_path, text), "shop", shown="stack.yaml")
    (warning,) = found.warnings
    assert warning.startswith("service web has no healthcheck in stack.yaml")
    doc = rewrite(found, dict.fromkeys(found.references(), "n"))
    assert doc["services"]["worker"]["healthcheck"] == {
        "test": ["CMD", "test", "-s", "/run/app/API"],
        "interval": "2s",
        "timeout": "5s",
        "retries": 3,
    }
    assert "healthcheck" not in doc["services"]["web"]
    shell = text.replace('\'["test", "-s", "/run/app/API"]\'', "test -s /run/app/API")
    shell = shell.replace("    user:", '    healthcheck:\n      test: ["CMD", "true"]\n    user:')
    found = read_stack(_write(tmp_path, shell), "shop")
    assert found.warnings == []
    doc = rewrite(found, dict.fromkeys(found.references(), "n"))
    assert doc["services"]["worker"]["healthcheck"]["test"] == ["CMD-SHELL", "test -s /run/app/API"]
    assert doc["services"]["web"]["healthcheck"] == {"test": ["CMD", "true"]}


ANCHORED = """\
x-app: &app
  image: busybox
  environment:
    DB_FILE: dsofile://app/db
services:
  a: *app
  b:
    <<: *app
    user: "1000"
"""


def test_services_written_with_one_yaml_anchor_each_get_their_own_entries(
    tmp_path: Path,
) -> None:
    found = read_stack(_write(tmp_path, ANCHORED), "shop")
    assert not found.problems
    (ref,) = found.references()
    doc = yaml.safe_load(dump(rewrite(found, {ref: "shop_app_db_0123456789"})))
    for name, uid in (("a", "0"), ("b", "1000")):
        (entry,) = doc["services"][name]["secrets"]
        assert (entry["target"], entry["uid"]) == ("/run/secrets/dso/DB_FILE", uid)
        assert doc["services"][name]["environment"] == {"DB_FILE": "/run/secrets/dso/DB_FILE"}
    assert doc["x-app"]["environment"] == {"DB_FILE": "dsofile://app/db"}  # not a service
