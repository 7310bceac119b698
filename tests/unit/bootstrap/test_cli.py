"""``docker dso bootstrap agent|local`` from the command line: the plan printed, applied and
verified, a second run with nothing to do, no input read without a terminal, prompts in one,
errors with their exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import click
import pytest

from kernel.bootstrap import transaction as transaction_module
from kernel.bootstrap.verify import Verified
from kernel.cli.app import Application
from kernel.cli.init import CONFIG_TEMPLATE
from kernel.errors import ExitCode
from kernel.vault import KdfId, KeySource, Vault
from tests.conftest import RunDso
from tests.unit.bootstrap.support import snapshot


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def no_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError(f"prompted: {args}")

    monkeypatch.setattr(click, "prompt", refuse)


def test_dry_run_prints_the_plan_and_changes_nothing(run_dso: RunDso, tree: Path) -> None:
    result = run_dso("bootstrap", "agent", "--root", str(tree), "--dry-run")
    assert result.exit_code == 0, result.output
    assert list(tree.iterdir()) == []
    lines = result.stdout.splitlines()
    assert lines[0] == f"bootstrap agent under {tree}: 20 steps (dry run: nothing is changed)"
    assert f"   2. create directory {tree}/etc/dso (0750 root:dso)" in lines
    assert f"  15. write configuration {tree}/etc/dso/dso.yaml (0640 root:dso)" in lines
    assert any(line.startswith("note: a tree under") for line in lines)


def test_apply_then_a_second_run_says_nothing_to_do(
    run_dso: RunDso, tree: Path, no_prompt: None
) -> None:
    first = run_dso("bootstrap", "agent", "--root", str(tree))
    assert first.exit_code == 0, first.output
    assert f"bootstrap agent under {tree}: 20 changes applied and verified" in first.stdout
    assert first.stdout.rstrip().endswith("next: sudo docker dso system enable")
    assert mode(tree / "etc/dso/dso.yaml") == 0o640
    assert "type: local" in (tree / "etc/dso/dso.yaml").read_text()
    before = snapshot(tree)

    second = run_dso("bootstrap", "agent", "--root", str(tree))
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith(f"bootstrap agent under {tree}: nothing to do: ")
    assert snapshot(tree) == before

    doc = json.loads(run_dso("bootstrap", "agent", "--root", str(tree), "--json").stdout)
    assert doc["nothing_to_do"] is True and doc["changed"] is False and doc["ok"] is True
    assert doc["steps"] == []
    assert {check["status"] for check in doc["checks"]} == {"ok"}


def test_the_generated_file_passes_config_validate(run_dso: RunDso, tree: Path) -> None:
    result = run_dso(
        "bootstrap", "agent", "--root", str(tree),
        "--provider", "local", "--provider", "vault", "--vault-addr", "http://bao:8200",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = tree / "etc/dso/dso.yaml"
    checked = run_dso("config", "validate", "--skip-providers", str(config))
    assert checked.exit_code == 0, checked.output
    assert f"{config}: valid" in checked.stderr


def test_without_a_terminal_the_defaults_are_taken_and_nothing_is_read(
    run_dso: RunDso, tree: Path, no_prompt: None
) -> None:
    result = run_dso("bootstrap", "agent", "--root", str(tree), input="vault\n")
    assert result.exit_code == 0, result.output
    text = (tree / "etc/dso/dso.yaml").read_text()
    assert "default_provider: local" in text and "vault" not in text


def test_in_a_terminal_the_providers_are_asked(
    run_dso: RunDso, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Application, "stdin_is_tty", property(lambda self: True))
    answers = "local, vault\nhttps://vault.example:8200\n\nvault\n"
    result = run_dso("bootstrap", "agent", "--root", str(tree), input=answers)
    assert result.exit_code == 0, result.output
    text = (tree / "etc/dso/dso.yaml").read_text()
    assert "default_provider: vault" in text
    assert "address: https://vault.example:8200" in text
    assert "env: [VAULT_TOKEN]" in text


def test_in_a_terminal_yes_or_given_providers_ask_nothing(
    run_dso: RunDso, tree: Path, monkeypatch: pytest.MonkeyPatch, no_prompt: None
) -> None:
    monkeypatch.setattr(Application, "stdin_is_tty", property(lambda self: True))
    assert run_dso("bootstrap", "agent", "--root", str(tree), "--yes").exit_code == 0
    forced = run_dso(
        "bootstrap", "agent", "--root", str(tree), "--force-config",
        "--provider", "aws", "--aws-region", "eu-west-1",
    )  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert "region: eu-west-1" in (tree / "etc/dso/dso.yaml").read_text()
    assert len(list((tree / "etc/dso").glob("dso.yaml.*.bak"))) == 1


def test_not_root_is_told_to_use_sudo(run_dso: RunDso, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = run_dso("bootstrap", "agent")
    assert result.exit_code == ExitCode.USAGE
    assert "bootstrap agent needs root" in result.stderr
    assert "hint: sudo docker dso bootstrap agent" in result.stderr


def test_a_missing_setting_is_a_usage_error(run_dso: RunDso, tree: Path) -> None:
    result = run_dso("bootstrap", "agent", "--root", str(tree), "--provider", "vault")
    assert result.exit_code == ExitCode.USAGE
    assert "the vault provider needs --vault-addr" in result.stderr
    assert list(tree.iterdir()) == []


def test_an_invalid_existing_configuration_exits_3(run_dso: RunDso, tree: Path) -> None:
    config = tree / "etc/dso/dso.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: 2\n")
    result = run_dso("bootstrap", "agent", "--root", str(tree))
    assert result.exit_code == ExitCode.CONFIG
    assert f"{config}:1: version:" in result.stderr
    assert "--force-config" in result.stderr


def test_a_failure_is_reported_with_its_step_and_undone(
    run_dso: RunDso, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        transaction_module,
        "verify",
        lambda plan, host: [Verified("config.valid", "fail", "broken", "fix it")],
    )
    result = run_dso("bootstrap", "agent", "--root", str(tree), "--json")
    assert result.exit_code == ExitCode.STORAGE
    assert (
        "bootstrap agent failed: verification failed: config.valid: broken; the changes "
        "made before it were undone" in result.stderr
    )
    assert "hint: fix it" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and {s["status"] for s in doc["steps"]} == {"undone"}
    assert list(tree.iterdir()) == []


def test_local_sets_up_what_init_does(run_dso: RunDso, dso_home: Path, no_prompt: None) -> None:
    dry = run_dso("bootstrap", "local", "--dry-run")
    assert dry.exit_code == 0 and not dso_home.exists()
    assert f"create directory {dso_home} (0700)" in dry.stdout

    result = run_dso("bootstrap", "local")
    assert result.exit_code == 0, result.output
    for name in ("", "state", "cache", "logs", "plugins", "locks"):
        assert mode(dso_home / name) == 0o700, name
    for name in ("vault.key", "vault.enc", "config.yaml"):
        assert mode(dso_home / name) == 0o600, name
    assert (dso_home / "config.yaml").read_text() == CONFIG_TEMPLATE
    assert Vault.open(dso_home / "vault.enc", KeySource(dso_home / "vault.key")).list() == []
    assert "next: docker dso secret set NAME" in result.stdout

    again = run_dso("bootstrap", "local")
    assert again.exit_code == 0 and "nothing to do" in again.stdout


def test_local_is_always_the_users_home_even_where_the_host_agent_is_the_default(
    run_dso: RunDso, dso_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kernel.paths

    host_home = dso_home.parent / "host"
    monkeypatch.setattr(kernel.paths, "agent_layout", lambda: kernel.paths.local_layout(host_home))
    result = run_dso("bootstrap", "local", env={"DSO_MODE": "agent"})
    assert result.exit_code == 0, result.output
    assert (dso_home / "config.yaml").read_text() == CONFIG_TEMPLATE
    assert not host_home.exists()


def test_local_after_init_has_nothing_to_do(run_dso: RunDso, dso_home: Path) -> None:
    assert run_dso("init").exit_code == 0
    before = snapshot(dso_home)
    result = run_dso("bootstrap", "local")
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout
    assert snapshot(dso_home) == before


def test_local_tightens_an_open_home_and_keeps_the_rest(run_dso: RunDso, dso_home: Path) -> None:
    assert run_dso("init").exit_code == 0
    dso_home.chmod(0o755)
    result = run_dso("bootstrap", "local", "--json")
    doc = json.loads(result.stdout)
    assert [step["action"] for step in doc["steps"]] == ["attributes"]
    assert mode(dso_home) == 0o700


def test_local_with_a_passphrase_writes_no_key_file(run_dso: RunDso, dso_home: Path) -> None:
    result = run_dso("bootstrap", "local", env={"DSO_VAULT_PASSPHRASE": "correct horse"})
    assert result.exit_code == 0, result.output
    assert not (dso_home / "vault.key").exists()
    keys = KeySource.from_env(dso_home / "vault.key", {"DSO_VAULT_PASSPHRASE": "correct horse"})
    assert Vault.open(dso_home / "vault.enc", keys).kdf.kdf is not KdfId.KEY_FILE


def test_local_with_an_empty_passphrase_changes_nothing(run_dso: RunDso, dso_home: Path) -> None:
    result = run_dso("bootstrap", "local", env={"DSO_VAULT_PASSPHRASE": ""})
    assert result.exit_code == ExitCode.VAULT
    assert "DSO_VAULT_PASSPHRASE is set but empty" in result.stderr
    assert not dso_home.exists()
