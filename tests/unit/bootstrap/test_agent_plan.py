"""``bootstrap agent`` under a ``--root`` directory with a fake machine: the plan's steps, the
owners and modes it leaves, a second run with nothing to do, a dry run that changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.bootstrap import (
    AgentRequest,
    ProviderChoice,
    StepStatus,
    apply_plan,
    dry_run,
    plan_agent,
)
from kernel.bootstrap.plan import unit_directories
from kernel.errors import ConfigError, StorageError, VaultKeyError
from kernel.system.unit import render_unit
from tests.unit.bootstrap.support import FakeHost, mode_owner, snapshot

DIRECTORIES = {
    "etc/dso": (0o750, "dso"),
    "var/lib/dso": (0o750, "root"),
    "var/lib/dso/state": (0o700, "root"),
    "var/lib/dso/cache": (0o700, "root"),
    "var/lib/dso/locks": (0o700, "root"),
    "var/lib/dso/plugins": (0o700, "root"),
    "var/lib/dso/snapshots": (0o700, "root"),
    "var/log/dso": (0o750, "root"),
    "run/dso": (0o755, "root"),
}
FILES = {
    "etc/dso/dso.yaml": (0o640, "dso"),
    "etc/dso/vault.key": (0o600, "root"),
    "var/lib/dso/vault.enc": (0o600, "root"),
    "etc/systemd/system/dso-agent.service": (0o644, "root"),
}


def bootstrap(root: Path, host: FakeHost, request: AgentRequest | None = None):
    plan = plan_agent(request or AgentRequest(), host, root=root)
    return plan, apply_plan(plan, host)


def test_a_fresh_host_gets_the_group_every_directory_file_and_the_unit(tmp_path: Path) -> None:
    host = FakeHost()
    plan = plan_agent(AgentRequest(), host, root=tmp_path)
    kinds = [step.kind for step in plan.steps]
    assert kinds[0] == "group"
    assert kinds[-1] == "reload"
    assert kinds.count("key") == kinds.count("vault") == 1
    described = "\n".join(step.describe() for step in plan.steps)
    for relative in [*DIRECTORIES, *FILES]:
        assert str(tmp_path / relative) in described

    outcome = apply_plan(plan, host)

    assert outcome.ok, outcome.error
    assert set(outcome.statuses) == {StepStatus.DONE}
    assert host.calls == [("add_group", "dso"), ("daemon_reload",)]
    gids = {"root": host.groups["root"], "dso": host.dso_gid}
    for relative, (mode, group) in {**DIRECTORIES, **FILES}.items():
        assert mode_owner(tmp_path / relative) == (mode, host.root_uid, gids[group]), relative
    assert (tmp_path / "etc/systemd/system/dso-agent.service").read_text() == render_unit()
    assert len((tmp_path / "etc/dso/vault.key").read_bytes()) == 32
    assert {check.id: check.status for check in outcome.checks} == {
        "bootstrap.paths": "ok",
        "bootstrap.group": "ok",
        "dirs.modes": "ok",
        "config.valid": "ok",
        "config.permissions": "ok",
        "bootstrap.vault": "ok",
    }


def test_the_systemd_managed_directories_are_planned_as_the_unit_sets_them() -> None:
    # systemd gives RuntimeDirectory/StateDirectory/LogsDirectory to the unit's User:Group with
    # its modes at every start: a different plan would flip back and forth with each start.
    managed = unit_directories(render_unit())
    assert {kind: (mode, str(owner)) for kind, (mode, owner) in managed.items()} == {
        "Runtime": (0o755, "root:root"),
        "State": (0o750, "root:root"),
        "Logs": (0o750, "root:root"),
    }
    text = "[Service]\nUser=root\nGroup=dso\nRuntimeDirectoryMode=0750\n# StateDirectoryMode=0700\n"
    assert unit_directories(text)["Runtime"][0] == 0o750
    assert str(unit_directories(text)["State"][1]) == "root:dso"
    assert unit_directories(text)["State"][0] == 0o755  # systemd's default: the comment is not read


def test_a_second_run_has_nothing_to_do_and_changes_nothing(tmp_path: Path) -> None:
    host = FakeHost()
    bootstrap(tmp_path, host)
    before = snapshot(tmp_path)
    host.calls.clear()

    plan, outcome = bootstrap(tmp_path, host)

    assert plan.nothing_to_do and plan.steps == []
    assert outcome.ok and not outcome.changed
    assert host.calls == []
    assert snapshot(tmp_path) == before
    assert any("dso.yaml" in line and "valid" in line for line in plan.kept)
    assert outcome.to_dict()["nothing_to_do"] is True


def test_a_dry_run_lists_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    host = FakeHost()
    plan = plan_agent(AgentRequest(), host, root=tmp_path)
    outcome = dry_run(plan)
    assert list(tmp_path.iterdir()) == []
    assert host.calls == []
    document = outcome.to_dict()
    assert document["dry_run"] is True
    assert {step["status"] for step in document["steps"]} == {"planned"}
    assert document["steps"][0] == {
        "action": "group",
        "path": None,
        "description": "add group dso (groupadd --system dso)",
        "status": "planned",
    }


def test_modes_and_owners_that_drifted_are_fixed_and_nothing_else(tmp_path: Path) -> None:
    host = FakeHost()
    bootstrap(tmp_path, host)
    (tmp_path / "var/lib/dso/plugins").chmod(0o755)
    (tmp_path / "etc/dso/dso.yaml").chmod(0o664)

    plan, outcome = bootstrap(tmp_path, host)

    assert [(s.kind, s.path.name) for s in plan.steps] == [  # type: ignore[attr-defined]
        ("attributes", "plugins"),
        ("attributes", "dso.yaml"),
    ]
    assert "0755" in plan.steps[0].describe() and "→ 0700" in plan.steps[0].describe()
    assert outcome.ok
    assert mode_owner(tmp_path / "var/lib/dso/plugins")[0] == 0o700
    assert mode_owner(tmp_path / "etc/dso/dso.yaml")[0] == 0o640


def test_an_existing_configuration_is_validated_and_kept(tmp_path: Path) -> None:
    host = FakeHost()
    config = tmp_path / "etc/dso/dso.yaml"
    config.parent.mkdir(parents=True)
    mine = "version: 1\n# mine\nproviders:\n  local:\n    type: local\n"
    config.write_text(mine)
    request = AgentRequest(
        providers=(ProviderChoice("vault", (("address", "https://vault:8200"),)),),
        providers_given=True,
    )

    plan, outcome = bootstrap(tmp_path, host, request)

    assert outcome.ok
    assert config.read_text() == mine
    assert any("providers given were not applied" in note for note in plan.notes)


def test_an_invalid_existing_configuration_stops_the_plan(tmp_path: Path) -> None:
    config = tmp_path / "etc/dso/dso.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: 1\nagnet:\n  socket: /run/x.sock\n")
    with pytest.raises(ConfigError) as caught:
        plan_agent(AgentRequest(), FakeHost(), root=tmp_path)
    assert f"{config}:" in caught.value.message
    assert "--force-config" in (caught.value.hint or "")


def test_force_config_regenerates_it_and_keeps_a_backup(tmp_path: Path) -> None:
    host = FakeHost()
    bootstrap(tmp_path, host)
    config = tmp_path / "etc/dso/dso.yaml"
    config.write_text("version: 1\n# mine\n")
    request = AgentRequest(
        providers=(ProviderChoice("aws", (("region", "eu-west-1"),)),), force_config=True
    )

    plan, outcome = bootstrap(tmp_path, host, request)

    assert outcome.ok
    assert [step.kind for step in plan.steps] == ["backup", "write"]
    assert "region: eu-west-1" in config.read_text()
    (backup,) = config.parent.glob("dso.yaml.*.bak")
    assert backup.read_text() == "version: 1\n# mine\n"
    assert mode_owner(backup) == mode_owner(config)
    # Forced again with the same options: the file is what it would write, nothing to do.
    assert plan_agent(request, host, root=tmp_path).nothing_to_do


def test_a_changed_unit_is_replaced_and_systemd_reloaded(tmp_path: Path) -> None:
    host = FakeHost()
    bootstrap(tmp_path, host)
    host.calls.clear()

    plan, _ = bootstrap(tmp_path, host, AgentRequest(executable="/opt/dso/bin/dso"))

    assert [step.kind for step in plan.steps] == ["write", "reload"]
    assert plan.steps[0].describe().startswith("replace systemd unit")
    assert host.calls == [("daemon_reload",)]
    unit = (tmp_path / "etc/systemd/system/dso-agent.service").read_text()
    assert "ExecStart=/opt/dso/bin/dso --config /etc/dso/dso.yaml agent --mode agent" in unit


def test_without_systemd_there_is_no_reload_and_a_note_says_what_supervises(
    tmp_path: Path,
) -> None:
    host = FakeHost(systemd=False)
    plan, outcome = bootstrap(tmp_path, host)
    assert outcome.ok
    assert "reload" not in [step.kind for step in plan.steps]
    assert (tmp_path / "etc/systemd/system/dso-agent.service").is_file()
    assert any("systemd is not running" in note and "supervis" in note for note in plan.notes)
    assert plan.next is not None and "agent --mode agent" in plan.next


def test_an_existing_group_is_kept(tmp_path: Path) -> None:
    host = FakeHost(dso_exists=True)
    plan, outcome = bootstrap(tmp_path, host)
    assert "group" not in [step.kind for step in plan.steps]
    assert "group dso exists" in plan.kept
    assert outcome.ok and ("add_group", "dso") not in host.calls


def test_a_vault_without_its_key_is_refused_before_anything_changes(tmp_path: Path) -> None:
    vault = tmp_path / "var/lib/dso/vault.enc"
    vault.parent.mkdir(parents=True)
    vault.write_bytes(b"x" * 80)
    before = snapshot(tmp_path)
    with pytest.raises(VaultKeyError, match=r"key .* is missing"):
        plan_agent(AgentRequest(), FakeHost(), root=tmp_path)
    assert snapshot(tmp_path) == before


def test_a_file_where_a_directory_belongs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/dso").write_text("")
    with pytest.raises(StorageError, match="is not a directory"):
        plan_agent(AgentRequest(), FakeHost(), root=tmp_path)
