"""``docker dso fetch`` and ``docker dso providers list|check`` against real provider processes
(the local vault provider from source, and a plugins directory holding a wrapper around the
echo fake)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kernel.provider_host.verify import MANIFEST_NAME, UNVERIFIED_ENV, sha256_file
from tests.conftest import RunDso
from tests.integration.provider_host_support import ECHO

pytestmark = pytest.mark.integration


@pytest.fixture
def dso(run_dso: RunDso, canary: str) -> RunDso:
    assert run_dso("init").exit_code == 0
    assert run_dso("secret", "set", "app/db_password", input=canary).exit_code == 0
    return run_dso


def plugin(directory: Path, name: str, body: str, *, listed: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"dso-provider-{name}"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    if listed:
        with (directory / MANIFEST_NAME).open("a") as manifest:
            manifest.write(f"{sha256_file(path)}  {path.name}\n")
    return path


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "plugins"
    plugin(directory, "echo", f'exec {sys.executable} {ECHO} "$@"')
    plugin(directory, "broken", "echo 'cannot start: missing library' >&2; exit 1")
    plugin(directory, "sneaky", "exit 0", listed=False)
    monkeypatch.setenv("DSO_PLUGINS_DIR", str(directory))
    return directory


# -- fetch ------------------------------------------------------------------------------------


def test_fetch_masks_the_value(dso: RunDso, canary: str) -> None:
    result = dso("fetch", "dso://app/db_password")
    assert result.exit_code == 0, result.output
    assert canary not in result.output
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["reference"] == "dso://app/db_password"
    assert lines["provider"] == "local (source)"
    assert lines["version"] == "1"
    assert lines["value"] == f"******** ({len(canary)} bytes; --reveal shows it)"
    assert lines["latency"].endswith("ms with start and stop")


def test_fetch_json_never_holds_the_value_without_reveal(dso: RunDso, canary: str) -> None:
    result = dso("fetch", "dso://local:app/db_password", "--json")
    assert result.exit_code == 0, result.output
    assert canary not in result.output
    doc = json.loads(result.stdout)
    assert doc["value"] == "********" and doc["revealed"] is False
    assert (doc["provider"], doc["path"], doc["version"]) == ("local", "app/db_password", "1")
    assert doc["length"] == len(canary) and doc["latency_ms"] > 0
    revealed = json.loads(dso("fetch", "dsofile://app/db_password", "--json", "--reveal").stdout)
    assert (revealed["value"], revealed["delivery"]) == (canary, "file")
    plain = dso("fetch", "dso://app/db_password", "--reveal")
    assert f"value      {canary}" in plain.stdout


def test_fetch_a_missing_secret_exits_5_naming_the_reference(dso: RunDso) -> None:
    result = dso("fetch", "dso://app/nope")
    assert result.exit_code == 5
    assert "dso://app/nope" in result.stderr
    assert result.stdout == ""


def test_fetch_errors(dso: RunDso) -> None:
    result = dso("fetch", "dso://app/db@")
    assert result.exit_code == 5
    assert "invalid secret reference" in result.stderr
    result = dso("fetch", "dso://vault:kv/app")
    assert result.exit_code == 7
    assert "no provider 'vault' is configured" in result.stderr


# -- providers list ---------------------------------------------------------------------------


def test_providers_list_json(run_dso: RunDso, plugins: Path) -> None:
    result = run_dso("providers", "list", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["plugins_dir"] == str(plugins)
    found = {p["name"]: p for p in doc["providers"]}
    echo = found["echo"]
    assert (echo["origin"], echo["verified"], echo["version"], echo["protocol"]) == (
        "plugins-dir",
        True,
        "1.0.0",
        1,
    )
    assert echo["capabilities"] == ["get", "list", "versions", "watch"]
    assert found["local"]["origin"] == "source" and found["local"]["verified"] is None
    assert found["local"]["configured_as"] == ["local"]
    rejected = {r["name"]: r["reason"] for r in doc["rejected"]}
    assert rejected["sneaky"] == f"not listed in {plugins / MANIFEST_NAME}"
    assert rejected["broken"] == "--describe exited with status 1: cannot start: missing library"


def test_providers_list_table(run_dso: RunDso, plugins: Path) -> None:
    result = run_dso("providers", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"plugins directory: {plugins} (SHA256SUMS present)"
    assert lines[1].split() == [
        "NAME",
        "ORIGIN",
        "VERIFIED",
        "VERSION",
        "PROTOCOL",
        "CAPABILITIES",
        "CONFIGURED",
    ]
    assert any(line.split()[:3] == ["echo", "plugins-dir", "yes"] for line in lines)
    assert "rejected:" in lines
    assert any("dso-provider-sneaky: not listed in" in line for line in lines)


def test_providers_list_without_manifest(run_dso: RunDso, tmp_path: Path) -> None:
    directory = tmp_path / "bare"
    plugin(directory, "echo", f'exec {sys.executable} {ECHO} "$@"', listed=False)
    env = {"DSO_PLUGINS_DIR": str(directory)}
    doc = json.loads(run_dso("providers", "list", "--json", env=env).stdout)
    assert "echo" not in {p["name"] for p in doc["providers"]}
    assert UNVERIFIED_ENV in doc["rejected"][0]["reason"]
    doc = json.loads(
        run_dso("providers", "list", "--json", env={**env, UNVERIFIED_ENV: "1"}).stdout
    )
    echo = next(p for p in doc["providers"] if p["name"] == "echo")
    assert echo["verified"] is False


# -- providers check --------------------------------------------------------------------------


def test_providers_check_local(dso: RunDso) -> None:
    result = dso("providers", "check", "local", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["error"] is None
    assert [s["step"] for s in doc["steps"]] == [
        "resolve",
        "start",
        "ping",
        "configure",
        "shutdown",
    ]
    assert all(s["ok"] for s in doc["steps"])
    assert doc["steps"][1]["detail"].startswith("pid ")
    text = dso("providers", "check", "local")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0].split()[:2] == ["resolve", "ok"]


def test_providers_check_an_unconfigured_plugin(run_dso: RunDso, plugins: Path) -> None:
    result = run_dso("providers", "check", "echo", "--json")
    assert result.exit_code == 0, result.output
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["resolve"]["detail"].startswith("plugins-dir: ")
    assert steps["configure"]["ok"] is None
    assert "not configured" in steps["configure"]["detail"]


def test_providers_check_failure_exits_7_with_the_reason(run_dso: RunDso, plugins: Path) -> None:
    result = run_dso("providers", "check", "broken")
    assert result.exit_code == 7
    assert "start" in result.stdout and "FAILED" in result.stdout
    assert "provider 'broken': start failed: exited with status 1 before completing the" in (
        result.stderr
    )
    assert "cannot start: missing library" in result.stderr
    result = run_dso("providers", "check", "sneaky", "--json")
    assert result.exit_code == 7
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["steps"][0]["step"] == "resolve"
    assert "not listed in" in doc["error"]


def test_help_has_examples(run_dso: RunDso) -> None:
    for args in (["fetch"], ["providers"], ["providers", "list"], ["providers", "check"]):
        result = run_dso(*args, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.stdout, args


# -- third-party provider types ---------------------------------------------------------------


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dso.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_third_party_type_in_the_config_runs_its_program(
    run_dso: RunDso, plugins: Path, tmp_path: Path, canary: str
) -> None:
    config = config_file(
        tmp_path,
        "version: 1\nproviders:\n  team:\n    type: echo\n"
        f"    secrets:\n      app/token: {canary}\n",
    )
    checked = run_dso("-c", str(config), "config", "validate")
    assert checked.exit_code == 0, checked.output
    assert "dso will run the third-party program dso-provider-echo" in checked.stderr
    result = run_dso("-c", str(config), "fetch", "dso://team:app/token", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["provider"] == "team"
    assert canary not in result.output
    revealed = run_dso("-c", str(config), "fetch", "dso://team:app/token", "--reveal")
    assert revealed.exit_code == 0, revealed.output
    assert canary in revealed.stdout


def test_a_missing_third_party_program_names_where_and_the_likely_typo(
    run_dso: RunDso, plugins: Path, tmp_path: Path
) -> None:
    config = config_file(tmp_path, "version: 1\nproviders:\n  prod:\n    type: vualt\n")
    result = run_dso("-c", str(config), "fetch", "dso://prod:app/db")
    assert result.exit_code == 7, result.output
    assert f"no provider program dso-provider-vualt in {plugins}" in result.stderr
    assert "did you mean type: vault?" in result.stderr


# -- config validate asks the providers --------------------------------------------------------


def test_config_validate_asks_each_provider_about_its_settings(
    run_dso: RunDso, plugins: Path, tmp_path: Path, canary: str
) -> None:
    config = config_file(
        tmp_path,
        "version: 1\n"
        "providers:\n"
        "  prod:\n"
        "    type: vault\n"
        "    address: http://127.0.0.1:1\n"
        f"    token: {canary}\n"
        "    auth:\n"
        "      method: tokn\n"
        "  cloud:\n"
        "    type: aws\n"
        "    regoin: eu-west-1\n"
        "  old:\n"
        "    type: broken\n",
    )
    result = run_dso("config", "validate", str(config), "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["valid"] is False
    assert [(e["line"], e["key"]) for e in doc["errors"]] == [
        (8, "providers.prod.auth.method"),
        (11, "providers.cloud.regoin"),
    ]
    assert "did you mean 'region'?" in doc["errors"][1]["message"]
    (not_checked,) = [w for w in doc["warnings"] if "not checked" in w]
    assert not_checked.endswith(
        ":12: providers.old: settings not checked: the program does not support --check-settings"
    )
    assert canary not in result.output  # the token went to the program on stdin, and no further
    skipped = run_dso("config", "validate", str(config), "--skip-providers")
    assert skipped.exit_code == 0, skipped.output


def test_config_validate_of_the_init_file_checks_the_local_provider(
    run_dso: RunDso, dso_home: Path
) -> None:
    from kernel.cli.init import CONFIG_TEMPLATE

    config = dso_home / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG_TEMPLATE)
    config.chmod(0o600)
    result = run_dso("config", "validate", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warnings"] == []
