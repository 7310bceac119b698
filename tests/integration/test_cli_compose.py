"""`docker dso up/down/compose/validate` with compose's processes replaced by fakes.

The model is a captured `docker compose config` document; the secrets directory is a private
directory on /dev/shm; the vault is real. The canary must never show in any output.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kernel.paths import local_layout
from kernel.secret_value import SecretValue
from kernel.vault import open_local
from tests.conftest import RunDso

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "unit" / "fixtures" / "compose"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Fake compose: `config` answers with a fixture; `up`/`down` are recorded."""
    recorded: dict[str, Any] = {"fixture": "shop"}

    class PendingModel:
        def __init__(self, args: Any, *, cwd: Path, env: Any) -> None:
            recorded["config_args"] = args

        def cancel(self) -> None:
            recorded["cancelled"] = True

        def result(self) -> tuple[dict[str, Any], list[str]]:
            doc = json.loads((FIXTURES / recorded["fixture"] / "config.json").read_text())
            return copy.deepcopy(doc), ['warning: The "TAG" variable is not set.']

    def run_with_model(
        project: str,
        working_dir: Path,
        args: Any,
        command: list[str],
        model: Any,
        secret_env: dict[str, SecretValue],
        *,
        cwd: Path,
        env: Any,
    ) -> int:
        recorded.update(project=project, command=command, model=model, secret_env=secret_env)
        return recorded.get("exit", 0)

    def run_plain(args: Any, command: list[str], *, cwd: Path, env: Any) -> int:
        recorded["plain"] = [*args.global_flags, *command]
        return 0

    monkeypatch.setattr("kernel.compose.project.start_model", PendingModel)
    monkeypatch.setattr("kernel.compose.inject.image_user", lambda image, env: "")
    monkeypatch.setattr("kernel.compose.runner.run_with_model", run_with_model)
    monkeypatch.setattr("kernel.compose.runner.run_plain", run_plain)
    monkeypatch.setattr("kernel.compose.runner.compose_projects", lambda env: set())
    return recorded


@pytest.fixture
def dso(run_dso: RunDso, canary: str, shm: Path, monkeypatch: pytest.MonkeyPatch) -> RunDso:
    assert run_dso("init").exit_code == 0
    vault = open_local(local_layout())
    vault.set("app/db_password", SecretValue(canary))
    vault.set("app/api_key", SecretValue(canary + "-api"))
    vault.set("app/token", SecretValue(canary + "-token"))
    monkeypatch.setenv("DSO_SECRETS_DIR", str(shm / "secrets"))
    return run_dso


def test_up_delivers_env_through_compose_env_and_files_on_tmpfs(
    dso: RunDso, calls: dict[str, Any], canary: str, shm: Path
) -> None:
    result = dso("up", "-d", "-f", "compose.yaml", "--profile", "tools", "web", "worker")
    assert result.exit_code == 0, result.stderr
    assert canary not in result.output
    assert calls["config_args"].files == ("compose.yaml",)
    assert calls["command"] == ["up", "-d", "web", "worker"]
    assert calls["project"] == "shop"
    (placeholder,) = calls["secret_env"]
    assert calls["secret_env"][placeholder].reveal_text() == canary
    assert canary not in json.dumps(calls["model"])
    web = calls["model"]["services"]["web"]
    assert web["environment"]["DB_PASSWORD"] == "${" + placeholder + "}"
    web_dir = shm / "secrets" / "shop" / "web"
    assert (web_dir / "API_KEY_FILE").read_bytes() == canary.encode() + b"-api"
    assert (shm / "secrets" / "shop" / "worker" / "TOKEN").read_bytes().endswith(b"-token")
    lines = result.stderr.splitlines()
    assert 'warning: The "TAG" variable is not set.' in lines
    assert "dso: project shop: 4 references in 2 services (2 dso://, 2 dsofile://)" in lines[1]
    assert lines[2].startswith("dso: resolved 3 secrets from local in ")
    warnings = [line for line in lines if "dso:// puts secret values" in line]
    assert len(warnings) == 1 and "DB_PASSWORD (web), DB_URL (worker)" in warnings[0]


def test_up_passes_compose_exit_code_through(dso: RunDso, calls: dict[str, Any]) -> None:
    calls["exit"] = 17
    assert dso("up", "-d").exit_code == 17


def test_up_refuses_everything_when_one_reference_fails(
    dso: RunDso, calls: dict[str, Any], canary: str
) -> None:
    open_local(local_layout()).delete("app/token")
    result = dso("up", "-d")
    assert result.exit_code == 5
    assert "command" not in calls, "compose was not started"
    assert (
        "service worker, TOKEN: dsofile://app/token: provider 'local': no secret named 'app/token'"
        in result.stderr
    )
    assert canary not in result.output


def test_up_refuses_file_secrets_for_a_daemon_on_another_machine(
    dso: RunDso, calls: dict[str, Any], shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.10:2375")
    result = dso("up", "-d")
    assert result.exit_code == 3
    assert "command" not in calls, "compose was not started"
    assert not (shm / "secrets" / "shop").exists(), "no file was written"
    assert (
        "dsofile:// needs the Docker daemon on this machine, and tcp://192.0.2.10:2375 is another "
        "one (used by web, worker)" in result.stderr
    )
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")  # the same machine over TCP
    assert dso("up", "-d").exit_code == 0


def test_validate_lists_references_without_values(
    dso: RunDso, calls: dict[str, Any], canary: str
) -> None:
    result = dso("validate")
    assert result.exit_code == 0, result.output
    assert result.stderr.endswith("project shop: 4 secret references in 2 services: all valid\n")
    doc = json.loads(dso("validate", "--json").stdout)
    assert doc["valid"] is True and doc["problems"] == []
    assert {(r["service"], r["variable"], r["version"], r["ok"]) for r in doc["references"]} == {
        ("web", "DB_PASSWORD", "1", True),
        ("web", "API_KEY_FILE", "1", True),
        ("worker", "TOKEN", "1", True),
        ("worker", "DB_URL", "1", True),
    }
    assert canary not in json.dumps(doc) and canary not in result.output


def test_validate_reports_every_problem_and_fails(dso: RunDso, calls: dict[str, Any]) -> None:
    calls["fixture"] = "bad"
    result = dso("validate")
    assert result.exit_code == 1
    assert "problems" in result.stderr
    assert "service api, EMPTY_PATH: invalid secret reference 'dso://'" in result.stdout
    assert "service files: user: 'app'" in result.stdout
    doc = json.loads(dso("validate", "--json").stdout)
    assert doc["valid"] is False
    assert {p["variable"] for p in doc["problems"]} >= {"EMPTY_PATH", "BAD_VERSION", "GOOD"}


def test_validate_takes_only_global_flags(dso: RunDso, calls: dict[str, Any]) -> None:
    result = dso("validate", "web")
    assert result.exit_code == 2 and "unexpected: 'web'" in result.stderr


def test_down_removes_the_project_files(dso: RunDso, calls: dict[str, Any], shm: Path) -> None:
    assert dso("up", "-d").exit_code == 0
    assert (shm / "secrets" / "shop").is_dir()
    result = dso("down", "-v")
    assert result.exit_code == 0, result.stderr
    assert calls["plain"] == ["down", "-v"]
    assert not (shm / "secrets" / "shop").exists()
    assert "removed the secret files of project shop" in result.stderr


def test_compose_passthrough_and_refusals(dso: RunDso, calls: dict[str, Any]) -> None:
    assert dso("compose", "-f", "x.yml", "logs", "-f", "web").exit_code == 0
    assert calls["plain"] == ["--file=x.yml", "logs", "-f", "web"]
    for command in ("up", "run", "create"):
        result = dso("compose", command)
        assert result.exit_code == 2 and "docker dso up" in result.stderr
    assert dso("compose").exit_code == 2


def test_a_bad_dso_configuration_stops_up_and_reaps_compose(
    dso: RunDso, calls: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel.errors import ConfigError

    def broken(*_args: object) -> None:
        raise ConfigError("unknown key", path="dso.yaml", line=3, key="providres")

    monkeypatch.setattr("kernel.runtime.Runtime.load", broken)
    result = dso("up", "-d")
    assert result.exit_code == 3
    assert "dso.yaml:3: providres: unknown key" in result.stderr
    assert calls["cancelled"] is True and "command" not in calls
