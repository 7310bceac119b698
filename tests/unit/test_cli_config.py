"""``dso config validate|show|path`` through the real CLI entry point (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.cli.config import config as config_group
from kernel.config import loader as loader_module
from tests.conftest import RunDso

INIT_TEXT = """\
# dso configuration (local mode). Every key: docs/configuration.md
version: 1
default_provider: local
providers:
  local:
    type: local
"""

INVALID = """\
version: 1
agent:
  watch:
    polling_intervall: 5m
  rotation:
    strategy: sometimes
"""


@pytest.fixture(autouse=True)
def system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read the real /etc/dso: point the agent-mode candidate into tmp_path."""
    path = tmp_path / "etc-dso" / "dso.yaml"
    monkeypatch.setattr(loader_module, "SYSTEM_CONFIG", path)
    return path


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


# -- validate -----------------------------------------------------------------------------------


def test_validate_the_init_file_found_by_lookup(run_dso: RunDso, dso_home: Path) -> None:
    path = write(dso_home / "config.yaml", INIT_TEXT)
    # The providers' own checks run their programs: tests/integration/test_provider_host_cli.py
    result = run_dso("config", "validate", "--skip-providers")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"{path}: valid\n"


def test_validate_lists_every_error_and_exits_1(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", INVALID)
    result = run_dso("config", "validate", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:4: agent.watch.polling_intervall: unknown key 'polling_intervall' in "
        "agent.watch; did you mean 'polling_interval'?",
        f"{path}:6: agent.rotation.strategy: expected one of auto, rolling, restart, reload, "
        "none; got 'sometimes'",
    ]
    assert "2 problems" in result.stderr


def test_validate_json_shape(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", INVALID)
    result = run_dso("config", "validate", str(path), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"valid", "path", "errors", "warnings"}
    assert doc["valid"] is False
    assert doc["path"] == str(path)
    assert doc["errors"][0] == {
        "path": str(path),
        "line": 4,
        "key": "agent.watch.polling_intervall",
        "message": "unknown key 'polling_intervall' in agent.watch; did you mean "
        "'polling_interval'?",
    }
    assert all(set(e) == {"path", "line", "key", "message"} for e in doc["errors"])
    assert len(doc["errors"]) == 2


def test_validate_json_valid(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "ok.yaml", INIT_TEXT)
    result = run_dso("config", "validate", str(path), "--json", "--skip-providers")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "valid": True,
        "path": str(path),
        "errors": [],
        "warnings": [],
    }


def test_validate_without_any_file(run_dso: RunDso) -> None:
    result = run_dso("config", "validate", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"valid": True, "path": None, "errors": [], "warnings": []}
    text = run_dso("config", "validate")
    assert text.exit_code == 0 and "built-in defaults" in text.stderr


def test_validate_a_missing_file(run_dso: RunDso, tmp_path: Path) -> None:
    result = run_dso("config", "validate", str(tmp_path / "nope.yaml"), "--json")
    assert result.exit_code == 1
    (error,) = json.loads(result.stdout)["errors"]
    assert error["message"] == "configuration file not found"


def test_validate_uses_the_c_option(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "custom.yaml", "version: 2\n")
    result = run_dso("-c", str(path), "config", "validate")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}:1: version: this dso supports config version 1")


def test_validate_malformed_yaml(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "version: 1\n  oops: [\n")
    result = run_dso("config", "validate", str(path))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}:2:7: ")


def test_validate_reports_unsafe_permissions(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "open.yaml", INIT_TEXT, 0o666)
    result = run_dso("config", "validate", str(path))
    assert result.exit_code == 1
    assert "world-writable" in result.stdout
    assert f"chmod 600 {path}" in result.stdout


# -- show ---------------------------------------------------------------------------------------


def test_show_defaults_without_a_file(run_dso: RunDso) -> None:
    result = run_dso("config", "show")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "# source: none (built-in defaults)"
    for expected in [
        "version: 1",
        "default_provider: local",
        "    type: local",
        "    ttl: 1h",
        "    max_size: 500Mi",
        "    strategy: auto",
        "    polling_interval: 5m",
        "    debounce_window: 5s",
        "  level: info",
    ]:
        assert expected in lines


def test_show_json(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "dso.yaml", "version: 1\nagent:\n  cache:\n    ttl: 90m\n")
    result = run_dso("-c", str(path), "config", "show", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["path"] == str(path)
    assert doc["config"]["agent"]["cache"] == {"ttl": "1h30m", "max_size": "500Mi"}
    assert doc["config"]["providers"]["local"]["breaker"] == {
        "failure_threshold": 5,
        "cooldown": "30s",
    }
    assert doc["config"]["logging"]["file"] is None


def test_show_an_invalid_config_exits_3(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", INVALID)
    result = run_dso("-c", str(path), "config", "show")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert f"dso: error: {path}:4: agent.watch.polling_intervall: unknown key" in result.stderr
    assert "1 more problem: `docker dso config validate" in result.stderr


SECRETS_CONFIG = """\
version: 1
default_provider: vault
providers:
  vault:
    type: vault
    address: https://vault.internal:8200
    token: {literal}
    auth:
      method: approle
      secret_id: ${{CANARY_ENV}}
      role_id: my-role
    client-secret: ${{CANARY_ENV}}
    db_password: [{literal}, x]
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_show_never_prints_a_credential(
    run_dso: RunDso, tmp_path: Path, canary: str, as_json: bool
) -> None:
    path = write(tmp_path / "dso.yaml", SECRETS_CONFIG.format(literal=canary))
    args = ["-c", str(path), "config", "show", *(["--json"] if as_json else [])]
    result = run_dso(*args, env={"CANARY_ENV": canary + "-env"})
    assert result.exit_code == 0, result.output
    assert canary not in result.stdout
    assert canary not in result.stderr
    assert "********" in result.stdout
    if as_json:
        vault = json.loads(result.stdout)["config"]["providers"]["vault"]
        assert vault["token"] == "********"
        assert vault["auth"] == {"method": "approle", "secret_id": "********", "role_id": "my-role"}
        assert vault["client-secret"] == "********"
        assert vault["db_password"] == "********"
        assert vault["address"] == "https://vault.internal:8200"


def test_no_config_command_echoes_a_credential(
    run_dso: RunDso, tmp_path: Path, canary: str
) -> None:
    """Even when the file is invalid or unsafe, the canary never reaches the terminal."""
    text = SECRETS_CONFIG.format(literal=canary) + "agent:\n  bogus: 1\n"
    path = write(tmp_path / "dso.yaml", text, 0o644)
    env = {"CANARY_ENV": canary}
    for args in (
        ["config", "validate", str(path)],
        ["config", "validate", str(path), "--json"],
        ["-c", str(path), "config", "show"],
        ["-c", str(path), "config", "path"],
    ):
        result = run_dso(*args, env=env)
        assert canary not in result.output, args


def test_bad_dollar_in_a_credential_is_reported_without_the_value(
    run_dso: RunDso, tmp_path: Path, canary: str
) -> None:
    path = write(tmp_path / "dso.yaml", SECRETS_CONFIG.format(literal=f"'{canary}$x'"))
    result = run_dso("config", "validate", str(path), env={"CANARY_ENV": "x"})
    assert result.exit_code == 1
    assert "providers.vault.token: a lone '$'" in result.stdout
    assert canary not in result.output


# -- path ---------------------------------------------------------------------------------------


def test_path_without_any_file(run_dso: RunDso, dso_home: Path, system_config: Path) -> None:
    result = run_dso("config", "path")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "using: none (built-in defaults: the local vault)"
    assert lines[1] == "lookup order:"
    assert [line.split()[1] for line in lines[2:]] == [
        str(system_config),
        str(dso_home / "config.yaml"),
        str(Path.cwd() / "dso.yaml"),
    ]
    assert all(line.rstrip().endswith("missing") for line in lines[2:])


def test_path_json_marks_the_one_used(run_dso: RunDso, dso_home: Path, system_config: Path) -> None:
    write(dso_home / "config.yaml", INIT_TEXT)
    write(Path.cwd() / "dso.yaml", INIT_TEXT)
    result = run_dso("config", "path", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["path"] == str(dso_home / "config.yaml")
    assert [(c["path"], c["exists"], c["used"]) for c in doc["candidates"]] == [
        (str(system_config), False, False),
        (str(dso_home / "config.yaml"), True, True),
        (str(Path.cwd() / "dso.yaml"), True, False),
    ]


def test_path_prefers_etc_dso(run_dso: RunDso, dso_home: Path, system_config: Path) -> None:
    write(system_config, INIT_TEXT)
    write(dso_home / "config.yaml", INIT_TEXT)
    result = run_dso("config", "path")
    assert result.stdout.splitlines()[0] == f"using: {system_config}"
    assert "found (used)" in result.stdout.splitlines()[2]


def test_path_with_the_c_option(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "custom.yaml", INIT_TEXT)
    result = run_dso("-c", str(path), "config", "path", "--json")
    doc = json.loads(result.stdout)
    assert doc["path"] == str(path)
    assert doc["candidates"][0] == {
        "path": str(path),
        "source": "flag",
        "exists": True,
        "used": True,
    }


def test_path_with_a_missing_c_file_exits_3(run_dso: RunDso, tmp_path: Path) -> None:
    result = run_dso("-c", str(tmp_path / "nope.yaml"), "config", "path")
    assert result.exit_code == 3
    assert "configuration file not found" in result.stderr


def test_dso_config_env_var_is_the_c_option(run_dso: RunDso, tmp_path: Path) -> None:
    path = write(tmp_path / "env.yaml", INIT_TEXT)
    result = run_dso("config", "path", "--json", env={"DSO_CONFIG": str(path)})
    assert json.loads(result.stdout)["path"] == str(path)


@pytest.mark.parametrize("name", ["validate", "show", "path"])
def test_every_command_has_examples(name: str) -> None:
    command = config_group.commands[name]
    assert command.help and "Examples:" in command.help
    assert "docker dso config" in command.help
